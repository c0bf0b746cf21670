"""The optional normalisation the reference applies at fixed places (``use_norm``)."""

from __future__ import annotations

import keras


def make_norm(kind: str, name: str, gamma_initializer="ones"):
    """Returns a norm layer over the last axis, or None for ``kind == "none"``.

    Args:
      kind: "none" | "batch" | "layer".
      name: layer name.
      gamma_initializer: initial scale ("zeros" makes a residual branch start at zero).
    """
    if kind == "none":
        return None
    if kind == "batch":
        return keras.layers.BatchNormalization(
            axis=-1, gamma_initializer=gamma_initializer, name=name)
    if kind == "layer":
        return keras.layers.LayerNormalization(
            axis=-1, gamma_initializer=gamma_initializer, name=name)
    raise ValueError(f"norm must be one of ['none', 'batch', 'layer']; got {kind!r}.")


def apply_norm(layer, x, training=None):
    """Applies ``layer`` (possibly None) to x."""
    if layer is None:
        return x
    if isinstance(layer, keras.layers.BatchNormalization):
        return layer(x, training=training)
    return layer(x)
