"""ResNet-50 for video, C2D and I3D, as in the Non-local paper (Wang et al. 2018).

The layout the reference's Something-Something backbones use (``backbone_model: c2d | i3d``):

    clip [B, T, 224, 224, 3]                      (normalised: (x - 114.75) / 57.375)
      stem: conv (kt x 7 x 7, stride 1x2x2, 64) -> BN -> ReLU -> max-pool 1x3x3 stride 1x2x2
                                                  [B, T, 55, 55, 64]
      res2: 3 bottlenecks, 256 out                [B, T, 55, 55, 256]
      pool2: temporal max-pool 2x1x1 stride 2     [B, T/2, 55, 55, 256]
      res3: 4 bottlenecks, 512 out, stride 2      [B, T/2, 28, 28, 512]
      res4: 6 bottlenecks, 1024 out, stride 2     [B, T/2, 14, 14, 1024]
      res5: 3 bottlenecks, 2048 out, stride 1     [B, T/2, 14, 14, 2048]

A bottleneck is conv (kt x 1 x 1) -> BN -> ReLU -> conv (1 x 3 x 3, spatial stride) -> BN ->
ReLU -> conv 1x1x1 -> BN, plus the shortcut (identity, or 1x1x1 conv + BN where the shape
changes), then ReLU. I3D inflates the first conv of some blocks to kt = 3 (stem kt = 5):
res2 all, res3 and res4 every other block from the first, res5 the middle one; C2D has
kt = 1 everywhere. Convolutions pad explicitly and then run 'valid', as the reference does,
so odd and even maps give its exact windows. Every batch norm runs on its moving statistics
(the reference trains with ``is_training=False`` in the backbone: small batches), while its
scale and offset still learn; ``frozen_bn=False`` makes them ordinary batch norms.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Tuple

import keras
from keras import ops

BACKBONES = ("c2d", "i3d")
STAGES = ("res2", "res3", "res4", "res5")
# Per stage: blocks of ResNet-50, output channels / base width, spatial stride.
_STAGE_SHAPE = {"res2": (3, 4, 1), "res3": (4, 8, 2), "res4": (6, 16, 2), "res5": (3, 32, 1)}
# I3D: which blocks' first conv is 3x1x1 (the Non-local paper's ResNet-50 I3D).
_I3D_TEMPORAL = {"res2": (1, 1, 1), "res3": (1, 0, 1, 0), "res4": (1, 0, 1, 0, 1, 0),
                 "res5": (0, 1, 0)}
BN_MOMENTUM, BN_EPSILON = 0.9, 1e-5


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One bottleneck: its name, output / inner width, spatial stride, temporal kernel."""

    name: str
    out_channels: int
    inner_channels: int
    stride: int
    temporal_kernel: int


def stage_blocks(backbone: str, width: int = 64) -> Dict[str, List[BlockSpec]]:
    """The bottlenecks of every stage of ResNet-50 C2D / I3D with base ``width`` (64)."""
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {list(BACKBONES)}; got {backbone!r}.")
    plan = {}
    for stage, (num, factor, stride) in _STAGE_SHAPE.items():
        inflate = _I3D_TEMPORAL[stage] if backbone == "i3d" else (0,) * num
        plan[stage] = [BlockSpec(f"{stage}_{i}", width * factor, width * factor // 4,
                                 stride if i == 0 else 1, 1 + 2 * inflate[i])
                       for i in range(num)]
    return plan


def stem_temporal_kernel(backbone: str) -> int:
    return 5 if backbone == "i3d" else 1


def feature_size(size: int, stage: str) -> int:
    """Spatial size of ``stage``'s output for an input of ``size`` pixels (224 -> 55, 55,
    28, 14, 14 for the stem, res2, res3, res4, res5)."""
    size = (size + 6 - 7) // 2 + 1          # stem conv, pad 3
    size = (size - 3) // 2 + 1               # stem max-pool, 'valid'
    if stage == "stem":
        return size
    for name in STAGES[1:STAGES.index(stage) + 1]:
        if _STAGE_SHAPE[name][2] == 2:
            size = (size + 2 - 3) // 2 + 1   # 3x3 conv, pad 1, stride 2
    return size


def _pad(x, t: int, s: int):
    """Zero-pads time by t and height, width by s on both sides."""
    if t == 0 and s == 0:
        return x
    return ops.pad(x, ((0, 0), (t, t), (s, s), (s, s), (0, 0)))


def _conv(filters, kernel, strides=(1, 1, 1), name=None, use_bias=False):
    return keras.layers.Conv3D(filters, kernel, strides=strides, padding="valid",
                               use_bias=use_bias, name=name)


def _bn(name):
    return keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


