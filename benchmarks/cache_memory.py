"""Thin wrapper: see yoloseghw/experiments/cache_memory.py (python benchmarks/cache_memory.py --help)."""

from yoloseghw.experiments.cache_memory import main

if __name__ == "__main__":
    main()
