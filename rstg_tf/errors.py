"""Errors the programs report as one line (no Keras or TensorFlow import here)."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the checkpoints hold the last finite epoch.
    ``python -m train`` and its siblings print it as one ``error:`` line and exit 1."""
