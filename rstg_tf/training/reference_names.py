"""The reference's variable name of every weight of our Something-Something models.

``reference_table(model)`` lists, for every weight of one of our models
(``build_video_model``), the variables of the authors' TF1 checkpoints (IuliaDuta/RSTG,
relative to the checkpoint's root) it is made of and the conversion (``CONVERSIONS``);
``rstg_tf.training.reference_ckpt`` reads a checkpoint by these names.

Names: backbone layers keep theirs under ``backbone/`` ({b}_branch2a, ..,
nonlocal_conv3_1_theta for our nonlocal_res3_1/theta), a graph at {p} lives under
``backbone/whole_graph_model_{p}`` (RSTG-to-vec: ``whole_graph_model_final``), its residual
norm is ``{p}_after_graph_ln`` (C2D: ``after_graph_ln``) with a separate ``.._ln_scale``,
and the classifier is ``pred``, beside ``backbone``.
LSTMs are named by the scope the reference expects them in (``{scope}/`` + ``LSTM_CELL``);
where TF1 uniquified it, ``reference_ckpt`` finds the alias.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np

from rstg_tf.backbones.resnet3d import Bottleneck3D, ResNetStem
from rstg_tf.layers.non_local import NonLocalBlock
from rstg_tf.layers.rstg import RSTG

LSTM_CELL = "rnn/multi_rnn_cell/cell_0/cudnn_compatible_lstm_cell"
BN_VARIABLES = ("gamma", "beta", "moving_mean", "moving_variance")
_GATHER_SCOPES = {"dot": "dot_product_attn", "simple": "my_attn"}


@dataclasses.dataclass(frozen=True)
class Entry:
    """One weight of ours (its ``variable.path``), the reference variables it is made of
    (relative to the checkpoint's root) and the name of its conversion in CONVERSIONS."""

    weight: str
    sources: Tuple[str, ...]
    convert: str = "copy"


# -- conversions ---------------------------------------------------------------------------
def _conv1x1_to_dense(value):
    if value.ndim < 2 or any(d != 1 for d in value.shape[:-2]):
        raise ValueError(f"expected a 1x1 convolution kernel; got shape {value.shape}")
    return value.reshape(value.shape[-2:])


def _tf_gates_to_keras(value):
    """Gate blocks on the last axis: TF's (i, j, f, o) -> Keras' (i, f, j, o)."""
    i, j, f, o = np.split(value, 4, axis=-1)
    return np.concatenate([i, f, j, o], axis=-1)


def _lstm_rows(value, recurrent: bool):
    rows = value.shape[0] - value.shape[-1] // 4     # input rows first, then `units` rows
    return _tf_gates_to_keras(value[rows:] if recurrent else value[:rows])


# name -> (function of the source values, what it does)
CONVERSIONS: Dict[str, Tuple[Callable[[Sequence[np.ndarray]], np.ndarray], str]] = {
    "copy": (lambda v: v[0], "as is (Conv3D kernels are [kt, kh, kw, in, out] in both)"),
    "conv1x1": (lambda v: _conv1x1_to_dense(v[0]),
                "1x1 conv kernel [1, .., 1, in, out] -> Dense [in, out]"),
    "lstm_input": (lambda v: _lstm_rows(v[0], False),
                   "kernel rows [:in]; gates (i, j, f, o) -> (i, f, j, o)"),
    "lstm_recurrent": (lambda v: _lstm_rows(v[0], True),
                       "kernel rows [in:]; gates (i, j, f, o) -> (i, f, j, o)"),
    "lstm_bias": (lambda v: _tf_gates_to_keras(v[0]), "gates (i, j, f, o) -> (i, f, j, o)"),
    "scaled_beta": (lambda v: v[1] * v[0],
                    "scale * beta: scale * (LN(x) + beta) = LN(x) * scale + scale * beta"),
}


# -- the table -----------------------------------------------------------------------------
def _bn(ours: str, ref: str) -> List[Entry]:
    return [Entry(f"{ours}/{v}", (f"{ref}/{v}",)) for v in BN_VARIABLES]


def _dense(ours: str, ref: str, convert: str = "conv1x1") -> List[Entry]:
    return [Entry(f"{ours}/kernel", (f"{ref}/kernel",), convert),
            Entry(f"{ours}/bias", (f"{ref}/bias",))]


def _norm(layer, ours: str, ref: str) -> List[Entry]:
    """A norm at one of the graph's places: the reference's ``apply_normalization``."""
    if layer is None:
        return []
    if isinstance(layer, keras.layers.BatchNormalization):
        return _bn(ours, f"{ref}_bn")
    return [Entry(f"{ours}/{v}", (f"{ref}_ln/{v}",)) for v in ("gamma", "beta")]


def _residual(layer, ours: str, ref: str) -> List[Entry]:
    """The reference's ``residual_norm``: a batch norm, or scale * (LN(x) + beta) with a
    scale-free layer norm and a separate scale variable."""
    if isinstance(layer, keras.layers.BatchNormalization):
        return _bn(ours, f"{ref}_bn")
    return [Entry(f"{ours}/gamma", (f"{ref}_ln_scale",)),
            Entry(f"{ours}/beta", (f"{ref}_ln/beta", f"{ref}_ln_scale"), "scaled_beta")]


def graph_scope(place: str) -> str:
    """The reference's scope of the graph at ``place`` (res2..res5 inside the backbone)."""
    return (f"whole_graph_model_{place}" if place == "final"
            else f"backbone/whole_graph_model_{place}")


def _residual_prefix(place: str, style: str) -> str:
    inside = "" if place == "final" else "backbone/"
    return f"{inside}after_graph" if style == "c2d" else f"{inside}{place}_after_graph"


def _lstm(ours: str, scope: str) -> List[Entry]:
    cell = f"{scope}/{LSTM_CELL}"
    return [Entry(f"{ours}/kernel", (f"{cell}/kernel",), "lstm_input"),
            Entry(f"{ours}/recurrent_kernel", (f"{cell}/kernel",), "lstm_recurrent"),
            Entry(f"{ours}/bias", (f"{cell}/bias",), "lstm_bias")]


def _gather(gather, ours: str, graph: str) -> List[Entry]:
    scope = _GATHER_SCOPES.get(gather.kind)
    if scope is None:          # "sum": the reference has no such gather
        return []
    att = f"{graph}/{scope}"
    return (_dense(f"{ours}/att_receiver", f"{att}/att_conv1")
            + _dense(f"{ours}/att_sender", f"{att}/att_conv2")
            + [Entry(f"{ours}/bias", (f"{att}/att_bias/biases",))]
            + _norm(gather.norm_layer, f"{ours}/gather_norm", f"{att}/att"))


def _space(space, ours: str, graph: str) -> List[Entry]:
    send = f"{graph}/send_messages_mlp"
    scalewise = space.config.scalewise_update
    update = f"{graph}/update_node_mlp_" if scalewise else f"{graph}/update_node_mlp"
    entries = [Entry(f"{ours}/send1_kernel", (f"{send}/send_conv1/kernel",), "conv1x1"),
               Entry(f"{ours}/send1_bias", (f"{send}/send_conv1/bias",))]
    entries += _dense(f"{ours}/send2", f"{send}/send_conv2")
    entries += _norm(space.message_norm, f"{ours}/message_norm", f"{send}/message")
    entries += _gather(space.gather, f"{ours}/gather", graph)
    for s, mlp in enumerate(space.update_mlps):
        suffix = f"_type{s + 1}" if scalewise else ""
        for i, layer in enumerate(mlp):
            entries += _dense(f"{ours}/{layer.name}", f"{update}/update_conv{i + 1}{suffix}")
    return entries + _norm(space.update_norm, f"{ours}/update_norm", f"{update}/update")


def _rstg(layer: RSTG, style: str) -> List[Entry]:
    place, ours = layer.name[len("rstg_"):], layer.name
    graph = graph_scope(place)
    entries = []
    if layer.input_bn is not None:      # SyncMNIST's unnamed tf.layers batch norm
        entries += _bn(f"{ours}/input_bn", f"{graph}/batch_normalization")
    if layer.project_in is not None:
        entries += _dense(f"{ours}/project_in", f"{graph}/project_i3d", "copy")
    entries += _norm(layer.input_norm, f"{ours}/input_norm", f"{graph}/before_graf")
    if layer.space is not None:
        entries += _space(layer.space, f"{ours}/space", graph)
    for lstm, scope in ((layer.time_intern, f"{graph}/cudnn_lstm"),
                        (layer.time_final, f"{graph}/time_update_extern/cudnn_lstm")):
        if lstm is not None:
            entries += _lstm(f"{ours}/{lstm.name}", scope)
    if layer.project_out is not None:
        entries += _dense(f"{ours}/project_out", f"{graph}/project_back_to_i3d", "copy")
    if layer.map_norm is not None:
        entries += _residual(layer.map_norm, f"{ours}/map_norm", _residual_prefix(place, style))
    return entries


def _stem(layer, style):
    return [Entry(f"{layer.name}/conv1/kernel", ("backbone/conv1/kernel",))] + _bn(
        f"{layer.name}/res_conv1_bn", "backbone/res_conv1_bn")


def _bottleneck(layer, style):
    entries = []
    for branch in ("branch2a", "branch2b", "branch2c", "branch1"):
        if getattr(layer, branch) is not None:
            ref = f"backbone/{layer.name}_{branch}"
            entries += [Entry(f"{layer.name}/{branch}/kernel", (f"{ref}/kernel",))]
            entries += _bn(f"{layer.name}/{branch}_bn", f"{ref}_bn")
    return entries


def _non_local(layer, style):
    ref = "backbone/" + layer.name.replace("nonlocal_res", "nonlocal_conv", 1)
    entries = [e for part in ("theta", "phi", "g", "out")
               for e in _dense(f"{layer.name}/{part}", f"{ref}_{part}")]
    return entries + _bn(f"{layer.name}/norm", f"{ref}_bn")


# Rules by layer class, and by name for the model's plain Keras layers.
_CLASS_RULES = ((ResNetStem, _stem), (Bottleneck3D, _bottleneck), (NonLocalBlock, _non_local),
                (RSTG, _rstg))
_NAMED_RULES = {
    "pred": lambda layer, style: _dense(layer.name, "pred"),
    "rstg_final_norm": lambda layer, style: _residual(layer, layer.name,
                                                      _residual_prefix("final", style)),
}


def reference_style(model: keras.Model) -> str:
    """Which reference file builds ``model``: "c2d" (C2D_NL_baseline_graph_50.py: a stem
    without temporal extent) or "i3d" (NL_baseline_graph_50.py; also the Non-local model)."""
    stems = [layer for layer in model.layers if isinstance(layer, ResNetStem)]
    if not stems:
        raise ValueError(f"model {model.name!r} has no ResNetStem: only the video ResNets of "
                         "rstg_tf.models.video_resnet have reference checkpoints.")
    return "c2d" if stems[0].temporal_kernel == 1 else "i3d"


def reference_table(model: keras.Model, style: Optional[str] = None) -> List[Entry]:
    """Every weight of ``model`` that the reference has, in the model's build order."""
    style = style or reference_style(model)
    entries = []
    for layer in model.layers:
        rule = _NAMED_RULES.get(layer.name) or next(
            (r for cls, r in _CLASS_RULES if isinstance(layer, cls)), None)
        if rule is not None:
            entries += rule(layer, style)
    return entries


def format_table(entries: Sequence[Entry]) -> str:
    """One line an entry: ``our weight <- reference variable(s)  [conversion]``."""
    width = max((len(e.weight) for e in entries), default=0)
    return "\n".join(f"{e.weight:<{width}} <- {' * '.join(e.sources)}"
                     + ("" if e.convert == "copy" else f"  [{CONVERSIONS[e.convert][1]}]")
                     for e in entries)
