"""Thin wrapper: see yoloseghw/experiments/openvino_profile.py (python benchmarks/openvino_profile.py --help)."""

from yoloseghw.experiments.openvino_profile import main

if __name__ == "__main__":
    main()
