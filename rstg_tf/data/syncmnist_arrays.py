"""SyncMNIST videos as in-memory NumPy arrays (pure NumPy, no TensorFlow or Keras).

For training from memory (``rstg_tf.training.in_memory``) on machines without
TensorFlow; the shards (``syncmnist_records``) hold exactly the same videos.
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Optional, Tuple

import numpy as np

from rstg_tf.data.syncmnist import SyncMnistConfig, SyncMnistGenerator
from rstg_tf.data.workers import exit_with_parent, single_threaded_children, spawn_context

_GENERATOR = None


def _init_worker(images, labels, split, config, seed, parent_pid=None):
    global _GENERATOR
    if parent_pid is not None:
        exit_with_parent(parent_pid)
    _GENERATOR = SyncMnistGenerator(images, labels, split, config, seed)


def _make_range(bounds):
    start, stop = bounds
    videos = [_GENERATOR.video(i) for i in range(start, stop)]
    return (np.stack([v.frames for v in videos]),
            np.array([v.label for v in videos], np.int64),
            np.stack([v.digits for v in videos]).astype(np.int64))


def make_videos(images: np.ndarray, labels: np.ndarray, split: str, count: int,
                config: SyncMnistConfig = SyncMnistConfig(), seed: int = 0,
                workers: int = 1, progress: Optional[Callable[[int], None]] = None,
                with_digits: bool = False) -> Tuple[np.ndarray, ...]:
    """The first ``count`` videos of a SyncMNIST split, the same as in its shards.

    Workers are spawned processes (never forked from a process running a backend);
    ``progress(n)`` is called as each block of ``n`` videos arrives.

    Returns:
      (clips uint8 [count, T, 64, 64, 1], labels int64 [count]), and with ``with_digits``
      the clips' digit classes int64 [count, D] (synchronous pair first) as well.
    """
    total = len(images) * config.multiplier(split)
    if not 1 <= count <= total:
        raise ValueError(f"count must be in 1..{total} for the {split} split; got {count}.")
    chunk = 500
    bounds = [(s, min(s + chunk, count)) for s in range(0, count, chunk)]
    init = (images, labels, split, config, seed)
    parts = []
    with contextlib.ExitStack() as stack:
        if workers <= 1:
            _init_worker(*init)
            blocks = map(_make_range, bounds)
        else:
            stack.enter_context(single_threaded_children())   # see rstg_tf.data.workers
            pool = stack.enter_context(spawn_context().Pool(workers, _init_worker,
                                                            init + (os.getpid(),)))
            blocks = pool.imap(_make_range, bounds)
        for (start, stop), part in zip(bounds, blocks):
            parts.append(part)
            if progress:
                progress(stop - start)
    clips = np.concatenate([p[0] for p in parts])[..., None]
    labels = np.concatenate([p[1] for p in parts])
    if with_digits:
        return clips, labels, np.concatenate([p[2] for p in parts])
    return clips, labels
