"""Measured figures for docs/performance.md: ``python -m benchmarks [--quick]``."""

from train import cli as _cli  # noqa: F401  (TensorFlow's CPU settings, before it loads)
