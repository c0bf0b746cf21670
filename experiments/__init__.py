"""Investigations beside the reproduction, run from the repository root (``python -m
experiments.<name>.<program>``). They import the library (``rstg_tf``); it never imports
them."""

from rstg_tf import cli

cli.program_environment()  # TensorFlow's logging and CPU kernels, before it loads
