"""Thin wrapper: see yoloseghw/experiments/onnx_profile.py (python benchmarks/onnx_profile.py --help)."""

from yoloseghw.experiments.onnx_profile import main

if __name__ == "__main__":
    main()
