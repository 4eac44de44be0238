"""Thin wrapper: see yoloseghw/bench/onnx_profile.py (python benchmarks/onnx_profile.py --help)."""

from yoloseghw.bench.onnx_profile import main

if __name__ == "__main__":
    main()
