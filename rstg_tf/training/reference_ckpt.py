"""Import the authors' TF1 checkpoints (IuliaDuta/RSTG) into our Something-Something models.

The reference (TF 1.13) saves a model under ``tower/resnet_i3d`` (I3D, Non-local) or
``tower/resnet_c2d``; a Kinetics backbone may sit under another root: the scope holding
``backbone/conv1/kernel``. ``import_reference`` reads a checkpoint by the names
``rstg_tf.training.reference_names.reference_table`` gives each weight (``python -m
train.import_reference_ckpt --print_table`` prints it), converts, assigns, and reports the
rest.

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
from typing import Dict, List, Optional, Sequence

import keras
import numpy as np

from rstg_tf.training.reference_names import (CONVERSIONS, LSTM_CELL, Entry, reference_style,
                                              reference_table)

ANCHOR = "backbone/conv1/kernel"
DEFAULT_ROOTS = {"i3d": "tower/resnet_i3d", "c2d": "tower/resnet_c2d"}
# Checkpoint entries that are no weight: the step, optimizer slots, the constant resize-area
# filters of the graph's pooling (which the reference itself does not restore).
IGNORED = re.compile(r"(^|/)global_step$|/(Momentum|Adam|Adam_1)$|(^|/)beta[12]_power$|"
                     r"resize_filters")


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
