"""Programs for data, training and evaluation, run from the repository root."""

from train import cli as _cli  # noqa: F401  (TensorFlow's CPU settings, before it loads)
