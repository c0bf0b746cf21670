"""Space-time non-local block (Wang et al. 2018), embedded-Gaussian form."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="rstg_tf")
class NonLocalBlock(keras.layers.Layer):
    """Every position attends to every position of the clip; residual output.

        y = x + BN(W_z (softmax(theta(x) phi(x)^T) g(x)))

    with theta, phi, g 1x1x1 projections to ``inner_dim`` and the batch norm's scale
    initialised at zero, so the block starts as the identity. The Non-local paper's video
    ResNet form (``subsample=True, scaled=True, frozen_bn=True``, as the RSTG reference's
    Non-local baseline) max-pools phi's and g's input 1x2x2, divides the logits by
    sqrt(inner_dim) and runs the batch norm on its moving statistics.

    Shapes:
      [B, T, H, W, C] -> [B, T, H, W, C]

    Args:
      inner_dim: width of theta / phi / g (default C // 2).
      subsample: max-pool phi's and g's input 1x2x2 (4x fewer keys).
      scaled: divide the attention logits by sqrt(inner_dim).
      frozen_bn: run the output batch norm on its moving statistics, also in training.

    Call arguments:
      x: [B, T, H, W, C] (H and W even with ``subsample``).
      training: Python bool, for the batch norm.

    Returns:
      x plus the attended features, [B, T, H, W, C].

    Example:

    >>> block = NonLocalBlock(4, subsample=True, scaled=True)
    >>> x = np.random.rand(2, 2, 4, 4, 8).astype("float32")
    >>> bool(np.allclose(block(x), x))          # zero-initialised scale: the identity
    True
    """

    def __init__(self, inner_dim: int = None, subsample: bool = False, scaled: bool = False,
                 frozen_bn: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.inner_dim = inner_dim
        self.subsample, self.scaled, self.frozen_bn = bool(subsample), bool(scaled), \
            bool(frozen_bn)

    def build(self, input_shape):
        if len(input_shape) != 5 or input_shape[-1] is None:
            raise ValueError(f"NonLocalBlock expects [B, T, H, W, C]; got {tuple(input_shape)}.")
        channels = input_shape[-1]
        inner = self.inner_dim or max(channels // 2, 1)
        self.theta, self.phi, self.g = (keras.layers.Dense(inner, name=n)
                                        for n in ("theta", "phi", "g"))
        self.out = keras.layers.Dense(channels, name="out")
        # The video ResNet form uses the backbone's batch-norm constants (Caffe2's).
        constants = dict(momentum=0.9, epsilon=1e-5) if self.subsample else {}
        self.norm = keras.layers.BatchNormalization(gamma_initializer="zeros", name="norm",
                                                    **constants)
        self.inner = inner
        flat = (input_shape[0], None, channels)
        for layer in (self.theta, self.phi, self.g):
            layer.build(flat)
        self.out.build((input_shape[0], None, inner))
        self.norm.build(input_shape)

    def call(self, x, training=None):
        shape = ops.shape(x)
        flat = ops.reshape(x, (shape[0], -1, shape[-1]))             # [B, THW, C]
        keys = flat
        if self.subsample:
            pooled = ops.max_pool(x, (1, 2, 2), strides=(1, 2, 2), padding="valid")
            keys = ops.reshape(pooled, (shape[0], -1, shape[-1]))   # [B, THW/4, C]
        theta, phi, g = self.theta(flat), self.phi(keys), self.g(keys)
        logits = ops.matmul(theta, ops.transpose(phi, (0, 2, 1)))
        if self.scaled:
            logits = logits * ops.cast(self.inner ** -0.5, logits.dtype)
        y = self.out(ops.matmul(ops.softmax(logits, axis=-1), g))   # [B, THW, C]
        y = self.norm(ops.reshape(y, shape), training=False if self.frozen_bn else training)
        return x + y

    def get_config(self):
        return {**super().get_config(), "inner_dim": self.inner_dim,
                "subsample": self.subsample, "scaled": self.scaled,
                "frozen_bn": self.frozen_bn}
