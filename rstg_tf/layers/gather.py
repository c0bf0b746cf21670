"""Gather: each node sums its messages, weighted by attention (docs/reference_code.md §2)."""

from __future__ import annotations

import keras
from keras import ops

from rstg_tf.layers.norm import apply_norm, make_norm

_MASKED = -1e9  # Logit of a masked pair; softmax runs in float32 so this is safe.


def _softmax(logits):
    """Softmax over the last axis from elementwise ops. On CPU, TF's oneDNN softmax takes
    25-50 us on a [1, 14, 14] input and now and then ~1 ms, on the online step's critical
    path; these ops take a few us each."""
    e = ops.exp(logits - ops.max(logits, axis=-1, keepdims=True))
    return e / ops.sum(e, axis=-1, keepdims=True)


@keras.saving.register_keras_serializable(package="rstg_tf")
class Gather(keras.layers.Layer):
    """Attention-weighted sum of messages, plus bias, (norm,) ReLU.

    With adjacency A (A_ij = 1 for neighbours, 0 on the diagonal) and node features v:

      sum:    c_ij = A_ij
      simple: l_ij = A_ij (a1 . v_i + b1) + A_ij (a2 . v_j + b2)
              c_ij = softmax_j(leaky_relu(l_ij) + A_ij)
      dot:    l_ij = A_ij <W1 v_i + b1, W2 v_j + b2>
              c_ij = softmax_j(l_ij)
      out_i = relu(norm(sum_j c_ij m_ij + bias))

    ``adjacency="soft"`` (the reference) takes the softmax over all N nodes, so
    non-neighbours and the node itself keep some weight; ``"strict"`` masks them out
    (a node with no neighbours then gathers zero). The norm is applied for ``sum`` and
    ``simple`` only, as in the reference (its dot head has none).

    Args:
      kind: "sum" | "simple" | "dot".
      adjacency_mode: "soft" | "strict".
      norm: "none" | "batch" | "layer".
      attention_dim: width of W1, W2 for ``dot``.
      leaky_relu_slope: slope for ``simple``.
      norm_axes: with ``norm="layer"``, the axes normalised together (``GraphLayerNorm``,
        the reference's scope: (-2, -1), a frame's N nodes); None: each node alone.

    Call arguments:
      nodes: node features [M, N, D] (M frames x batch).
      messages: [M, N(receiver i), N(sender j), Dm], from ``SpaceStage.send``.
      adjacency: [N, N] 0/1 (``Graph.adjacency``).
      training: Python bool, for a batch norm.

    Returns:
      The gathered messages [M, N, Dm].

    Example:

    >>> gather = Gather("dot", attention_dim=4)
    >>> nodes = np.ones((2, 3, 5), "float32")
    >>> messages = np.ones((2, 3, 3, 6), "float32")
    >>> adjacency = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], "float32")
    >>> tuple(gather(nodes, messages, adjacency).shape)
    (2, 3, 6)
    """

    def __init__(self, kind="simple", adjacency_mode="soft", norm="none",
                 attention_dim=512, leaky_relu_slope=0.2, norm_axes=None, **kwargs):
        super().__init__(**kwargs)
        if kind not in ("sum", "simple", "dot"):
            raise ValueError(f"gather must be one of ['sum', 'simple', 'dot']; got {kind!r}.")
        if adjacency_mode not in ("soft", "strict"):
            raise ValueError(
                f"adjacency must be one of ['soft', 'strict']; got {adjacency_mode!r}.")
        self.kind = kind
        self.adjacency_mode = adjacency_mode
        self.norm = norm
        self.attention_dim = int(attention_dim)
        self.leaky_relu_slope = float(leaky_relu_slope)
        self.norm_axes = None if norm_axes is None else tuple(norm_axes)
        self.norm_layer = make_norm(norm, "gather_norm", axes=self.norm_axes) \
            if kind != "dot" else None

    def build(self, nodes_shape, messages_shape):
        dm = messages_shape[-1]
        if self.kind == "simple":
            self.att_src = keras.layers.Dense(1, name="att_receiver")
            self.att_dst = keras.layers.Dense(1, name="att_sender")
        elif self.kind == "dot":
            self.att_src = keras.layers.Dense(self.attention_dim, name="att_receiver")
            self.att_dst = keras.layers.Dense(self.attention_dim, name="att_sender")
        if self.kind != "sum":
            self.att_src.build(nodes_shape)
            self.att_dst.build(nodes_shape)
        self.bias = self.add_weight(name="bias", shape=(dm,), initializer="zeros")
        if self.norm_layer is not None:
            self.norm_layer.build(tuple(messages_shape[:-2]) + (dm,))

    def coefficients(self, nodes, adjacency):
        """Attention coefficients c [M, N(i), N(j)] in float32."""
        a = ops.cast(adjacency, "float32")[None]
        if self.kind == "sum":
            return ops.broadcast_to(a, (ops.shape(nodes)[0],) + tuple(a.shape[1:]))
        f_i = ops.cast(self.att_src(nodes), "float32")
        f_j = ops.cast(self.att_dst(nodes), "float32")
        if self.kind == "simple":
            logits = a * f_i + a * ops.transpose(f_j, (0, 2, 1))
            logits = ops.leaky_relu(logits, self.leaky_relu_slope) + a
        else:
            logits = a * ops.matmul(f_i, ops.transpose(f_j, (0, 2, 1)))
        if self.adjacency_mode == "strict":
            return _softmax(ops.where(a > 0, logits, _MASKED)) * a
        return _softmax(logits)

    def call(self, nodes, messages, adjacency, training=None):
        coefs = ops.cast(self.coefficients(nodes, adjacency), messages.dtype)
        # sum_j c_ij m_ij as a batched [1, N] @ [N, Dm] matmul: its gradient is about 3x
        # cheaper than einsum's on TF (the backward of "mij,mijd->mid" transposes).
        out = ops.matmul(coefs[:, :, None, :], messages)[:, :, 0, :]
        out = out + ops.cast(self.bias, out.dtype)
        return ops.relu(apply_norm(self.norm_layer, out, training))

    def compute_output_shape(self, nodes_shape, messages_shape, adjacency_shape):
        return tuple(nodes_shape[:-1]) + (messages_shape[-1],)

    def get_config(self):
        return {
            **super().get_config(),
            "kind": self.kind,
            "adjacency_mode": self.adjacency_mode,
            "norm": self.norm,
            "attention_dim": self.attention_dim,
            "leaky_relu_slope": self.leaky_relu_slope,
            "norm_axes": None if self.norm_axes is None else list(self.norm_axes),
        }
