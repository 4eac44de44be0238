"""Datasets: the two dataset configs, their loaders, the multi-task loader, inference sources, demo data, tools."""
