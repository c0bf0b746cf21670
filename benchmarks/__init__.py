"""Measured figures for docs/performance.md: ``python -m benchmarks [--quick]``."""

from rstg_tf import cli

cli.program_environment()  # TensorFlow's logging and CPU kernels, before it loads
