"""NodeLSTM: one LSTM applied to every node, weights shared by all nodes (SPEC 3)."""

from __future__ import annotations

import keras
from keras import ops

from rstg_tf.layers.loops import scan


@keras.saving.register_keras_serializable(package="rstg_tf")
class NodeLSTM(keras.layers.Layer):
    """An LSTM over time for a batch of nodes, with Keras' LSTM gate math.

    With input x_t, state (h, c) and gates in the order (i, f, g, o):

        z = x_t W + h U + b
        c' = sigmoid(f) * c + sigmoid(i) * tanh(g)
        h' = sigmoid(o) * tanh(c')

    The input projection ``x W + b`` does not depend on the state, so ``sequence``
    computes it for all T frames in one matmul and the loop only does ``h U``.

    Shapes:
      sequence: x [T, ..., D_in] -> h [T, ..., units]
      step:     x [..., D_in], (h, c) [..., units] -> h', (h', c')

    Args:
      units: state width.
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)

    def build(self, input_shape):
        d_in = input_shape[-1]
        u = self.units
        self.kernel = self.add_weight(
            name="kernel", shape=(d_in, 4 * u), initializer="glorot_uniform")
        orthogonal = keras.initializers.Orthogonal()

        def recurrent_init(shape, dtype=None):  # QR has no bfloat16/float16 kernel:
            return ops.cast(orthogonal(shape, "float32"), dtype)  # draw in float32.

        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel", shape=(u, 4 * u), initializer=recurrent_init)

        def bias_init(shape, dtype=None):  # Keras' unit_forget_bias: f-gate bias 1.
            return ops.concatenate(
                [ops.zeros((u,), dtype), ops.ones((u,), dtype), ops.zeros((2 * u,), dtype)])

        self.bias = self.add_weight(name="bias", shape=(4 * u,), initializer=bias_init)

    def project(self, x):
        """x [..., D_in] -> the input part of the gates, [..., 4 * units]."""
        return ops.matmul(x, ops.cast(self.kernel, x.dtype)) + ops.cast(self.bias, x.dtype)

    def recurrent(self, h):
        """h [..., U] -> the state part of the gates, h U [..., 4 * units]."""
        return ops.matmul(h, ops.cast(self.recurrent_kernel, h.dtype))

    def cell(self, z_x, state, z_h=None):
        """One step from the projected input z_x [..., 4U] and state (h, c); ``z_h``:
        ``recurrent(h)`` if already computed."""
        h, c = state
        z = z_x + (self.recurrent(h) if z_h is None else z_h)
        i, f, g, o = ops.split(z, 4, axis=-1)
        c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
        h = ops.sigmoid(o) * ops.tanh(c)
        return h, (h, c)

    def step(self, x, state, z_h=None):
        """x [..., D_in], state (h, c) -> (h', (h', c'))."""
        return self.cell(self.project(x), state, z_h)

    def sequence(self, x, state):
        """x [T, ..., D_in], initial state (h, c) -> (h [T, ..., U], final state)."""
        z = self.project(x)
        final, hs = scan(lambda s, z_t: self.cell(z_t, s)[::-1], state, z)
        return hs, final

    def call(self, x, state):
        return self.sequence(x, state)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units}
