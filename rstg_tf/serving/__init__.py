"""SavedModel export for TF Serving (clip and streaming signatures, warmup, configs)."""

from rstg_tf.serving.module import ServingModule

__all__ = ["ServingModule"]
