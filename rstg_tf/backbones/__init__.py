"""Per-frame feature extractors."""

from rstg_tf.backbones.simple_c2d import SimpleC2D

__all__ = ["SimpleC2D"]
