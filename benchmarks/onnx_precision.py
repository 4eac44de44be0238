"""Thin wrapper: see yoloseghw/bench/onnx_precision.py (python benchmarks/onnx_precision.py --help)."""

from yoloseghw.bench.onnx_precision import main

if __name__ == "__main__":
    main()
