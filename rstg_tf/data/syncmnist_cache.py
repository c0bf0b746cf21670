"""SyncMNIST arrays kept on disk: generated once, memory-mapped by every later run.

``make_videos`` regenerates a split on every call (the device budget's 215k videos take
minutes on 2 cores). ``cached_videos`` keeps them as ``.npy`` files in a cache folder and
opens them read-only with ``mmap_mode="r"``: a resumed run starts in seconds, and
processes training rows side by side on one machine share one copy in the page cache.
Pure NumPy, like ``syncmnist_arrays``.

Layout: ``<cache_dir>/<split>-<count>-<key digest>/{clips,labels,digits}.npy`` and
``videos.json``, the key: generator version, SyncMnistConfig, seed, count and the MNIST
digits' digest. Everything is written under a temporary name and renamed; ``videos.json``
is written last, so a folder without it is unfinished and is made again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Callable, Optional, Tuple

import numpy as np

from rstg_tf.data.atomic import atomic_path, atomic_write_text
from rstg_tf.data.mnist import mnist_digest
from rstg_tf.data.syncmnist import GENERATOR_VERSION, SyncMnistConfig
from rstg_tf.data.syncmnist_arrays import make_videos

ARRAYS = ("clips", "labels", "digits")


def cache_key(images: np.ndarray, labels: np.ndarray, split: str, count: int,
              config: SyncMnistConfig, seed: int) -> dict:
    """What decides a split's videos: equal keys give identical arrays."""
    return {"generator_version": GENERATOR_VERSION, "split": split, "count": int(count),
            "seed": int(seed), "config": dataclasses.asdict(config),
            "mnist_sha256": mnist_digest(images, labels)}


def cache_folder(cache_dir: str, key: dict) -> str:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return os.path.join(cache_dir, f"{key['split']}-{key['count']}-{digest}")


def cached_videos(cache_dir: str, images: np.ndarray, labels: np.ndarray, split: str,
                  count: int, config: SyncMnistConfig = SyncMnistConfig(), seed: int = 0,
                  workers: int = 1, progress: Optional[Callable[[int], None]] = None,
                  with_digits: bool = False) -> Tuple[np.ndarray, ...]:
    """``make_videos``' arrays for these arguments, read from ``cache_dir`` when an earlier
    call stored them there (memory-mapped, read-only), else generated and stored.

    Raises ValueError naming the folder when a stored array does not match its key
    (a damaged or hand-edited cache: delete that folder and it is made again)."""
    key = cache_key(images, labels, split, count, config, seed)
    folder = cache_folder(cache_dir, key)
    if os.path.exists(os.path.join(folder, "videos.json")):
        arrays = _load(folder, key)
    else:
        arrays = make_videos(images, labels, split, count, config, seed, workers=workers,
                             progress=progress, with_digits=True)
        _store(folder, key, arrays)
    return arrays if with_digits else arrays[:2]


def _store(folder: str, key: dict, arrays: Tuple[np.ndarray, ...]) -> None:
    os.makedirs(folder, exist_ok=True)
    for name, array in zip(ARRAYS, arrays):
        with atomic_path(os.path.join(folder, f"{name}.npy")) as tmp:
            with open(tmp, "wb") as f:          # a file object: np.save adds no suffix
                np.save(f, array, allow_pickle=False)
    atomic_write_text(os.path.join(folder, "videos.json"),
                      json.dumps(key, indent=1, sort_keys=True) + "\n")


def _damaged(folder: str, what: str) -> ValueError:
    return ValueError(f"the video cache {folder} is damaged ({what}): delete that folder.")


def _load(folder: str, key: dict) -> Tuple[np.ndarray, ...]:
    try:
        with open(os.path.join(folder, "videos.json")) as f:
            stored = json.load(f)
    except (OSError, ValueError) as e:
        raise _damaged(folder, f"videos.json: {e}") from None
    if not isinstance(stored, dict):
        raise _damaged(folder, "videos.json is not a key")
    if stored != key:
        changed = ", ".join(sorted(k for k in key if stored.get(k) != key[k]))
        raise ValueError(f"the video cache {folder} holds other videos than its name says "
                         f"(different {changed}): delete that folder.")
    arrays = []
    for name in ARRAYS:
        try:
            arrays.append(np.load(os.path.join(folder, f"{name}.npy"), mmap_mode="r",
                                  allow_pickle=False))
        except (OSError, ValueError) as e:
            raise _damaged(folder, f"{name}.npy: {e}") from None
    if any(len(a) != key["count"] for a in arrays) or arrays[0].dtype != np.uint8:
        raise _damaged(folder, f"its arrays are not {key['count']} uint8 clips with labels "
                               "and digits")
    return tuple(arrays)
