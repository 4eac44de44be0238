"""Benchmarks behind benchmarks/*.py: the joint model against the two single-task Ultralytics models."""
