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
