"""Programs for data, training and evaluation, run from the repository root."""

from rstg_tf import cli

cli.program_environment()  # TensorFlow's logging and CPU kernels, before it loads
