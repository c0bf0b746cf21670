"""A shard directory's ``manifest.json``: reading it and the files and record counts of
its splits. Plain Python (no TensorFlow), so a program checks its data before TensorFlow
loads. Written by ``rstg_tf.data.shards``; read by the tf.data pipeline."""

from __future__ import annotations

import json
import os
from typing import List, Tuple

MANIFEST = "manifest.json"
FORMAT = "rstg-tf-shards"


def read_manifest(directory: str) -> dict:
    """The manifest of a shard directory ({} when there is none yet)."""
    path = os.path.join(directory, MANIFEST)
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable manifest ({e}).") from e
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not an rstg-tf shard manifest.")
    return manifest


def split_files(data_dir: str, split: str) -> Tuple[List[str], List[int], dict]:
    """Shard paths, their record counts and the split's manifest entry.

    Raises:
      FileNotFoundError / ValueError naming what is missing or incomplete.
    """
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"data directory {data_dir} does not exist.")
    manifest = read_manifest(data_dir)
    if not manifest:
        raise FileNotFoundError(f"{data_dir} has no {MANIFEST}; make the data first "
                                f"(python -m train.make_syncmnist --output_dir={data_dir}).")
    entry = manifest["splits"].get(split)
    if entry is None:
        raise ValueError(f"{data_dir} has no '{split}' split (it has: "
                         f"{', '.join(sorted(manifest['splits'])) or 'none'}).")
    if not entry.get("complete"):
        expected = entry.get("settings", {}).get("num_shards", "?")
        raise ValueError(f"the '{split}' split in {data_dir} is incomplete "
                         f"({len(entry.get('shards', {}))} of {expected} shards); re-run the "
                         f"command that made it to finish it.")
    names = sorted(entry["shards"])
    paths = [os.path.join(data_dir, name) for name in names]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(f"shard {missing[0]} is listed in the manifest but missing "
                                f"({len(missing)} missing).")
    return paths, [int(entry["shards"][n]["count"]) for n in names], entry


def train_and_val_sizes(data_dir: str, val_split: str, make_val: str) -> Tuple[int, int]:
    """Record counts of a training run's train split and of the split it validates on.

    Raises:
      FileNotFoundError / ValueError naming what is missing; for the validation split,
        followed by ``make_val``, how to make it.
    """
    num_train = sum(split_files(data_dir, "train")[1])
    try:
        num_val = sum(split_files(data_dir, val_split)[1])
    except (ValueError, FileNotFoundError) as e:
        raise ValueError(f"{e} Training validates on the '{val_split}' split: "
                         f"{make_val}") from None
    return num_train, num_val
