"""Thin wrapper: see yoloseghw/experiments/onnx_precision.py (python benchmarks/onnx_precision.py --help)."""

from yoloseghw.experiments.onnx_precision import main

if __name__ == "__main__":
    main()
