"""Thin wrapper: see yoloseghw/bench/forgetting.py (python benchmarks/forgetting.py --help)."""

from yoloseghw.bench.forgetting import main

if __name__ == "__main__":
    main()
