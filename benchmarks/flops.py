"""Forward FLOP counts of the benchmarked blocks (2 per multiply-add, matmuls only).
Plain Python: the benchmarks of every backend share them, and nothing here imports
TensorFlow."""

from __future__ import annotations

from rstg_tf.config import RSTGConfig

H = W = 6  # SyncMNIST backbone map


def rstg_flops_per_frame(config: RSTGConfig, channels: int, num_nodes: int = 14,
                         cells: int = H * W) -> float:
    """Forward FLOPs (2 per multiply-add) of the all_temp block per frame, matmuls only."""
    n, d, m, k = num_nodes, config.node_dim, config.message_dim, config.num_iterations
    lstm = 2 * n * (4 * d * d) * 2                         # input + recurrent projections
    send1 = 2 * n * d * m * 2 if config.factorized_send else 2 * n * n * (2 * d) * m
    send2 = 2 * n * n * m * m
    gather = 2 * n * n * m
    update = 2 * n * (d + m) * d + 2 * n * d * d * (config.update_layers - 1)
    encode = 2 * n * cells * channels + (2 * n * channels * d if channels != d else 0)
    return (k + 1) * lstm + k * (send1 + send2 + gather + update) + encode


def non_local_flops(t: int, positions: int, channels: int) -> float:
    p, inner = t * positions, channels // 2
    return 2 * p * channels * inner * 3 + 2 * p * p * inner * 2 + 2 * p * inner * channels


def simple_c2d_flops_per_frame(num_filters: int, frame_size=(64, 64), channels: int = 1,
                               num_layers: int = 3) -> float:
    """Forward FLOPs of the SyncMNIST backbone (3x3 'valid' convs, 2x2 pools) per frame."""
    (h, w), c, total = frame_size, channels, 0.0
    for _ in range(num_layers):
        h, w = h - 2, w - 2
        total += 2 * h * w * 9 * c * num_filters
        c, h, w = num_filters, h // 2, w // 2
    return total
