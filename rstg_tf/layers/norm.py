"""The optional normalisation the reference applies at fixed places (``use_norm``)."""

from __future__ import annotations

from typing import Optional, Sequence

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="rstg_tf")
class GraphLayerNorm(keras.layers.Layer):
    """Layer norm over several axes with a per-channel scale and offset.

        y = gamma * (x - mean) / sqrt(var + epsilon) + beta

    with mean and var taken over ``axes`` for each index of the others, gamma and beta of
    shape [C] (the last axis). This is the reference's ``tf.contrib.layers.layer_norm``
    with its defaults (``begin_norm_axis=1``: every axis but the batch;
    ``begin_params_axis=-1``; epsilon 1e-12): it normalises a whole frame's graph (all N
    nodes, or all N x N messages) or a whole clip, not each node on its own. Statistics
    are computed in float32.

    Args:
      axes: the axes normalised together (negative: from the end); must include -1.
      epsilon: added to the variance.
      gamma_initializer: initial scale.

    Call arguments:
      x: any [..., C].

    Returns:
      The normalised x, same shape and dtype.

    Example:
    >>> norm = GraphLayerNorm(axes=(-2, -1))     # a frame's N nodes x D together
    >>> tuple(norm(np.ones((2, 14, 8), "float32")).shape)
    (2, 14, 8)
    """

    def __init__(self, axes: Sequence[int] = (-1,), epsilon: float = 1e-12,
                 gamma_initializer="ones", **kwargs):
        super().__init__(**kwargs)
        self.axes = tuple(int(a) for a in axes)
        self.epsilon = float(epsilon)
        self.gamma_initializer = keras.initializers.get(gamma_initializer)

    def build(self, input_shape):
        rank = len(input_shape)
        axes = sorted(a % rank for a in self.axes)
        if rank - 1 not in axes or len(set(axes)) != len(axes):
            raise ValueError(f"GraphLayerNorm axes {self.axes} must be distinct and include "
                             f"the channels (-1) of an input of rank {rank}.")
        self._axes = tuple(axes)
        channels = input_shape[-1]
        self.gamma = self.add_weight(name="gamma", shape=(channels,),
                                     initializer=self.gamma_initializer)
        self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros")

    def call(self, x):
        x32 = ops.cast(x, "float32")
        mean, var = ops.moments(x32, axes=self._axes, keepdims=True)
        y = (x32 - mean) * ops.rsqrt(var + self.epsilon)
        y = y * ops.cast(self.gamma, "float32") + ops.cast(self.beta, "float32")
        return ops.cast(y, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "axes": list(self.axes), "epsilon": self.epsilon,
                "gamma_initializer": keras.initializers.serialize(self.gamma_initializer)}


def make_norm(kind: str, name: str, gamma_initializer="ones",
              axes: Optional[Sequence[int]] = None):
    """Returns a norm layer over the last axis, or None for ``kind == "none"``.

    Args:
      kind: "none" | "batch" | "layer".
      name: layer name.
      gamma_initializer: initial scale ("zeros" makes a residual branch start at zero).
      axes: for "layer": normalise these axes together (``GraphLayerNorm``, the
        reference's layer norm); None: the last axis only (each node on its own).
    """
    if kind == "none":
        return None
    if kind == "batch":
        return keras.layers.BatchNormalization(
            axis=-1, gamma_initializer=gamma_initializer, name=name)
    if kind == "layer" and axes is not None:
        return GraphLayerNorm(axes, gamma_initializer=gamma_initializer, name=name)
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
