"""Programs for data, training and evaluation, run from the repository root."""
