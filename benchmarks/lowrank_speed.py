"""Thin wrapper: see yoloseghw/experiments/lowrank_speed.py (python benchmarks/lowrank_speed.py --help)."""

from yoloseghw.experiments.lowrank_speed import main

if __name__ == "__main__":
    main()
