"""Thin wrapper: see yoloseghw/experiments/onnx_speed.py (python benchmarks/onnx_speed.py --help)."""

from yoloseghw.experiments.onnx_speed import main

if __name__ == "__main__":
    main()
