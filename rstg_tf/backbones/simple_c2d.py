"""``simple_c2d``: the reference's SyncMNIST backbone (docs/reference_code.md §7)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="rstg_tf")
class SimpleC2D(keras.layers.Layer):
    """Three times [3x3 'valid' conv, ReLU, 2x2 max-pool stride 2], applied to every frame.

    Pixels enter as raw 0-255 floats (the reference does no scaling), so a uint8 clip can be
    fed directly.

    Shapes:
      [B, T, H, W, C] -> [B, T, H', W', num_filters]; 64x64 -> 6x6
      (64 -conv-> 62 -pool-> 31 -conv-> 29 -pool-> 14 -conv-> 12 -pool-> 6).

    Args:
      num_filters: conv width (512 in the reference).
      num_layers: conv + pool stages (3).
    """

    def __init__(self, num_filters: int = 512, num_layers: int = 3, **kwargs):
        super().__init__(**kwargs)
        if num_filters < 1 or num_layers < 1:
            raise ValueError("num_filters and num_layers must be positive.")
        self.num_filters, self.num_layers = int(num_filters), int(num_layers)
        self.convs = [keras.layers.Conv2D(self.num_filters, 3, padding="valid",
                                          activation="relu", name=f"conv{i}")
                      for i in range(self.num_layers)]
        self.pool = keras.layers.MaxPooling2D(2, strides=2)

    def output_size(self, size: int) -> int:
        for _ in range(self.num_layers):
            size = (size - 2) // 2
        return size

    def build(self, input_shape):
        if len(input_shape) != 5 or input_shape[2] is None or input_shape[3] is None:
            raise ValueError("SimpleC2D expects clips [batch, time, height, width, channels] "
                             f"with static height and width; got {tuple(input_shape)}.")
        h, w, c = input_shape[2:]
        if min(self.output_size(h), self.output_size(w)) < 1:
            raise ValueError(f"frames of {h}x{w} are too small for {self.num_layers} "
                             "conv + pool stages.")
        shape = (None, h, w, c)
        for conv in self.convs:
            conv.build(shape)
            shape = self.pool.compute_output_shape(conv.compute_output_shape(shape))

    def call(self, clips):
        shape = ops.shape(clips)
        x = ops.reshape(ops.cast(clips, self.compute_dtype), (-1, *shape[2:]))
        for conv in self.convs:
            x = self.pool(conv(x))
        return ops.reshape(x, (shape[0], shape[1], *ops.shape(x)[1:]))

    def compute_output_shape(self, input_shape):
        b, t, h, w, _ = input_shape
        return (b, t, self.output_size(h), self.output_size(w), self.num_filters)

    def get_config(self):
        return {**super().get_config(), "num_filters": self.num_filters,
                "num_layers": self.num_layers}
