"""Space-time non-local block (Wang et al. 2018), embedded-Gaussian form."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="rstg_tf")
class NonLocalBlock(keras.layers.Layer):
    """Every position attends to every position of the clip; residual output.

        y = x + BN(W_z (softmax(theta(x) phi(x)^T) g(x)))

    with theta, phi, g 1x1x1 projections to ``inner_dim`` and the batch norm's scale
    initialised at zero, so the block starts as the identity.

    Shapes:
      [B, T, H, W, C] -> [B, T, H, W, C]

    Args:
      inner_dim: width of theta / phi / g (default C // 2).
    """

    def __init__(self, inner_dim: int = None, **kwargs):
        super().__init__(**kwargs)
        self.inner_dim = inner_dim

    def build(self, input_shape):
        if len(input_shape) != 5 or input_shape[-1] is None:
            raise ValueError(f"NonLocalBlock expects [B, T, H, W, C]; got {tuple(input_shape)}.")
        channels = input_shape[-1]
        inner = self.inner_dim or max(channels // 2, 1)
        self.theta, self.phi, self.g = (keras.layers.Dense(inner, name=n)
                                        for n in ("theta", "phi", "g"))
        self.out = keras.layers.Dense(channels, name="out")
        self.norm = keras.layers.BatchNormalization(gamma_initializer="zeros", name="norm")
        flat = (input_shape[0], None, channels)
        for layer in (self.theta, self.phi, self.g):
            layer.build(flat)
        self.out.build((input_shape[0], None, inner))
        self.norm.build(input_shape)

    def call(self, x, training=None):
        shape = ops.shape(x)
        flat = ops.reshape(x, (shape[0], -1, shape[-1]))             # [B, THW, C]
        theta, phi, g = self.theta(flat), self.phi(flat), self.g(flat)
        attention = ops.softmax(ops.matmul(theta, ops.transpose(phi, (0, 2, 1))), axis=-1)
        y = self.out(ops.matmul(attention, g))                        # [B, THW, C]
        return x + self.norm(ops.reshape(y, shape), training=training)

    def get_config(self):
        return {**super().get_config(), "inner_dim": self.inner_dim}
