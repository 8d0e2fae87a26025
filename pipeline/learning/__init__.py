"""Trajectory data loaders, training and evaluation (reuses forecast/: one encoder, one model)."""
