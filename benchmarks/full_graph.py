"""The paper's complexity comparison (section 2.4): RSTG against one graph over all T x N
space-time nodes, every node messaging every other with RSTG's own send / gather / update
(O(T^2 N^2 K) messages instead of O(T N^2 K)). Benchmark-only: nothing here is part of
the library."""

from __future__ import annotations

import keras
from keras import ops

from rstg_tf.config import RSTGConfig
from rstg_tf.layers.space_stage import SpaceStage


class FullSpaceTimeGraph(keras.layers.Layer):
    """K rounds of SpaceStage message passing on one fully connected graph of all T*N
    nodes of a clip, then the mean: nodes [B, T, N, D] -> [B, D]."""

    def __init__(self, config: RSTGConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.space = SpaceStage(config, name="space")

    def build(self, input_shape):
        n, d = input_shape[-2], input_shape[-1]
        self.space.build((None, n, d))   # weights do not depend on the node count

    def call(self, nodes, training=None):
        b, t, n, d = ops.shape(nodes)
        x = ops.reshape(nodes, (b, t * n, d))
        p = t * n
        full = 1.0 - ops.eye(p)                       # every pair, no self-loops
        for _ in range(self.config.num_iterations):
            messages = self.space.send(x, training)
            x = self.space.update(x, self.space.gather(x, messages, full), training)
        return ops.mean(x, axis=1)


def full_graph_flops(config: RSTGConfig, t: int, num_nodes: int = 14) -> float:
    """Forward matmul FLOPs of FullSpaceTimeGraph on one clip of T frames."""
    p, d, m = t * num_nodes, config.node_dim, config.message_dim
    per_round = (2 * p * d * m * 2 + 2 * p * p * m * m + 2 * p * p * m
                 + 2 * p * (d + m) * d + 2 * p * d * d * (config.update_layers - 1))
    return config.num_iterations * per_round
