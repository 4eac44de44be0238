"""The experiments behind benchmarks/*.py: training, timing and accuracy runs on real data, written up in docs/."""
