"""Plain-data configuration of the RSTG block.

Defaults equal the reference's SyncMNIST config (``configs/mnist_config.yaml`` in
``IuliaDuta/RSTG``): ``simple`` gather, soft adjacency, no norm, K=3, 3 scales, 512 dims,
the ``all_temp`` schedule. Presets for the paper's other settings live in ``PRESETS``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Tuple

GATHERS = ("sum", "simple", "dot")
ADJACENCIES = ("soft", "strict")
NORMS = ("none", "batch", "layer")
# Learning-rate schedules of a training run (rstg_tf.training.schedules); here so that the
# flag definitions can list them without importing Keras.
LR_SCHEDULES = ("plateau", "constant", "cosine")
# --grad_norm_batches' cap: GradientNormLog differentiates them after every epoch.
MAX_GRAD_NORM_BATCHES = 16
SCHEDULES = ("all_temp", "one_temp", "space_only", "time_only", "homogeneous")
READOUTS = ("mean_time", "last_step", "map")
CLIP_MODES = ("layerwise", "framewise")
# How the node LSTMs start (rstg_tf.layers.node_lstm): Keras' LSTM defaults, or what the
# reference's TF1 CudnnLSTM used.
LSTM_INITS = ("keras", "cudnn")
# What a layer norm (norm="layer") normalises together: each node's (message's) features on
# their own, or, as the reference's tf.contrib layer_norm does, all of a tensor's axes but
# the batch: the clip's nodes at the input, a frame's N nodes or N x N messages, the clip's
# map at the RSTG-to-map output.
LAYER_NORM_SCOPES = ("node", "graph")
# Dtypes a trained model's weights may be stored and run in for inference / serving.
WEIGHT_DTYPES = ("float32", "bfloat16", "float16")

# The clip heads ModelConfig accepts: rstg_tf.models' built-in registry entries, here so
# that a config is checked without importing Keras; rstg_tf.models.register adds others.
MODEL_NAMES = ["rstg", "mean_lstm", "conv_lstm", "i3d", "non_local"]

# Schedules whose nodes carry a state from frame to frame (and so have an online mode).
RECURRENT_SCHEDULES = ("all_temp", "one_temp", "time_only", "homogeneous")


@dataclasses.dataclass(frozen=True)
class RSTGConfig:
    """Every option of the RSTG block (docs/reference_code.md §1-§6).

    Attributes:
      frame_size: (dim_h, dim_w) of the input frames in pixels; fixes the node rectangles
        and so the adjacency (docs/reference_code.md §1). 64x64 for SyncMNIST, 224x224 for
        Something-Something.
      num_scales: square grids num_scales x num_scales, ..., 1x1 (largest first).
      node_dim: node feature width, also the LSTM units and the update MLP width.
      message_dim: width of the two send-MLP layers.
      num_iterations: K, the number of space (and internal time) stages.
      gather: "sum" | "simple" (GAT-style additive, reference SyncMNIST default) | "dot".
      adjacency: "soft" (reference: softmax over all nodes, adjacency only shifts logits)
        or "strict" (non-neighbours masked out).
      norm: "none" | "batch" | "layer", applied at the reference's places (node input,
        messages, simple/sum gather before its ReLU, update output).
      scalewise_update: one update MLP per scale instead of one shared.
      update_layers: depth of the update MLP.
      position_maps: append each node's fixed 6x6 Gaussian position map to its features
        before the send MLP (the paper's "positional" model).
      position_map_size: side of the position map (6 in the reference).
      schedule: "all_temp" | "one_temp" | "space_only" | "time_only" | "homogeneous".
      readout: "mean_time" (reference RSTG-to-vec: mean over time, sum over nodes),
        "last_step" (paper text: sum over nodes at the last step) or "map" (RSTG-to-map).
      input_batch_norm: batch norm on node features before the graph (reference: SyncMNIST).
      project_out: dense projection of the final nodes back to the input channel count.
        None means automatic: on for the "map" read-out when the input was projected in.
      clip_mode: "layerwise" (reference order, fastest for training) or "framewise"
        (a compiled loop over frames calling ``step``; memory constant in T).
      factorized_send: compute the send MLP's first layer per node and broadcast to pairs
        (exact); False builds the N x N pair tensor as the reference does.
      leaky_relu_slope: slope of the leaky ReLU in the ``simple`` gather (TF1 default 0.2).
      map_norm: normalisation of the RSTG-to-map output ("layer" or "batch"); its scale is
        zero-initialised so the block starts as the identity.
      lstm_init: the node LSTMs' initialisation: "keras" (Keras' LSTM: Glorot input
        kernel over all four gates, orthogonal recurrent kernel, forget-gate bias 1) or
        "cudnn" (the reference's TF1 CudnnLSTM: Glorot per gate for both kernels, zero
        biases).
      layer_norm_scope: with norm="layer": "node" (each node's features normalised on their
        own; the online mode needs it) or "graph" (the reference's: the clip's nodes at the
        input, a frame's whole graph after the messages, gather and update, the clip's map
        after RSTG-to-map; epsilon 1e-12). "graph" has no online mode: its input norm
        reads the whole clip.
    """

    frame_size: Tuple[int, int] = (64, 64)
    num_scales: int = 3
    node_dim: int = 512
    message_dim: int = 512
    num_iterations: int = 3
    gather: str = "simple"
    adjacency: str = "soft"
    norm: str = "none"
    scalewise_update: bool = False
    update_layers: int = 2
    position_maps: bool = False
    position_map_size: int = 6
    schedule: str = "all_temp"
    readout: str = "mean_time"
    input_batch_norm: bool = True
    project_out: Optional[bool] = None
    clip_mode: str = "layerwise"
    factorized_send: bool = True
    leaky_relu_slope: float = 0.2
    map_norm: str = "layer"
    lstm_init: str = "keras"
    layer_norm_scope: str = "node"

    def __post_init__(self):
        object.__setattr__(self, "frame_size", tuple(int(s) for s in self.frame_size))
        self.validate()

    def validate(self) -> None:
        """Raises ValueError naming the offending field, what it got and what it allows."""
        choices = {
            "gather": GATHERS,
            "adjacency": ADJACENCIES,
            "norm": NORMS,
            "schedule": SCHEDULES,
            "readout": READOUTS,
            "clip_mode": CLIP_MODES,
            "map_norm": ("layer", "batch"),
            "lstm_init": LSTM_INITS,
            "layer_norm_scope": LAYER_NORM_SCOPES,
        }
        for field, allowed in choices.items():
            value = getattr(self, field)
            if value not in allowed:
                raise ValueError(
                    f"RSTGConfig.{field} must be one of {list(allowed)}; got {value!r}."
                )
        positive = ("num_scales", "node_dim", "message_dim", "num_iterations",
                    "update_layers", "position_map_size")
        for field in positive:
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"RSTGConfig.{field} must be a positive integer; got {value!r}."
                )
        if len(self.frame_size) != 2 or min(self.frame_size) < self.num_scales:
            raise ValueError(
                "RSTGConfig.frame_size must be (height, width), each at least num_scales="
                f"{self.num_scales}; got {self.frame_size!r}."
            )
        if self.position_maps and self.num_scales > self.position_map_size:
            raise ValueError(
                f"position maps of side {self.position_map_size} cannot hold a "
                f"{self.num_scales}x{self.num_scales} grid; use num_scales <= "
                f"position_map_size."
            )

    @property
    def has_time_recurrence(self) -> bool:
        return self.schedule in RECURRENT_SCHEDULES

    def norm_axes(self, rank: int, leading: int = 1):
        """Axes a "graph"-scope layer norm normalises for a tensor of ``rank`` whose first
        ``leading`` axes index separate examples; None for the per-node norm."""
        if self.layer_norm_scope != "graph":
            return None
        return tuple(range(leading - rank, 0))

    def replace(self, **changes: Any) -> "RSTGConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["frame_size"] = list(self.frame_size)
        return out

    @classmethod
    def from_dict(cls, values: dict) -> "RSTGConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown RSTGConfig fields {unknown}; known: {sorted(known)}.")
        return cls(**values)


PRESETS = {
    # Reference SyncMNIST model (Table 1 "All-temp-stages").
    "syncmnist": RSTGConfig(),
    # Table 1 "Positional All-temp", the paper's best SyncMNIST model.
    "syncmnist_positional": RSTGConfig(position_maps=True),
    # Reference Something-Something config: dot gather, layer norm, scalewise update,
    # no position maps, 224x224 frames; used as RSTG-to-map inside I3D.
    "ssv1": RSTGConfig(
        frame_size=(224, 224), gather="dot", norm="layer", scalewise_update=True,
        input_batch_norm=False, readout="map", layer_norm_scope="graph",
    ),
}


def preset(name: str, **changes: Any) -> RSTGConfig:
    """Returns a named preset, optionally with fields replaced."""
    if name not in PRESETS:
        raise ValueError(f"unknown RSTG preset {name!r}; known: {sorted(PRESETS)}.")
    return PRESETS[name].replace(**changes)


class WithRSTGConfig:
    """``to_dict`` / ``from_dict`` / ``replace`` of a frozen model-config dataclass that holds
    an ``RSTGConfig`` as ``rstg`` (tuples are written as JSON lists)."""

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["rstg"] = self.rstg.to_dict()
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    @classmethod
    def from_dict(cls, values: dict):
        values = dict(values)
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}.")
        if isinstance(values.get("rstg"), dict):
            values["rstg"] = RSTGConfig.from_dict(values["rstg"])
        return cls(**values)

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class ModelConfig(WithRSTGConfig):
    """What to build.

    Attributes:
      name: registry key: 'rstg', 'mean_lstm', 'conv_lstm', 'i3d' or 'non_local'.
      num_classes: 46 for SyncMNIST.
      num_frames, frame_size, channels: the clip shape.
      num_filters: backbone width (reference 512).
      dropout: classifier dropout (reference SyncMNIST 0.0).
      hidden: LSTM units (mean_lstm, conv_lstm) or 3D ResNet width (i3d, non_local).
      feature_batch_norm: batch norm on the backbone features before a baseline head, as
        RSTG's ``input_batch_norm`` does on its node features. Without it the raw-scale
        features (mean ~11, max ~300 for the pretrained 32-filter backbone) saturate the
        LSTMs' gates: Conv+LSTM stayed near chance in the quick Table 1. Not used by 'rstg'.
      rstg: the RSTG block's config (name 'rstg'); its frame_size follows ``frame_size``.
    """

    name: str = "rstg"
    num_classes: int = 46
    num_frames: int = 10
    frame_size: Tuple[int, int] = (64, 64)
    channels: int = 1
    num_filters: int = 512
    dropout: float = 0.0
    hidden: int = 512
    feature_batch_norm: bool = True
    rstg: RSTGConfig = RSTGConfig()

    def __post_init__(self):
        if self.name not in MODEL_NAMES:
            raise ValueError(f"unknown model {self.name!r}; known: {sorted(MODEL_NAMES)}.")
        if self.num_classes < 2 or self.num_frames < 1 or self.num_filters < 1:
            raise ValueError("num_classes >= 2, num_frames >= 1 and num_filters >= 1 needed.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout}.")
        object.__setattr__(self, "frame_size", tuple(self.frame_size))
        if tuple(self.rstg.frame_size) != self.frame_size:
            object.__setattr__(self, "rstg", self.rstg.replace(frame_size=self.frame_size))
