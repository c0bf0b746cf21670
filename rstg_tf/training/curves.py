"""Runs' validation curves on one axis of training steps (``python -m train.curves``).

A run's ``log.csv`` has one row per epoch; its ``config.json`` says how long an epoch is
(``steps_per_epoch`` steps of ``batch_size`` clips). Runs validated at other intervals (a
CPU run every 250 steps, a GPU row every 1,000) or with other batches are put on one x
axis here, steps or clips seen, with the step at which each left the sync-blind level:
the first validation whose sync pair is ``LEAVE_Z`` standard errors above sync-blind
(``rstg_tf.metrics.first_past``, as the oracle reports it).

No Keras or TensorFlow import: logs are read on any machine.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from rstg_tf import metrics
from rstg_tf.training.config import read_stored_config
from rstg_tf.training.run_log import read_log

# What --metric may plot: log.csv column -> (y label, scale to show it in).
METRICS = {"val_sync_pair": ("val sync pair %", 100.0),
           "val_sync_pair_z": ("val sync pair, s.e. above sync-blind", 1.0),
           "val_top1": ("val top-1 %", 100.0),
           "val_loss": ("val loss", 1.0),
           "learning_rate": ("learning rate", 1.0),
           "grad_norm": ("gradient norm (median of fixed training batches)", 1.0)}
X_AXES = ("steps", "clips")


@dataclasses.dataclass(frozen=True)
class RunCurves:
    """One run's per-epoch log, epoch ``i`` (0-based) ending after ``(i + 1) x
    steps_per_epoch`` steps of ``batch_size`` clips.

    ``columns``: log.csv's columns, one value per epoch of the run as it stands (a run
    resumed from an earlier backup logs some epochs again: their later rows count).
    ``short_epochs``: its time limit ended the run within an epoch rather than pausing it
    between epochs (``max_train_minutes`` without ``pause_at_time_limit``), so an epoch
    may have run fewer steps than the axis counts.
    """

    label: str
    model_dir: str
    steps_per_epoch: int
    batch_size: int
    planned_epochs: int
    columns: Dict[str, List[float]]
    short_epochs: bool = False

    @property
    def epochs(self) -> int:
        return len(self.columns["epoch"])

    def x(self, axis: str = "steps") -> np.ndarray:
        steps = np.arange(1, self.epochs + 1) * self.steps_per_epoch
        return steps * self.batch_size if axis == "clips" else steps

    def left_sync_blind_at(self, leave_z: float = metrics.LEAVE_Z) -> Optional[int]:
        """Steps after which the val sync pair was first ``leave_z`` s.e. above
        sync-blind; None if it never was (or the log has no sync-pair column)."""
        epoch = metrics.first_past(self.columns.get("val_sync_pair_z", []), leave_z)
        return None if epoch is None else int(self.x()[epoch])


def step_axis_sizes(source: Mapping, where: str,
                    keys: Sequence[str] = ("steps_per_epoch", "batch_size")) -> Tuple[int, ...]:
    """``source``'s ``keys`` (by default the length of an epoch: its steps and the clips a
    step), each checked to be a positive integer, which a step axis needs.

    Raises ValueError naming ``where``, the key and its value otherwise.
    """
    values = tuple(source.get(key) for key in keys)
    for key, value in zip(keys, values):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{where} has {key}={value!r}; a step axis needs a positive "
                             "integer.")
    return values


def read_run(model_dir: str, label: Optional[str] = None) -> RunCurves:
    """The curves of ``model_dir`` (a ``python -m train`` or ``train.table`` row).

    Raises:
      FileNotFoundError: no such directory, or no config.json in it.
      ValueError: an unreadable config.json, no epoch logged yet, or epochs that are
        passes over the data (no fixed ``steps_per_epoch``), which no step axis can place.
    """
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"run directory {model_dir!r} does not exist.")
    config = read_stored_config(model_dir, advice="not a run train.curves can read")
    if config is None:
        raise FileNotFoundError(f"{model_dir} has no config.json: not a model directory of "
                                "python -m train or train.table.")
    if config.get("steps_per_epoch") is None:
        raise ValueError(f"{model_dir}: config.json has no steps_per_epoch; its epochs are "
                         "passes over the data, which a step axis cannot place.")
    steps_per_epoch, batch_size = step_axis_sizes(config, f"{model_dir}: config.json")
    columns = read_log(model_dir)
    if not columns.get("epoch"):
        raise ValueError(f"{model_dir} has no epoch in log.csv yet.")
    short = bool(config.get("max_train_minutes")) and not config.get("pause_at_time_limit")
    return RunCurves(label or os.path.basename(os.path.normpath(model_dir)), model_dir,
                     steps_per_epoch, batch_size, int(config.get("epochs") or 0),
                     _rows_as_run_stands(columns), short)


def _rows_as_run_stands(columns: Dict[str, List[float]]) -> Dict[str, List[float]]:
    """``columns`` with one row per epoch, in epoch order, as the run stands: a row for
    epoch ``e`` (a run resumed from the backup of epoch ``e - 1``) replaces every earlier
    row of epoch ``e`` or later, which that resumed run did not build on. Columns with a
    value missing in some row (CSVLogger's "NA") are left out."""
    kept: List[int] = []
    epochs = columns["epoch"]
    for i, epoch in enumerate(epochs):
        kept = [j for j in kept if epochs[j] < epoch] + [i]
    if [int(epochs[j]) for j in kept] != list(range(len(kept))):
        raise ValueError(f"log.csv's epochs {[int(epochs[j]) for j in kept]} are not "
                         "0, 1, 2, ...")
    return {key: [values[j] for j in kept] for key, values in columns.items()
            if len(values) == len(epochs)}


def _percent(value: Optional[float]) -> str:
    """A fraction as a percentage cell; "" for None or NaN."""
    return "" if value is None or not math.isfinite(value) else f"{100 * value:.1f}"


def _left_cell(run: RunCurves, leave_z: float) -> str:
    if "val_sync_pair_z" not in run.columns:
        return "n/a (no val sync pair logged)"
    left = run.left_sync_blind_at(leave_z)
    return "not yet" if left is None else f"{left:,} steps"


def summary_table(runs: Sequence[RunCurves], leave_z: float = metrics.LEAVE_Z) -> str:
    """Markdown: per run, its batch and validation interval, the steps trained (epochs of
    those planned; "at most" where a time limit may have cut an epoch short), best val
    top-1, last val sync pair (s.e. above sync-blind) and when it left sync-blind."""
    lines = ["| run | batch | steps per epoch | steps trained (epochs of planned) | "
             "best val top-1 % | last val sync pair % (s.e.) | "
             f"left sync-blind (> {leave_z:g} s.e.) after |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for run in runs:
        top1 = [v for v in run.columns.get("val_top1", []) if math.isfinite(v)]
        sync = (run.columns.get("val_sync_pair") or [None])[-1]
        z = (run.columns.get("val_sync_pair_z") or [None])[-1]
        sync_cell = _percent(sync) + (f" ({z:+.1f})" if z is not None and math.isfinite(z)
                                      else "")
        steps = ("at most " if run.short_epochs else "") + f"{int(run.x()[-1]):,}"
        lines.append(
            f"| {run.label} | {run.batch_size} | {run.steps_per_epoch} | "
            f"{steps} ({run.epochs} of {run.planned_epochs}) | "
            f"{_percent(max(top1) if top1 else None)} | {sync_cell} | "
            f"{_left_cell(run, leave_z)} |")
    return "\n".join(lines)


def chart_series(runs: Sequence[RunCurves], metric: str, axis: str = "steps"
                 ) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """label -> (x, y) of ``metric`` (a ``METRICS`` key) in its display scale; x in
    thousands of steps or of clips. Runs without that column are refused."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {list(METRICS)}.")
    if axis not in X_AXES:
        raise ValueError(f"unknown x axis {axis!r}; known: {list(X_AXES)}.")
    scale = METRICS[metric][1]
    series = {}
    for run in runs:
        if metric not in run.columns:
            raise ValueError(f"{run.model_dir} logged no {metric} column.")
        series[run.label] = (run.x(axis) / 1000.0, scale * np.asarray(run.columns[metric]))
    return series


def levels(metric: str, digits: int = 3, leave_z: float = metrics.LEAVE_Z
           ) -> Dict[str, float]:
    """The dashed reference lines of ``metric``'s chart: sync-blind (1 / C(digits, 2)) for
    the sync pair and top-1 (a model that knows the digits and guesses among their pairs),
    0 and the leaving bar for the z curve."""
    if metric in ("val_sync_pair", "val_top1"):
        blind = 100.0 / math.comb(digits, 2)
        return {f"sync-blind {blind:.1f} %": blind}
    if metric == "val_sync_pair_z":
        return {"sync-blind": 0.0, f"left sync-blind ({leave_z:g} s.e.)": leave_z}
    return {}


def draw(runs: Sequence[RunCurves], path: str, metric: str = "val_sync_pair",
         axis: str = "steps", digits: int = 3, title: Optional[str] = None,
         leave_z: float = metrics.LEAVE_Z) -> str:
    """Writes ``path`` (PNG): ``metric`` of every run against thousands of steps (clips)."""
    from rstg_tf import plots

    batches = sorted({run.batch_size for run in runs})
    unit = "steps" if axis == "steps" else "clips"
    x_label = f"thousands of {unit}" + (f" (batch {batches[0]})" if unit == "steps"
                                         and len(batches) == 1 else "")
    return plots.xy_chart(chart_series(runs, metric, axis), path,
                          title or f"{METRICS[metric][0]} against {unit} trained", x_label,
                          METRICS[metric][0], levels=levels(metric, digits, leave_z))
