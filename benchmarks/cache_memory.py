"""Thin wrapper: see yoloseghw/bench/cache_memory.py (python benchmarks/cache_memory.py --help)."""

from yoloseghw.bench.cache_memory import main

if __name__ == "__main__":
    main()
