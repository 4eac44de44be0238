"""Thin wrapper: see yoloseghw/bench/onnx_speed.py (python benchmarks/onnx_speed.py --help)."""

from yoloseghw.bench.onnx_speed import main

if __name__ == "__main__":
    main()
