"""Thin wrapper: see yoloseghw/experiments/joint_vs_single.py (python benchmarks/joint_vs_single.py --help)."""

from yoloseghw.experiments.joint_vs_single import main

if __name__ == "__main__":
    main()
