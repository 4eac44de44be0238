"""Thin wrapper: see yoloseghw/experiments/forgetting.py (python benchmarks/forgetting.py --help)."""

from yoloseghw.experiments.forgetting import main

if __name__ == "__main__":
    main()
