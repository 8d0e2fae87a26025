"""The release version: the one place it is written (pyproject.toml reads it from here; run.json records it)."""

__version__ = "0.9.0"
