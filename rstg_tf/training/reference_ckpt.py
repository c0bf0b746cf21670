"""Import the authors' TF1 checkpoints (IuliaDuta/RSTG) into our Something-Something models.

The reference (TF 1.13) saves a model under ``tower/resnet_i3d`` (I3D, Non-local) or
``tower/resnet_c2d``; a Kinetics backbone may sit under another root: the scope holding
``backbone/conv1/kernel``. ``reference_table(model)`` lists, for every weight of one of our
models (``build_video_model``), the reference variables it is made of (relative to the root)
and the conversion (``python -m train.import_reference_ckpt --print_table`` prints it);
``import_reference`` reads a checkpoint by name, converts, assigns, and reports the rest.

Names: backbone layers keep theirs under ``backbone/`` ({b}_branch2a, ..,
nonlocal_conv3_1_theta for our nonlocal_res3_1/theta), a graph at {p} lives under
``backbone/whole_graph_model_{p}`` (RSTG-to-vec: ``whole_graph_model_final``), its residual
norm is ``{p}_after_graph_ln`` (C2D: ``after_graph_ln``) with a separate ``.._ln_scale``,
and the classifier is ``pred``, beside ``backbone``.

LSTMs: ``tf.train.Saver`` writes a ``CudnnLSTM`` in the canonical form of
``CudnnCompatibleLSTMCell``, ``{scope}/rnn/multi_rnn_cell/cell_0/cudnn_compatible_lstm_cell/
kernel`` [in + units, 4 units] (input rows first) and ``/bias`` (both cuDNN biases summed),
gates i, j, f, o, where {scope} is the variable scope the layer took when first built: the
reference makes its inner LSTM in ``time_update_intern`` but first calls it inside the graph's
scope G, so we expect G/cudnn_lstm, and G/time_update_extern/cudnn_lstm for the final one.
Since TF1 uniquifies layer scopes (cudnn_lstm, cudnn_lstm_1, ..; time_update_intern,
time_update_intern_1, ..), a scope not found by that name is looked for among the
checkpoint's cell kernels: first inside the graph's own ``whole_graph_model_{p}`` scope (the
final LSTM has ``time_update_extern`` in its path, the inner one not), then among those in no
graph's scope, in natural order (``_1`` before ``_2``, ``backbone/..`` before the root's own)
for the graphs in build order. The report lists every such alias.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import keras
import numpy as np

from rstg_tf.backbones.resnet3d import Bottleneck3D, ResNetStem
from rstg_tf.layers.non_local import NonLocalBlock
from rstg_tf.layers.rstg import RSTG

ANCHOR = "backbone/conv1/kernel"
DEFAULT_ROOTS = {"i3d": "tower/resnet_i3d", "c2d": "tower/resnet_c2d"}
LSTM_CELL = "rnn/multi_rnn_cell/cell_0/cudnn_compatible_lstm_cell"
BN_VARIABLES = ("gamma", "beta", "moving_mean", "moving_variance")
# Checkpoint entries that are no weight: the step, optimizer slots, the constant resize-area
# filters of the graph's pooling (which the reference itself does not restore).
IGNORED = re.compile(r"(^|/)global_step$|/(Momentum|Adam|Adam_1)$|(^|/)beta[12]_power$|"
                     r"resize_filters")
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


# -- reading a checkpoint ------------------------------------------------------------------
def _natural(text: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def resolve_checkpoint(path: str) -> str:
    """The prefix of the checkpoint at ``path``: a prefix, one of its files (.index, .meta,
    .data-*), or a directory (its latest checkpoint, else the last by natural order)."""
    if os.path.isdir(path):
        import tensorflow as tf
        latest = tf.train.latest_checkpoint(path)
        if latest and os.path.exists(latest + ".index"):
            return latest
        found = sorted(glob.glob(os.path.join(path, "*.index")), key=_natural)
        if not found:
            raise FileNotFoundError(f"checkpoint directory {path} holds no checkpoint "
                                    "(no *.index file).")
        return found[-1][:-len(".index")]
    prefix = re.sub(r"\.(index|meta|data-\d+-of-\d+)$", "", path)
    if not os.path.exists(prefix + ".index"):
        raise FileNotFoundError(f"checkpoint {path} not found (no {prefix}.index).")
    return prefix


def find_root(names, style: str, scope_root: Optional[str] = None) -> str:
    """The scope that holds the model: ``scope_root``, else the one above ``ANCHOR``
    (preferring ``tower/resnet_{style}`` where there are several)."""
    if scope_root is not None:
        return scope_root.strip("/")
    roots = sorted({n[:-len(ANCHOR)].rstrip("/") for n in names
                    if n == ANCHOR or n.endswith("/" + ANCHOR)})
    if len(roots) == 1:
        return roots[0]
    if DEFAULT_ROOTS[style] in roots:
        return DEFAULT_ROOTS[style]
    if not roots:
        raise ValueError(f"the checkpoint holds no '{ANCHOR}', so no reference backbone; "
                         f"pass scope_root if its names differ (it holds e.g. "
                         f"{sorted(names)[:5]}).")
    raise ValueError(f"the checkpoint holds several models, under {roots}; choose one with "
                     "scope_root.")


def _resolve_lstms(entries: Sequence[Entry], names, root: str) -> Dict[str, str]:
    """{expected LSTM scope: scope found} for the scopes not found by their expected name
    (root-relative; see the module docstring for the order of the search)."""
    tail = f"/{LSTM_CELL}/kernel"
    start = f"{root}/" if root else ""
    found = sorted((n[len(start):-len(tail)] for n in names
                    if n.startswith(start) and n.endswith(tail)), key=_natural)
    expected = [e.sources[0][:-len(tail)] for e in entries if e.convert == "lstm_input"]
    free = [f for f in found if f not in expected]
    aliases = {}

    def take(scope, candidates):
        if candidates:
            aliases[scope] = candidates[0]
            free.remove(candidates[0])

    def parts(scope):   # (its graph's scope name or None, is it the final LSTM?)
        segments = scope.split("/")
        graph = next((s for s in segments if s.startswith("whole_graph_model_")), None)
        return graph, "time_update_extern" in segments

    for scope in (s for s in expected if s not in found):
        take(scope, [f for f in free if parts(f) == parts(scope)])
    for scope in (s for s in expected if s not in found and s not in aliases):
        take(scope, [f for f in free if parts(f)[0] is None])
    return aliases


def _ignored(name: str, names) -> bool:
    if IGNORED.search(name):
        return True
    # The cuDNN parameter buffer, saved beside its canonical form (which is read instead).
    return (name.endswith("/opaque_kernel")
            and f"{name[:-len('opaque_kernel')]}{LSTM_CELL}/kernel" in names)


@dataclasses.dataclass
class ImportReport:
    """What ``import_reference`` did (weights not assigned keep their values): the prefix
    read and the model's root in it; ``assigned`` {weight, checkpoint, conversion};
    ``missing`` {weight, checkpoint: the absent names}; ``mis_shaped`` {weight, shape,
    checkpoint, checkpoint_shapes, error}; ``unmapped``: our weights the reference lacks;
    ``unused``: checkpoint variables nobody read (but IGNORED ones); ``aliases``: LSTM scopes
    found under other names, {expected: found}."""

    checkpoint: str
    root: str
    assigned: List[dict]
    missing: List[dict]
    mis_shaped: List[dict]
    unmapped: List[str]
    unused: List[str]
    aliases: Dict[str, str]

    def summary(self) -> str:
        total = len(self.assigned) + len(self.missing) + len(self.mis_shaped) + len(
            self.unmapped)
        lines = [f"imported {len(self.assigned)} of {total} weights from {self.checkpoint} "
                 f"(root {self.root!r})"]
        lines += [f"  LSTM {a} found as {b}" for a, b in self.aliases.items()]
        lines += [f"  kept {m['weight']} {m['shape']}: " + ", ".join(
            f"{n} {tuple(s)}" for n, s in zip(m["checkpoint"], m["checkpoint_shapes"]))
            + f" ({m['error']})" for m in self.mis_shaped]
        lines += [f"  kept {m['weight']}: {', '.join(m['checkpoint'])} not in the checkpoint"
                  for m in self.missing]
        lines += [f"  kept {w}: no reference variable" for w in self.unmapped]
        lines += [f"  unused checkpoint variable {n}" for n in self.unused]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def import_reference(model: keras.Model, checkpoint_prefix: str,
                     scope_root: Optional[str] = None) -> ImportReport:
    """Assigns the weights of a reference TF1 checkpoint to ``model``.

    Args:
      model: a model of ``build_video_model`` whose configuration matches the checkpoint's.
      checkpoint_prefix: the checkpoint (prefix, one of its files, or its directory).
      scope_root: the model's scope in the checkpoint; default: found (``find_root``).

    Returns:
      An ImportReport. Weights whose variable is missing or of another shape keep their
      values (e.g. the classifier of a Kinetics backbone).

    Raises:
      FileNotFoundError: no such checkpoint.
      ValueError: no reference backbone in it, or no weight matched.
    """
    import tensorflow as tf

    prefix = resolve_checkpoint(checkpoint_prefix)
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    style = reference_style(model)
    root = find_root(shapes, style, scope_root)
    entries = reference_table(model, style)
    aliases = _resolve_lstms(entries, shapes, root)
    weights = {w.path: w for w in model.weights}
    used, updates = set(), []
    report = ImportReport(prefix, root, [], [], [], [], [], {
        f"{root}/{a}".lstrip("/"): f"{root}/{b}".lstrip("/") for a, b in aliases.items()})
    for entry in entries:
        names = []
        for source in entry.sources:
            scope = source.split(f"/{LSTM_CELL}/")[0]
            source = aliases.get(scope, scope) + source[len(scope):]
            names.append(f"{root}/{source}" if root else source)
        absent = [n for n in names if n not in shapes]
        if absent:
            report.missing.append({"weight": entry.weight, "checkpoint": absent})
            continue
        used.update(names)
        variable, error = weights[entry.weight], None
        try:
            value = CONVERSIONS[entry.convert][0]([reader.get_tensor(n) for n in names])
            if tuple(value.shape) != tuple(variable.shape):
                error = f"converts to {tuple(value.shape)}"
        except (ValueError, IndexError) as e:
            error = str(e)
        if error:
            report.mis_shaped.append({
                "weight": entry.weight, "shape": tuple(variable.shape), "checkpoint": names,
                "checkpoint_shapes": [tuple(shapes[n]) for n in names], "error": error})
            continue
        updates.append((variable, value))
        report.assigned.append({"weight": entry.weight, "checkpoint": names,
                                "conversion": entry.convert})
    if not updates:
        raise ValueError(f"no weight of model {model.name!r} matched a variable of {prefix} "
                         f"under root {root!r} ({len(report.missing)} missing, "
                         f"{len(report.mis_shaped)} mis-shaped).")
    for variable, value in updates:
        variable.assign(np.asarray(value, dtype=variable.dtype))
    mapped = {e.weight for e in entries}
    report.unmapped = [path for path in weights if path not in mapped]
    report.unused = sorted(n for n in shapes if n not in used and not _ignored(n, shapes))
    return report
