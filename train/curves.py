"""Runs' validation curves side by side, on one axis of steps: ``python -m train.curves``.

  python -m train.curves --run="All-temp (CPU)=runs/device_cpu_250/rstg_all_temp" \\
      --run="Time-only (CPU)=runs/device_cpu/rstg_time_only" \\
      --metric=val_sync_pair --output=curves.png

Each ``--run`` is ``LABEL=MODEL_DIR`` (or a bare MODEL_DIR, labelled by its name): a model
directory of ``python -m train`` or a ``train.table`` row, paused or finished. Runs that
validated at other intervals (``--steps_per_epoch``) or with other batches go on one x
axis of steps (``--x=clips``: clips seen). Prints a markdown table per run (steps trained,
best val top-1, last val sync pair and the step after which it left the sync-blind level,
its val sync pair more than ``--leave_z`` standard errors above it) and, with
``--output``, draws ``--metric`` for every run as a PNG. Reads log.csv and config.json
only: no Keras or TensorFlow, seconds on any machine.
"""

import json
import os

from absl import flags

from rstg_tf import cli, metrics
from rstg_tf.training.curves import METRICS, X_AXES, draw, read_run, summary_table

flags.DEFINE_multi_string("run", None, "LABEL=MODEL_DIR (or MODEL_DIR), once per run.")
flags.DEFINE_enum("metric", "val_sync_pair", list(METRICS), "log.csv column to draw.")
flags.DEFINE_enum("x", "steps", list(X_AXES), "x axis: training steps or clips seen.")
flags.DEFINE_enum("digits", "3", ["3", "5"], "SyncMNIST digits (the sync-blind line).")
flags.DEFINE_float("leave_z", metrics.LEAVE_Z, "Standard errors above sync-blind that "
                   "count as having left it.", lower_bound=0.0)
flags.DEFINE_string("title", None, "Chart title (default: the metric).")
flags.DEFINE_string("output", None, "PNG to write (*.png); without it, the table only.")
flags.mark_flag_as_required("run")


def _runs(specs):
    runs = []
    for spec in specs:                  # a label may hold "=": the directory follows the last
        label, sep, model_dir = ("", "", spec) if os.path.isdir(spec) else spec.rpartition("=")
        if sep and not (label and model_dir):
            raise ValueError(f"--run={spec!r}: give LABEL=MODEL_DIR or MODEL_DIR.")
        runs.append(read_run(model_dir, label or None))
    labels = [run.label for run in runs]
    if len(set(labels)) < len(labels):
        raise ValueError(f"two runs share a label in {labels}: give each LABEL=MODEL_DIR.")
    return runs


def main(argv):
    del argv
    f = flags.FLAGS
    if f.output and not f.output.endswith(".png"):
        raise ValueError(f"--output must name a .png file; got {f.output!r}.")
    runs = _runs(f.run)
    print(summary_table(runs, f.leave_z))
    if f.output:
        draw(runs, f.output, f.metric, f.x, int(f.digits), f.title, f.leave_z)
        print(json.dumps({"files": [f.output]}))


if __name__ == "__main__":
    cli.run(main)
