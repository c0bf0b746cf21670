"""A run's ``log.csv`` (Keras' CSVLogger, one row per epoch, appended across restarts).

No Keras or TensorFlow import: ``python -m train.table``'s parent process reads it too.
"""

from __future__ import annotations

import csv
import os
from typing import Dict, List


def read_log(model_dir: str) -> Dict[str, List[float]]:
    """Columns of ``log.csv`` (CSVLogger), one value per epoch; {} when there is none."""
    path = os.path.join(model_dir, "log.csv")
    if not os.path.exists(path):
        return {}
    columns: Dict[str, List[float]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                try:
                    columns.setdefault(key, []).append(float(value))
                except (TypeError, ValueError):
                    pass
    return columns


def paused_fields(model_dir: str, epochs_run: int, epochs: int) -> Dict[str, object]:
    """What a run paused by its time limit (``pause_at_time_limit``) before its last epoch
    reports instead of test scores: ``{"paused": True, "epochs_run", "epochs",
    "best_val_top1"}`` (the best of log.csv's val top-1; None before any epoch)."""
    curve = read_log(model_dir).get("val_top1")
    best = max(curve) if curve else None
    print(f"{model_dir}: paused after {epochs_run} of {epochs} epochs"
          + (f" (best val top-1 {100 * best:.1f} %)" if best is not None else "")
          + "; not tested until its last epoch has run: the same command resumes it.",
          flush=True)
    return {"paused": True, "epochs_run": epochs_run, "epochs": epochs,
            "best_val_top1": best}
