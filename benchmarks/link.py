"""Thin wrapper: see yoloseghw/experiments/link.py (python benchmarks/link.py --help)."""

from yoloseghw.experiments.link import main

if __name__ == "__main__":
    main()
