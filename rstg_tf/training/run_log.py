"""A run's ``log.csv`` (Keras' CSVLogger, one row per epoch, appended across restarts).

No Keras or TensorFlow import: ``python -m train.table``'s parent process reads it too.
"""

from __future__ import annotations

import csv
import os
from typing import TYPE_CHECKING, Dict, List, Optional

if TYPE_CHECKING:
    from rstg_tf.training.config import TrainConfig


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


def paused_fields(config: "TrainConfig", epochs_run: int) -> Optional[Dict[str, object]]:
    """What a run that ``pause_at_time_limit`` paused before its last epoch reports instead
    of test scores: ``{"paused": True, "epochs_run", "epochs", "best_val_top1"}`` (the best
    of log.csv's val top-1; None before any epoch). None when the run is not paused: it ran
    ``config.epochs``, or its time limit ends runs rather than pausing them."""
    if not config.pause_at_time_limit or epochs_run >= config.epochs:
        return None
    curve = read_log(config.model_dir).get("val_top1")
    best = max(curve) if curve else None
    print(f"{config.model_dir}: paused after {epochs_run} of {config.epochs} epochs"
          + (f" (best val top-1 {100 * best:.1f} %)" if best is not None else "")
          + "; not tested until its last epoch has run: the same command resumes it.",
          flush=True)
    return {"paused": True, "epochs_run": epochs_run, "epochs": config.epochs,
            "best_val_top1": best}
