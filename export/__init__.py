"""SavedModel export for TF Serving and its clients (issue #5), run as ``python -m export``."""

from train import cli as _cli  # noqa: F401  (TensorFlow's CPU settings, before it loads)
