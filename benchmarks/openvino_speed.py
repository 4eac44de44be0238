"""Thin wrapper: see yoloseghw/experiments/openvino_speed.py (python benchmarks/openvino_speed.py --help)."""

from yoloseghw.experiments.openvino_speed import main

if __name__ == "__main__":
    main()
