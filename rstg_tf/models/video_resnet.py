"""Something-Something models: ResNet-50 C2D / I3D with RSTG-to-map, RSTG-to-vec or
Non-local blocks, as the reference builds them (docs/reference_code.md §6-§8), top to bottom.

    clip [B, T, H, W, 3] float32, normalised (x - 114.75) / 57.375
      -> stem -> res2 [-> RSTG-to-map] -> pool2 (T/2) -> res3 [-> RSTG-to-map]
      -> res4 [-> RSTG-to-map] -> res5                       [B, T/2, h, w, 2048]
      -> pool5: average over (T/2, h0, w0) windows, stride 1  [B, t', h', w', 2048]
         (+ RSTG-to-vec of the res5 map: 'plus' adds it, 'serial' replaces the pool)
      -> dropout -> ``pred`` dense -> mean over the windows   logits [B, classes]

RSTG-to-map sits after the last block of its stage; Non-local blocks after every other
block of theirs (the Non-local paper's 5-block model: res3 and res4). The pool5 window is
the res5 map of a training-size clip (14 x 14 at 224): a clip of that size gives one
window (a global average), a 256 x 256 dense-evaluation crop gives 3 x 3 windows whose
logits are averaged, as the reference's fully convolutional head does.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Tuple

import keras
from keras import ops

from rstg_tf.backbones.resnet3d import (BACKBONES, Bottleneck3D, ResNetStem, feature_size,
                                        stage_blocks, stem_temporal_kernel)
from rstg_tf.config import PRESETS, RSTGConfig, WithRSTGConfig
from rstg_tf.layers.non_local import NonLocalBlock
from rstg_tf.layers.norm import make_norm
from rstg_tf.layers.rstg import RSTG

MAP_STAGES = ("res2", "res3", "res4")
NON_LOCAL_STAGES = ("res2", "res3", "res4", "res5")
COMBINATIONS = ("plus", "serial")
# Reference SSv1 graph: dot gather, layer norm, scalewise update, no position maps.
SSV1_RSTG = PRESETS["ssv1"]


@dataclasses.dataclass(frozen=True)
class VideoModelConfig(WithRSTGConfig):
    """A Something-Something classifier.

    Attributes:
      backbone: "c2d" or "i3d" (ResNet-50 as in the Non-local paper).
      num_classes: 174 for Something-Something-v1.
      num_frames: input frames (32); the graph sees num_frames / 2 after pool2 (the
        reference's ``used_num_frames`` 16), res2's graph all of them.
      frame_size: training crop (224, 224); fixes the pool5 window and the graph edges.
      width: base width of the ResNet (64 in ResNet-50; smaller for tests).
      rstg_stages: stages followed by RSTG-to-map (any of res2, res3, res4).
      rstg_final: RSTG-to-vec on the res5 map, combined with the pooled features.
      combination: "plus" (pooled + graph vector) or "serial" (the graph vector only).
      non_local_stages: stages with a Non-local block after every other bottleneck.
      dropout: classifier dropout (0.3).
      frozen_bn: the backbone's batch norms use their moving statistics in training too.
      rstg: the graph's options; frame_size follows ``frame_size``, the read-out is set per
        place (map inside the backbone, mean over time for the vector).
      final_norm: normalisation of each graph output before it joins the backbone ("layer",
        zero-initialised scale: the graph starts as the identity).
    """

    backbone: str = "i3d"
    num_classes: int = 174
    num_frames: int = 32
    frame_size: Tuple[int, int] = (224, 224)
    width: int = 64
    rstg_stages: Tuple[str, ...] = ()
    rstg_final: bool = False
    combination: str = "plus"
    non_local_stages: Tuple[str, ...] = ()
    dropout: float = 0.3
    frozen_bn: bool = True
    rstg: RSTGConfig = SSV1_RSTG
    final_norm: str = "layer"

    def __post_init__(self):
        object.__setattr__(self, "frame_size", tuple(int(s) for s in self.frame_size))
        object.__setattr__(self, "rstg_stages", tuple(self.rstg_stages))
        object.__setattr__(self, "non_local_stages", tuple(self.non_local_stages))
        if self.backbone not in BACKBONES:
            raise ValueError(f"VideoModelConfig.backbone must be one of {list(BACKBONES)}; "
                             f"got {self.backbone!r}.")
        for field, allowed in (("rstg_stages", MAP_STAGES),
                               ("non_local_stages", NON_LOCAL_STAGES)):
            bad = sorted(set(getattr(self, field)) - set(allowed))
            if bad:
                raise ValueError(f"VideoModelConfig.{field}: unknown stages {bad}; allowed: "
                                 f"{list(allowed)}.")
        both = sorted(set(self.rstg_stages) & set(self.non_local_stages))
        if both:
            raise ValueError(f"stages {both} are given both an RSTG and Non-local blocks; "
                             "choose one per stage.")
        if self.combination not in COMBINATIONS:
            raise ValueError(f"VideoModelConfig.combination must be one of "
                             f"{list(COMBINATIONS)}; got {self.combination!r}.")
        if self.final_norm not in ("layer", "batch"):
            raise ValueError(f"final_norm must be 'layer' or 'batch'; got {self.final_norm!r}.")
        if self.num_classes < 2 or self.width < 4 or self.width % 4:
            raise ValueError("num_classes >= 2 and a width that is a multiple of 4 (>= 4) "
                             f"are needed; got {self.num_classes} and {self.width}.")
        if self.num_frames < 2 or self.num_frames % 2:
            raise ValueError(f"num_frames must be even (pool2 halves it); got "
                             f"{self.num_frames}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout}.")
        places = self.rstg_stages + (("res5",) if self.rstg_final else ())
        for stage in places:
            if min(feature_size(s, stage) for s in self.frame_size) < self.rstg.num_scales:
                raise ValueError(f"frames of {self.frame_size} give a {stage} map smaller "
                                 f"than the graph's {self.rstg.num_scales}x"
                                 f"{self.rstg.num_scales} grid.")
        if tuple(self.rstg.frame_size) != self.frame_size:
            object.__setattr__(self, "rstg", self.rstg.replace(frame_size=self.frame_size))


def _residual_norm(kind: str, rstg: RSTGConfig, name: str):
    """The reference's ``residual_norm`` of the graph vector: its output starts at zero."""
    return make_norm(kind, name, gamma_initializer="zeros", axes=rstg.norm_axes(2))


def _stage(x, config: VideoModelConfig, stage: str, blocks):
    for i, spec in enumerate(blocks):
        x = Bottleneck3D(spec.out_channels, spec.inner_channels, spec.stride,
                         spec.temporal_kernel, frozen_bn=config.frozen_bn, name=spec.name)(x)
        if stage in config.non_local_stages and i % 2 == 1:
            x = NonLocalBlock(spec.out_channels // 2, subsample=True, scaled=True,
                              frozen_bn=config.frozen_bn, name=f"nonlocal_{stage}_{i}")(x)
    if stage in config.rstg_stages:
        rstg = config.rstg.replace(readout="map", map_norm=config.final_norm)
        x = RSTG(rstg, name=f"rstg_{stage}")(x)
    return x


def build_video_model(config: VideoModelConfig,
                      input_size: Optional[Tuple[int, int]] = None) -> keras.Model:
    """The classifier of ``config``: normalised float clips -> logits [B, classes] float32.

    Args:
      config: the model.
      input_size: (H, W) of the clips it takes, default ``config.frame_size``; a model built
        for dense evaluation (256 x 256 crops) shares every weight with the training one.
    """
    height, width = input_size or config.frame_size
    clips = keras.Input((config.num_frames, height, width, 3), name="clips")
    blocks = stage_blocks(config.backbone, config.width)
    x = ResNetStem(config.width, stem_temporal_kernel(config.backbone),
                   frozen_bn=config.frozen_bn, name="stem")(clips)
    x = _stage(x, config, "res2", blocks["res2"])
    x = keras.layers.MaxPooling3D((2, 1, 1), strides=(2, 1, 1), name="pool2")(x)
    for stage in ("res3", "res4", "res5"):
        x = _stage(x, config, stage, blocks[stage])
    window = (config.num_frames // 2,) + tuple(feature_size(s, "res5")
                                               for s in config.frame_size)
    pool5 = keras.layers.AveragePooling3D(window, strides=1, padding="valid", name="pool5")
    if not config.rstg_final:
        pooled = pool5(x)
    else:
        vector = RSTG(config.rstg.replace(readout="mean_time", project_out=True),
                      name="rstg_final")(x)
        vector = _residual_norm(config.final_norm, config.rstg, "rstg_final_norm")(vector)
        vector = keras.layers.Reshape((1, 1, 1, -1), name="rstg_final_vector")(vector)
        pooled = vector if config.combination == "serial" else keras.layers.Add(
            name="rstg_final_plus")([pool5(x), vector])
    pooled = keras.layers.Dropout(config.dropout, name="dropout")(pooled)
    logits = keras.layers.Dense(config.num_classes, dtype="float32", name="pred")(pooled)
    logits = keras.layers.GlobalAveragePooling3D(dtype="float32", name="mean_windows")(logits)
    name = f"{config.backbone}" + "".join(f"_rstg_{s}" for s in config.rstg_stages) + \
        ("_rstg_final" if config.rstg_final else "") + \
        ("_nonlocal" if config.non_local_stages else "")
    return keras.Model(clips, logits, name=name)


def rebuild_for_input(model: keras.Model, config: VideoModelConfig,
                      input_size: Tuple[int, int]) -> keras.Model:
    """``model``'s weights in a model that takes clips of ``input_size`` (dense crops)."""
    if tuple(input_size) == tuple(model.input_shape[2:4]):
        return model
    copy = build_video_model(config, input_size)
    copy.set_weights(model.get_weights())
    return copy


def count_params(model: keras.Model) -> Dict[str, int]:
    """Parameters of ``model``: all, trainable, and those in RSTG / Non-local blocks."""
    graph = sum(int(sum(ops.size(w) for w in layer.weights)) for layer in model.layers
                if isinstance(layer, (RSTG, NonLocalBlock)))
    total = int(sum(ops.size(w) for w in model.weights))
    trainable = int(sum(ops.size(w) for w in model.trainable_weights))
    return {"total": total, "trainable": trainable, "graph": graph}
