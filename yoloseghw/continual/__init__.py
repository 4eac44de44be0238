"""Catastrophic forgetting: what each task kept while the other one trained."""
