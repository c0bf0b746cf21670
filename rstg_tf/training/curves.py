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
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from rstg_tf import metrics
from rstg_tf.training.config import read_stored_config
from rstg_tf.training.run_log import read_log

# What --metric may plot: log.csv column -> (y label, scale to show it in).
METRICS = {"val_sync_pair": ("val sync pair %", 100.0),
           "val_sync_pair_z": ("val sync pair, s.e. above sync-blind", 1.0),
           "val_top1": ("val top-1 %", 100.0),
           "val_loss": ("val loss", 1.0),
           "learning_rate": ("learning rate", 1.0)}
X_AXES = ("steps", "clips")


@dataclasses.dataclass(frozen=True)
class RunCurves:
    """One run's per-epoch log, epoch ``i`` (0-based) ending after ``(i + 1) x
    steps_per_epoch`` steps of ``batch_size`` clips.

    ``columns``: log.csv's columns, one value per epoch trained (an epoch logged twice, as
    after a restart from an earlier backup, keeps its last row).
    """

    label: str
    model_dir: str
    steps_per_epoch: int
    batch_size: int
    planned_epochs: int
    columns: Dict[str, List[float]]

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


def read_run(model_dir: str, label: Optional[str] = None) -> RunCurves:
    """The curves of ``model_dir`` (a ``python -m train`` or ``train.table`` row).

    Raises:
      FileNotFoundError: no such directory, or no config.json in it.
      ValueError: no epoch logged yet, or epochs that are passes over the data (no fixed
        ``steps_per_epoch``), which no step axis can place.
    """
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"run directory {model_dir} does not exist.")
    config = read_stored_config(model_dir)
    if config is None:
        raise FileNotFoundError(f"{model_dir} has no config.json: not a model directory of "
                                "python -m train or train.table.")
    steps = config.get("steps_per_epoch")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"{model_dir}: config.json has steps_per_epoch={steps!r}; its epochs "
                         "are passes over the data, which a step axis cannot place.")
    columns = read_log(model_dir)
    if not columns.get("epoch"):
        raise ValueError(f"{model_dir} has no epoch in log.csv yet.")
    return RunCurves(label or os.path.basename(os.path.normpath(model_dir)), model_dir,
                     steps, int(config.get("batch_size", 0)), int(config.get("epochs", 0)),
                     _last_row_per_epoch(columns))


def _last_row_per_epoch(columns: Dict[str, List[float]]) -> Dict[str, List[float]]:
    """``columns`` with one row per epoch, in epoch order: an epoch logged again (a run
    resumed from an earlier backup appends it once more) keeps its last row."""
    last = {int(epoch): i for i, epoch in enumerate(columns["epoch"])}
    rows = [last[e] for e in sorted(last)]
    if sorted(last) != list(range(len(rows))):
        raise ValueError(f"log.csv's epochs {sorted(last)} are not 0, 1, 2, ...")
    return {key: [values[i] for i in rows] for key, values in columns.items()
            if len(values) == len(columns["epoch"])}


def _cell(value: Optional[float], scale: float = 100.0, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{scale * value:.{digits}f}"


def summary_table(runs: Sequence[RunCurves], leave_z: float = metrics.LEAVE_Z) -> str:
    """Markdown: per run, its batch and validation interval, the epochs trained (of
    those planned), best val top-1, last val sync pair (s.e. above sync-blind) and when it
    left the sync-blind level."""
    lines = ["| run | batch | steps per epoch | steps trained (epochs of planned) | "
             "best val top-1 % | last val sync pair % (s.e.) | "
             f"left sync-blind (> {leave_z:g} s.e.) after |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for run in runs:
        top1 = run.columns.get("val_top1") or [math.nan]
        sync = (run.columns.get("val_sync_pair") or [None])[-1]
        z = (run.columns.get("val_sync_pair_z") or [None])[-1]
        left = run.left_sync_blind_at(leave_z)
        sync_cell = _cell(sync) + ("" if z is None else f" ({z:+.1f})")
        lines.append(
            f"| {run.label} | {run.batch_size} | {run.steps_per_epoch} | "
            f"{int(run.x()[-1]):,} ({run.epochs} of {run.planned_epochs}) | "
            f"{_cell(max(top1))} | {sync_cell} | "
            f"{'not yet' if left is None else f'{left:,} steps'} |")
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
            raise ValueError(f"{run.model_dir}'s log.csv has no {metric} column.")
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
    x_label = f"thousands of {unit}" + (f" of {batches[0]}" if unit == "steps"
                                         and len(batches) == 1 else "")
    return plots.xy_chart(chart_series(runs, metric, axis), path,
                          title or f"{METRICS[metric][0]} against {unit} trained", x_label,
                          METRICS[metric][0], levels=levels(metric, digits, leave_z))
