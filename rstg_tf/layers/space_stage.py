"""SpaceStage: one send / gather / update on every frame's graph (docs/reference_code.md §2)."""

from __future__ import annotations

import keras
from keras import ops

from rstg_tf.config import RSTGConfig
from rstg_tf.graph import build_graph
from rstg_tf.layers.gather import Gather
from rstg_tf.layers.norm import apply_norm, make_norm


@keras.saving.register_keras_serializable(package="rstg_tf")
class SpaceStage(keras.layers.Layer):
    """Message passing between the nodes of each frame.

    For nodes v (with optional fixed position maps p appended: x = [v | p]):

        send:   m_ij = norm(relu(W2 relu(W1 [x_j | x_i] + b1) + b2))   for ALL pairs
        gather: g_i = Gather(v, m, A)                                   (see Gather)
        update: v_i <- norm(MLP_u([v_i | g_i]))                         (ReLU layers)

    The first send layer is linear in [x_j | x_i], so with W1 = [W_s; W_r]
    ``W1 [x_j | x_i] = W_s x_j + W_r x_i``: computed per node and broadcast to the
    N x N pairs (exact, N times fewer FLOPs than the reference's per-pair matmul, which
    ``factorized_send=False`` reproduces). The same weights serve every iteration and
    every frame. ``temporal`` reuses send and update for the homogeneous schedule, where
    a node's past state is the sender of a message to its present self.

    Args:
      config: an RSTGConfig (or its dict): frame size and scales (the graph), widths,
        gather, norm, scalewise update, position maps.

    Call arguments:
      nodes: [M, N, D] node features of M frames (or frames x batch).
      training: Python bool, for batch norms.

    Returns:
      The updated nodes [M, N, node_dim].

    Example:

    >>> config = RSTGConfig(node_dim=8, message_dim=8)        # 14 nodes: 3x3, 2x2, 1x1
    >>> tuple(SpaceStage(config)(np.ones((4, 14, 8), "float32")).shape)
    (4, 14, 8)
    """

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.config = config if isinstance(config, RSTGConfig) else RSTGConfig.from_dict(config)
        c = self.config
        self.graph = build_graph(c.frame_size, c.num_scales, c.position_map_size)
        self.send2 = keras.layers.Dense(c.message_dim, activation="relu", name="send2")
        # Messages [M, N, N, Dm]; gathered and updated nodes [M, N, D].
        self.message_norm = make_norm(c.norm, "message_norm", axes=c.norm_axes(4))
        self.gather = Gather(c.gather, c.adjacency, c.norm, c.node_dim,
                             c.leaky_relu_slope, norm_axes=c.norm_axes(3), name="gather")
        groups = len(self.graph.grids) if c.scalewise_update else 1
        self.update_mlps = [
            [keras.layers.Dense(c.node_dim, activation="relu", name=f"update{g}_{i}")
             for i in range(c.update_layers)]
            for g in range(groups)
        ]
        self.update_norm = make_norm(c.norm, "update_norm", axes=c.norm_axes(3))

    def build(self, input_shape):
        c = self.config
        n, d = input_shape[-2], input_shape[-1]
        if n != self.graph.num_nodes:
            raise ValueError(f"SpaceStage expects {self.graph.num_nodes} nodes on axis -2; "
                             f"got input shape {tuple(input_shape)}.")
        self.pos_dim = c.position_map_size ** 2 if c.position_maps else 0
        d_in = d + self.pos_dim
        self.send_kernel = self.add_weight(
            name="send1_kernel", shape=(2 * d_in, c.message_dim), initializer="glorot_uniform")
        self.send_bias = self.add_weight(name="send1_bias", shape=(c.message_dim,),
                                         initializer="zeros")
        lead = tuple(input_shape[:-2])
        self.send2.build(lead + (n, n, c.message_dim))
        if self.message_norm is not None:
            self.message_norm.build(lead + (n, n, c.message_dim))
        self.gather.build(tuple(input_shape), lead + (n, n, c.message_dim))
        for mlp in self.update_mlps:
            width = d + c.message_dim
            for layer in mlp:
                layer.build(lead + (None, width))
                width = c.node_dim
        if self.update_norm is not None:
            self.update_norm.build(lead + (n, c.node_dim))

    # -- send ----------------------------------------------------------------------------
    def _with_positions(self, x):
        if not self.pos_dim:
            return x
        pos = ops.convert_to_tensor(self.graph.position_maps, dtype=x.dtype)
        pos = ops.broadcast_to(pos, tuple(ops.shape(x)[:-1]) + (self.pos_dim,))
        return ops.concatenate([x, pos], axis=-1)

    def _split_kernel(self, dtype):
        k = ops.cast(self.send_kernel, dtype)
        d_in = k.shape[0] // 2
        return k[:d_in], k[d_in:]

    def _second_layer(self, first, training):
        return apply_norm(self.message_norm, self.send2(first), training)

    def send(self, nodes, training=None):
        """nodes [M, N, D] -> messages [M, N(receiver i), N(sender j), Dm]."""
        x = self._with_positions(nodes)
        bias = ops.cast(self.send_bias, x.dtype)
        if not self.config.factorized_send:
            n = x.shape[-2]
            senders = ops.repeat(x[:, None, :, :], n, axis=1)    # [M, i, j] = x_j
            receivers = ops.repeat(x[:, :, None, :], n, axis=2)  # [M, i, j] = x_i
            pairs = ops.concatenate([senders, receivers], axis=-1)
            first = ops.relu(ops.matmul(pairs, ops.cast(self.send_kernel, x.dtype)) + bias)
            return self._second_layer(first, training)
        w_s, w_r = self._split_kernel(x.dtype)
        from_sender = ops.matmul(x, w_s)                     # [M, N(j), Dm]
        to_receiver = ops.matmul(x, w_r) + bias              # [M, N(i), Dm]
        # The per-pair part: broadcast add, ReLU, second layer. For a single frame (the
        # online step at batch 1) it runs as two independent ops, one per half of the
        # receivers (exact): on a CPU, with oneDNN's bfloat16 matmuls, that step is
        # ~0.6 ms faster than with one [N*N, Dm] op. Larger inputs: one op (1-2 % faster).
        n = x.shape[-2]
        cuts = [0, n // 2, n] if x.shape[0] == 1 and n > 1 else [0, n]
        second = [self.send2(ops.relu(from_sender[:, None, :, :]
                                      + to_receiver[:, a:b, None, :]))
                  for a, b in zip(cuts, cuts[1:])]
        messages = second[0] if len(second) == 1 else ops.concatenate(second, axis=1)
        return apply_norm(self.message_norm, messages, training)

    # -- update --------------------------------------------------------------------------
    def update(self, nodes, gathered, training=None):
        """[v_i | g_i] -> new node features [M, N, node_dim]."""
        u = ops.concatenate([nodes, ops.cast(gathered, nodes.dtype)], axis=-1)
        if len(self.update_mlps) == 1:
            parts = [(u, self.update_mlps[0])]
        else:
            parts = [(u[..., s.start:s.stop, :], mlp)
                     for s, mlp in zip(self.graph.scale_slices, self.update_mlps)]
        outs = []
        for part, mlp in parts:
            for layer in mlp:
                part = layer(part)
            outs.append(part)
        out = outs[0] if len(outs) == 1 else ops.concatenate(outs, axis=-2)
        return apply_norm(self.update_norm, out, training)

    def call(self, nodes, training=None):
        messages = self.send(nodes, training)
        adjacency = ops.convert_to_tensor(self.graph.adjacency)
        gathered = self.gather(nodes, messages, adjacency, training=training)
        return self.update(nodes, gathered, training)

    def temporal(self, past, present, training=None):
        """Homogeneous time stage: node i's past state sends one message to its present.

        past, present [M, N, D] -> [M, N, node_dim], with the space stage's own send and
        update weights.
        """
        w_s, w_r = self._split_kernel(present.dtype)
        first = ops.relu(ops.matmul(self._with_positions(past), w_s)
                         + ops.matmul(self._with_positions(present), w_r)
                         + ops.cast(self.send_bias, present.dtype))
        # As a [M, N, 1, Dm] "pair" tensor so the message norm sees the send's layout.
        message = self._second_layer(first[:, :, None, :], training)[:, :, 0, :]
        return self.update(present, message, training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.config.node_dim,)

    def get_config(self):
        return {**super().get_config(), "config": self.config.to_dict()}
