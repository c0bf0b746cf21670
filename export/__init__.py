"""SavedModel export for TF Serving and its clients (issue #5), run as ``python -m export``."""
