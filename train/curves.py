"""Runs' validation curves side by side, on one axis of steps: ``python -m train.curves``.

  python -m train.curves --run="All-temp (CPU)=runs/device_cpu_250/rstg_all_temp" \\
      --run="Time-only (CPU)=runs/device_cpu/rstg_time_only" \\
      --metric=val_sync_pair --output=curves.png

Each ``--run`` is ``LABEL=MODEL_DIR`` (or a bare MODEL_DIR, labelled by its name): a model
directory of ``python -m train`` or a ``train.table`` row, paused or finished; or
``LABEL=REPORT.json#HEAD``, one head of a ``python -m experiments.sync_pair.oracle`` report
(``#HEAD`` may be left out when the report holds one head; labelled by the head). Runs that
validated at other intervals (``--steps_per_epoch``) or with other batches go on one x
axis of steps (``--x=clips``: clips seen). Prints a markdown table per run (steps trained,
best val top-1, last val sync pair and the step after which it left the sync-blind level,
its val sync pair more than ``--leave_z`` standard errors above it) and, with
``--output``, draws ``--metric`` for every run as a PNG. Reads log.csv and config.json
only: no Keras or TensorFlow, seconds on any machine.

The val sync pair is logged by in-memory rows (``train.table --in_memory``, the GPU
script's); rows trained from shards log val top-1 and loss (``--metric=val_top1``).
"""

import json
import os

from absl import flags

from rstg_tf import cli, metrics
from rstg_tf.training.curves import (METRICS, X_AXES, chart_series, draw, read_run,
                                     summary_table)

flags.DEFINE_multi_string("run", None, "LABEL=MODEL_DIR (or MODEL_DIR), or "
                          "LABEL=REPORT.json#HEAD (an oracle head), once per run.")
flags.DEFINE_enum("metric", "val_sync_pair", list(METRICS), "log.csv column to draw.")
flags.DEFINE_enum("x", "steps", list(X_AXES), "x axis: training steps or clips seen.")
flags.DEFINE_enum("digits", "3", ["3", "5"], "SyncMNIST digits (the sync-blind line).")
flags.DEFINE_float("leave_z", metrics.LEAVE_Z, "Standard errors above sync-blind that "
                   "count as having left it.", lower_bound=0.0)
flags.DEFINE_string("title", None, "Chart title (default: the metric against steps or "
                    "clips trained).")
flags.DEFINE_bool("skip_unplaceable", False, "Leave out, with a line each, runs that cannot "
                  "be placed (no epoch logged yet, no config.json, ...) instead of failing.")
flags.DEFINE_string("output", None, "PNG to write (*.png); without it, the table only.")
flags.mark_flag_as_required("run")


def _report_and_head(target: str):
    """(report path, head or None) when ``target`` names an oracle report (REPORT.json or
    REPORT.json#HEAD), else None."""
    if target.endswith(".json"):
        return target, None
    report, cut, head = target.rpartition("#")
    return (report, head) if cut and report.endswith(".json") and head else None


def _exists(target: str) -> bool:
    named = _report_and_head(target)
    return os.path.isfile(named[0]) if named else os.path.isdir(target)


def _label_and_dir(spec: str):
    """(label or None, model dir or oracle report) of a --run: the target follows the
    first "=" after which an existing directory (or report) is named (labels and paths may
    both hold "="), else the first "="."""
    if _exists(spec):
        return None, spec
    cuts = [i for i, c in enumerate(spec) if c == "="]
    for i in cuts:
        if _exists(spec[i + 1:]):
            return spec[:i], spec[i + 1:]
    label, model_dir = (spec[:cuts[0]], spec[cuts[0] + 1:]) if cuts else (None, spec)
    if label == "" or not model_dir:
        raise ValueError(f"--run={spec!r}: give LABEL=MODEL_DIR or MODEL_DIR.")
    return label, model_dir


def _read(spec: str):
    label, target = _label_and_dir(spec)
    named = _report_and_head(target)
    if named:
        from experiments.sync_pair.report import oracle_curves

        return oracle_curves(*named, label=label)
    return read_run(target, label)


def _runs(specs, skip_unplaceable: bool = False):
    runs = []
    for spec in specs:
        try:
            runs.append(_read(spec))
        except (ValueError, FileNotFoundError) as e:
            if not skip_unplaceable:
                raise
            print(f"left out: {e}", flush=True)
    labels = [run.label for run in runs]
    if len(set(labels)) < len(labels):
        raise ValueError(f"two runs share a label in {labels}: give each LABEL=MODEL_DIR.")
    if not runs:
        raise ValueError("no run could be placed on a step axis (see above).")
    return runs


def main(argv):
    del argv
    f = flags.FLAGS
    if f.output and not f.output.endswith(".png"):
        raise ValueError(f"--output must name a .png file; got {f.output!r}.")
    runs = _runs(f.run, f.skip_unplaceable)
    if f.output:
        chart_series(runs, f.metric, f.x)         # each run has the metric, before any output
    print(summary_table(runs, f.leave_z))
    if f.output:
        draw(runs, f.output, f.metric, f.x, int(f.digits), f.title, f.leave_z)
        print(json.dumps({"files": [f.output]}))


if __name__ == "__main__":
    cli.run(main)
