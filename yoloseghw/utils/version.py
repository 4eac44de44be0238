"""The yoloseg version: one definition, read by the package, its checkpoints and exports, and pyproject.toml."""

__version__ = "0.3.0"
