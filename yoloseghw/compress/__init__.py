"""Model compression and its benchmark: structured pruning (prune.py), INT8 and FP16 ONNX variants (quantize.py),
and `yoloseg bench` (bench.py)."""