class _FrozenBNLayer(keras.layers.Layer):
    """Base of the backbone's layers: their batch norms follow ``frozen_bn``."""

    def __init__(self, frozen_bn: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.frozen_bn = bool(frozen_bn)

    def _norm(self, bn, x, training):
        return bn(x, training=False if self.frozen_bn else training)

    def get_config(self):
        return {**super().get_config(), "frozen_bn": self.frozen_bn}


@keras.saving.register_keras_serializable(package="rstg_tf")
class ResNetStem(_FrozenBNLayer):
    """conv1 (kt x 7 x 7, stride 1x2x2, 64 filters, no bias) -> BN -> ReLU -> max-pool.

    Shapes:
      [B, T, H, W, 3] -> [B, T, H', W', filters], H' = ((H - 1) // 2 + 1 - 3) // 2 + 1.

    Args:
      filters: conv width (64).
      temporal_kernel: 1 (C2D) or 5 (I3D).
      frozen_bn: run the batch norm on its moving statistics, also in training.

    Call arguments:
      x: normalised clips [B, T, H, W, 3].
      training: Python bool (ignored by a frozen batch norm).

    Example:

    >>> tuple(ResNetStem(8, temporal_kernel=5)(np.zeros((1, 4, 64, 64, 3), "float32")).shape)
    (1, 4, 15, 15, 8)
    """

    def __init__(self, filters: int = 64, temporal_kernel: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.temporal_kernel = int(filters), int(temporal_kernel)
        self.conv = _conv(self.filters, (self.temporal_kernel, 7, 7), (1, 2, 2), name="conv1")
        self.bn = _bn("res_conv1_bn")
        self.pool = keras.layers.MaxPooling3D((1, 3, 3), strides=(1, 2, 2), padding="valid")

    def build(self, input_shape):
        self.conv.build((None, None, None, None, input_shape[-1]))
        self.bn.build((None, None, None, None, self.filters))

    def call(self, x, training=None):
        x = self.conv(_pad(x, self.temporal_kernel // 2, 3))
        return self.pool(ops.relu(self._norm(self.bn, x, training)))

    def compute_output_shape(self, input_shape):
        b, t, h, w, _ = input_shape
        size = lambda s: None if s is None else ((s - 1) // 2 + 1 - 3) // 2 + 1  # noqa: E731
        return (b, t, size(h), size(w), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "temporal_kernel": self.temporal_kernel}


@keras.saving.register_keras_serializable(package="rstg_tf")
class Bottleneck3D(_FrozenBNLayer):
    """ResNet bottleneck on clips; I3D inflates its first conv in time.

        y = ReLU(BN(conv_c(ReLU(BN(conv_b(ReLU(BN(conv_a(x)))))))) + shortcut(x))

    conv_a: kt x 1 x 1 to ``inner_channels``; conv_b: 1 x 3 x 3, spatial ``stride``;
    conv_c: 1 x 1 x 1 to ``out_channels``; shortcut: identity, or 1x1x1 conv (stride) + BN
    where the channels or the stride change. Sub-layer names follow the reference's
    (``branch2a``, ``branch2a_bn``, ..., ``branch1``, ``branch1_bn``).

    Shapes:
      [B, T, H, W, C] -> [B, T, ceil(H / stride), ceil(W / stride), out_channels]

    Args:
      out_channels, inner_channels: widths (ResNet-50: 4 x inner = out).
      stride: spatial stride of conv_b and the shortcut (1 or 2).
      temporal_kernel: 1 or 3.
      frozen_bn: run the batch norms on their moving statistics, also in training.

    Call arguments:
      x: [B, T, H, W, C].
      training: Python bool (ignored by frozen batch norms).

    Example:

    >>> block = Bottleneck3D(32, 8, stride=2, temporal_kernel=3)
    >>> tuple(block(np.zeros((1, 4, 15, 15, 16), "float32")).shape)
    (1, 4, 8, 8, 32)
    """

    def __init__(self, out_channels: int, inner_channels: int, stride: int = 1,
                 temporal_kernel: int = 1, **kwargs):
        super().__init__(**kwargs)
        if temporal_kernel not in (1, 3) or stride not in (1, 2):
            raise ValueError(f"Bottleneck3D: temporal_kernel must be 1 or 3 and stride 1 or "
                             f"2; got {temporal_kernel} and {stride}.")
        self.out_channels, self.inner_channels = int(out_channels), int(inner_channels)
        self.stride, self.temporal_kernel = int(stride), int(temporal_kernel)
        s = self.stride
        self.branch2a = _conv(self.inner_channels, (self.temporal_kernel, 1, 1), name="branch2a")
        self.branch2b = _conv(self.inner_channels, (1, 3, 3), (1, s, s), name="branch2b")
        self.branch2c = _conv(self.out_channels, 1, name="branch2c")
        self.bns = [_bn(f"branch2{c}_bn") for c in "abc"]
        self.branch1 = self.branch1_bn = None

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels != self.out_channels or self.stride != 1:
            self.branch1 = _conv(self.out_channels, 1, (1, self.stride, self.stride),
                                 name="branch1")
            self.branch1_bn = _bn("branch1_bn")
            self.branch1.build((None, None, None, None, channels))
            self.branch1_bn.build((None, None, None, None, self.out_channels))
        for conv, bn in zip((self.branch2a, self.branch2b, self.branch2c), self.bns):
            conv.build((None, None, None, None, channels))
            channels = conv.filters
            bn.build((None, None, None, None, channels))

    def call(self, x, training=None):
        y = ops.relu(self._norm(self.bns[0], self.branch2a(
            _pad(x, self.temporal_kernel // 2, 0)), training))
        y = ops.relu(self._norm(self.bns[1], self.branch2b(_pad(y, 0, 1)), training))
        y = self._norm(self.bns[2], self.branch2c(y), training)
        shortcut = x
        if self.branch1 is not None:
            shortcut = self._norm(self.branch1_bn, self.branch1(x), training)
        return ops.relu(y + shortcut)

    def compute_output_shape(self, input_shape):
        b, t, h, w, _ = input_shape
        size = lambda n: None if n is None else (n - 1) // self.stride + 1  # noqa: E731
        return (b, t, size(h), size(w), self.out_channels)

    def get_config(self):
        return {**super().get_config(), "out_channels": self.out_channels,
                "inner_channels": self.inner_channels, "stride": self.stride,
                "temporal_kernel": self.temporal_kernel}


def stage_sizes(frame_size: Tuple[int, int]) -> Dict[str, Tuple[int, int]]:
    """(H, W) of every stage's output for frames of ``frame_size``."""
    return {stage: tuple(feature_size(s, stage) for s in frame_size)
            for stage in ("stem",) + STAGES}
