"""SavedModel export for TF Serving and its clients (issue #5), run as ``python -m export``."""

from rstg_tf import cli

cli.program_environment()  # TensorFlow's logging and CPU kernels, before it loads
