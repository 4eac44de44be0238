"""Thin wrapper: see yoloseghw/experiments/task_mix.py (python benchmarks/task_mix.py --help)."""

from yoloseghw.experiments.task_mix import main

if __name__ == "__main__":
    main()
