"""Clip heads on backbone features [B, T, H, W, C] -> [B, D]: the paper's SyncMNIST
baselines (Table 1). RSTG itself is ``rstg_tf.layers.RSTG``."""

from __future__ import annotations

import keras
from keras import ops

from rstg_tf.layers.non_local import NonLocalBlock


def _frames(x):
    """[B, T, H, W, C] -> ([B*T, H, W, C], (B, T))."""
    shape = ops.shape(x)
    return ops.reshape(x, (-1, *shape[2:])), (shape[0], shape[1])


@keras.saving.register_keras_serializable(package="rstg_tf")
class MeanLSTM(keras.layers.Layer):
    """Mean+LSTM: spatial mean of each frame's features, an LSTM over time, its last output.

    Args:
      units: LSTM width.

    Call arguments:
      x: backbone features [B, T, H, W, C].
      training: Python bool (unused beyond the LSTM's own behaviour).

    Returns:
      [B, units], the LSTM's output after the last frame.

    Example:

    >>> tuple(MeanLSTM(16)(np.zeros((2, 10, 6, 6, 8), "float32")).shape)
    (2, 16)
    """

    def __init__(self, units: int = 512, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.lstm = keras.layers.LSTM(units, name="lstm")

    def build(self, input_shape):
        self.lstm.build((input_shape[0], input_shape[1], input_shape[-1]))

    def call(self, x, training=None):
        return self.lstm(ops.mean(x, axis=(2, 3)), training=training)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="rstg_tf")
class ConvLSTM(keras.layers.Layer):
    """Conv+LSTM: per frame, 3x3 convs (the first with stride 2) keep the layout of the
    feature map; the flattened map feeds an LSTM over time; its last output.

    Args:
      units: LSTM width.
      conv_filters: width of the per-frame convs.
      num_convs: number of 3x3 convs (ReLU, 'same'; the first with stride 2).

    Call arguments:
      x: backbone features [B, T, H, W, C] (6x6 maps -> 3x3 x conv_filters per frame).
      training: Python bool, passed to the LSTM.

    Returns:
      [B, units], the LSTM's output after the last frame.

    Example:

    >>> head = ConvLSTM(16, conv_filters=4)
    >>> tuple(head(np.zeros((2, 10, 6, 6, 8), "float32")).shape)
    (2, 16)
    """

    def __init__(self, units: int = 512, conv_filters: int = 128, num_convs: int = 2,
                 **kwargs):
        super().__init__(**kwargs)
        self.units, self.conv_filters, self.num_convs = units, conv_filters, num_convs
        self.convs = [keras.layers.Conv2D(conv_filters, 3, strides=2 if i == 0 else 1,
                                          padding="same", activation="relu", name=f"conv{i}")
                      for i in range(num_convs)]
        self.lstm = keras.layers.LSTM(units, name="lstm")

    def build(self, input_shape):
        shape = (None, *input_shape[2:])
        for conv in self.convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        self.lstm.build((input_shape[0], input_shape[1], shape[1] * shape[2] * shape[3]))

    def call(self, x, training=None):
        frames, (b, t) = _frames(x)
        for conv in self.convs:
            frames = conv(frames)
        return self.lstm(ops.reshape(frames, (b, t, -1)), training=training)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "conv_filters": self.conv_filters, "num_convs": self.num_convs}


@keras.saving.register_keras_serializable(package="rstg_tf")
class ResidualBlock3D(keras.layers.Layer):
    """Two 3x3x3 convs with batch norm, ReLU and an identity shortcut (the second norm's
    scale starts at zero: the block starts as the identity, after a ReLU).

    Call arguments:
      x: [B, T, H, W, C].
      training: Python bool: batch statistics (True) or moving ones.

    Returns:
      [B, T, H, W, C].

    Example:

    >>> tuple(ResidualBlock3D()(np.ones((1, 2, 3, 3, 4), "float32")).shape)
    (1, 2, 3, 3, 4)
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.conv1 = keras.layers.Conv3D(channels, 3, padding="same", use_bias=False,
                                         name="conv1")
        self.conv2 = keras.layers.Conv3D(channels, 3, padding="same", use_bias=False,
                                         name="conv2")
        self.bn1 = keras.layers.BatchNormalization(name="bn1")
        self.bn2 = keras.layers.BatchNormalization(gamma_initializer="zeros", name="bn2")
        for layer in (self.conv1, self.conv2, self.bn1, self.bn2):
            layer.build(input_shape)

    def call(self, x, training=None):
        y = ops.relu(self.bn1(self.conv1(x), training=training))
        return ops.relu(x + self.bn2(self.conv2(y), training=training))


@keras.saving.register_keras_serializable(package="rstg_tf")
class SmallI3D(keras.layers.Layer):
    """I3D baseline: a small 3D ResNet on the feature maps; Non-Local adds one space-time
    non-local block in its second residual stage.

        1x1x1 conv to ``width`` -> stage 1 (blocks) -> stage 2 (blocks, [non-local after its
        first block]) -> global average pool.

    Args:
      width: channels of the 3D ResNet.
      blocks_per_stage: ``ResidualBlock3D`` per stage (two stages).
      non_local: add the space-time ``NonLocalBlock`` (the Non-Local baseline).

    Call arguments:
      x: backbone features [B, T, H, W, C].
      training: Python bool, for the batch norms.

    Returns:
      [B, width].

    Example:

    >>> head = SmallI3D(8, non_local=True)
    >>> tuple(head(np.zeros((2, 4, 6, 6, 16), "float32")).shape)
    (2, 8)
    """

    def __init__(self, width: int = 256, blocks_per_stage: int = 1, non_local: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.width, self.blocks_per_stage, self.non_local = width, blocks_per_stage, non_local
        self.stem = keras.layers.Conv3D(width, 1, activation="relu", name="stem")
        self.stages = [[ResidualBlock3D(name=f"res{s + 2}_{b}") for b in range(blocks_per_stage)]
                       for s in range(2)]
        self.nl = NonLocalBlock(name="non_local") if non_local else None

    def build(self, input_shape):
        self.stem.build(input_shape)
        shape = self.stem.compute_output_shape(input_shape)
        for stage in self.stages:
            for block in stage:
                block.build(shape)
        if self.nl is not None:
            self.nl.build(shape)

    def call(self, x, training=None):
        x = self.stem(x)
        for s, stage in enumerate(self.stages):
            for b, block in enumerate(stage):
                x = block(x, training=training)
                if s == 1 and b == 0 and self.nl is not None:
                    x = self.nl(x, training=training)
        return ops.mean(x, axis=(1, 2, 3))

    def get_config(self):
        return {**super().get_config(), "width": self.width,
                "blocks_per_stage": self.blocks_per_stage, "non_local": self.non_local}
