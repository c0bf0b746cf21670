"""NodeLSTM: one LSTM applied to every node, weights shared by all nodes."""

from __future__ import annotations

import keras
from keras import ops

from rstg_tf.config import LSTM_INITS as INITS
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

    Initialisation (``init``):

      keras: kernel Glorot-uniform over [D_in, 4U], recurrent kernel orthogonal, bias 0
             but the forget gate's 1 (Keras' ``LSTM``);
      cudnn: each gate's [D_in, U] and [U, U] block Glorot-uniform on its own, biases 0
             (the reference's TF1 ``CudnnLSTM``).

    Args:
      units: state width.
      init: "keras" or "cudnn".

    Call arguments:
      x: inputs [T, ..., D_in], time first (any leading node / batch axes after it).
      state: (h, c), each [..., units]: the state before the first frame.

    Returns:
      (h [T, ..., units], (h_last, c_last)): every frame's output and the final state.
      ``step`` does one frame; ``sequence`` is ``call``.

    Example:

    >>> lstm = NodeLSTM(8, init="cudnn")
    >>> x = keras.ops.ones((10, 2, 14, 4))                 # [T, B, N, D_in]
    >>> zeros = keras.ops.zeros((2, 14, 8))
    >>> h, (h_last, c_last) = lstm(x, (zeros, zeros))
    >>> tuple(h.shape)
    (10, 2, 14, 8)
    """

    def __init__(self, units, init="keras", **kwargs):
        super().__init__(**kwargs)
        if init not in INITS:
            raise ValueError(f"NodeLSTM init must be one of {list(INITS)}; got {init!r}.")
        self.units, self.init = int(units), init

    def build(self, input_shape):
        d_in = input_shape[-1]
        u = self.units
        cudnn = self.init == "cudnn"
        self.kernel = self.add_weight(name="kernel", shape=(d_in, 4 * u), initializer=(
            _per_gate_glorot() if cudnn else "glorot_uniform"))
        # (made after the kernel: an unseeded initializer takes its seed when made)
        recurrent_init = _per_gate_glorot() if cudnn else _float32_draw(
            keras.initializers.Orthogonal())       # QR has no bfloat16/float16 kernel
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel", shape=(u, 4 * u), initializer=recurrent_init)
        forget = 1.0 if self.init == "keras" else 0.0     # Keras' unit_forget_bias

        def bias_init(shape, dtype=None):
            return ops.concatenate([ops.zeros((u,), dtype), ops.full((u,), forget, dtype),
                                    ops.zeros((2 * u,), dtype)])

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
        return {**super().get_config(), "units": self.units, "init": self.init}



def _float32_draw(initializer):
    """``initializer`` drawn in float32 and cast (for dtypes it has no kernel for)."""
    def draw(shape, dtype=None):
        return ops.cast(initializer(shape, "float32"), dtype)
    return draw


def _per_gate_glorot():
    """Glorot-uniform for a [rows, 4U] kernel, one [rows, U] block per gate (its fan-in
    and fan-out are the block's): what cuDNN's LSTM draws for its per-gate matrices."""
    def draw(shape, dtype=None):
        rows, cols = shape
        glorot = keras.initializers.GlorotUniform()
        return ops.concatenate([glorot((rows, cols // 4), dtype) for _ in range(4)], axis=-1)
    return draw
