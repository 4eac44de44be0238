"""Model compression: INT8 and FP16 ONNX variants (quantize.py)."""
