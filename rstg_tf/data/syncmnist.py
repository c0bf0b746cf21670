"""SyncMNIST, the paper's synthetic data set, generated as the reference does (pure NumPy).

A video shows ``D`` MNIST digits of distinct classes moving on a 100x100 canvas for 10
frames. The first two digits (the *synchronous pair*) share every step; the label is their
unordered class pair (45 labels), or label 45 when, with probability 1/92 (the reference's
quirk), no pair is synchronous and every digit moves on its own.

Per video, with ``P`` noise parts (0 by default):
  * classes: the first digit is MNIST image ``i mod N`` of the split; the other ``D - 1``
    classes are a random choice without repetition from the remaining nine, each with a
    random image of that class.
  * start: top-left corners uniform in ``[0, 72)`` per axis (noise parts: ``[0, 92)``).
  * before every frame (the first too) each item steps, per axis, by an integer uniform in
    ``[lo, hi)``, ``lo = clip(-pos, -10, 10)``, ``hi = clip(71 - pos, -10, 10)`` (for noise
    parts 91 instead of 71), then ``pos = clip(pos + step, 0, 71)``. The synchronous pair
    draws one step per axis from the intersection of both ranges and skips an axis whose
    intersection is empty.
  * drawing: noise parts (the centre 8x8 of random digits) first, then the digits in order;
    in front mode (always when ``P == 0``) a digit pixel below 10 keeps the canvas, in back
    mode any lit canvas pixel is kept. Each frame is resized to 64x64 as
    ``scipy.misc.imresize`` did (see ``pil_resize``).

Video ``i`` of a split depends only on ``(seed, split, num_digits, i)``: shards can be made
alone, in any order, by any number of workers.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Tuple

import numpy as np

from rstg_tf.data import pil_resize

GENERATOR_VERSION = "syncmnist-1"
NUM_CLASSES = 46
NO_SYNC_LABEL = 45
SPLITS = ("train", "val", "test")
# Each split's part of the random key. Validation videos are made of MNIST's training
# digits (``Mnist.split("val")``) under their own key (2), so they are other videos than
# every training video, and MNIST's test digits are read by the test split alone.
_SPLIT_IDS = {"train": 0, "test": 1, "val": 2}


def _pair_labels() -> Dict[Tuple[int, int], int]:
    labels, label = {}, 0
    for i in range(10):
        for j in range(i):
            labels[(i, j)] = labels[(j, i)] = label
            label += 1
    return labels


PAIR_LABELS = _pair_labels()


def pair_label(a: int, b: int) -> int:
    """Label (0-44) of the unordered pair of distinct digit classes ``a``, ``b``."""
    if (a, b) not in PAIR_LABELS:
        raise ValueError(f"a SyncMNIST pair needs two distinct classes in 0-9; got {a}, {b}.")
    return PAIR_LABELS[(a, b)]


def label_name(label: int) -> str:
    """Readable name of a label: ``'3-7'`` or ``'no sync'``."""
    if label == NO_SYNC_LABEL:
        return "no sync"
    for (i, j), value in PAIR_LABELS.items():
        if value == label and i > j:
            return f"{j}-{i}"
    raise ValueError(f"SyncMNIST labels are 0-{NUM_CLASSES - 1}; got {label}.")


@dataclasses.dataclass(frozen=True)
class SyncMnistConfig:
    """Generator settings; defaults are the reference's (3SyncMNIST)."""

    num_digits: int = 3
    num_frames: int = 10
    canvas_size: int = 100
    frame_size: int = 64
    digit_size: int = 28
    max_step: int = 10
    no_sync_prob: float = 1.0 / 92.0
    noise_parts: int = 0
    noise_part_size: int = 8
    train_multiplier: int = 10
    test_multiplier: int = 1
    val_multiplier: int = 1

    def __post_init__(self):
        if not 2 <= self.num_digits <= 10:
            raise ValueError(f"num_digits must be in 2..10; got {self.num_digits}.")
        if self.num_frames < 1 or self.frame_size < 1 or self.max_step < 1:
            raise ValueError("num_frames, frame_size and max_step must be positive.")
        if self.canvas_size <= self.digit_size:
            raise ValueError(f"canvas_size ({self.canvas_size}) must exceed digit_size "
                             f"({self.digit_size}).")
        if not 0.0 <= self.no_sync_prob <= 1.0:
            raise ValueError(f"no_sync_prob must be in [0, 1]; got {self.no_sync_prob}.")
        if self.noise_parts < 0 or not 1 <= self.noise_part_size <= self.digit_size:
            raise ValueError("noise_parts must be >= 0 and noise_part_size in 1..digit_size.")
        if min(self.train_multiplier, self.test_multiplier, self.val_multiplier) < 1:
            raise ValueError("multipliers must be >= 1.")

    def multiplier(self, split: str) -> int:
        """Videos per MNIST image of ``split``'s digits (train 10, val and test 1)."""
        if split not in _SPLIT_IDS:
            raise ValueError(f"split must be one of {SPLITS}; got {split!r}.")
        return getattr(self, f"{split}_multiplier")


@dataclasses.dataclass(frozen=True)
class Video:
    """One SyncMNIST video.

    Attributes:
      frames: uint8 [T, 64, 64].
      label: int in 0..45.
      digits: int [D], digit classes, synchronous pair first.
      coords: int [T, D, 2], (row, col) of each digit's top-left corner on the canvas.
      mnist_indices: int [D], the MNIST images used.
      index: the video's index in its split.
    """

    frames: np.ndarray
    label: int
    digits: np.ndarray
    coords: np.ndarray
    mnist_indices: np.ndarray
    index: int


def _step(u: float, pos: int, top: int, max_step: int) -> int:
    lo = min(max(-pos, -max_step), max_step)
    hi = min(max(top - pos, -max_step), max_step)
    return lo + int(u * (hi - lo))


def _move(positions: List[List[int]], draws: np.ndarray, top: int, max_step: int,
          synced: bool) -> None:
    """Moves every item one frame in place; ``draws`` is uniform [items, 2] in [0, 1)."""
    start = 0
    if synced:
        for axis in (1, 0):  # the reference draws the column step first
            lo = max(min(max(-p[axis], -max_step), max_step) for p in positions[:2])
            hi = min(min(max(top - p[axis], -max_step), max_step) for p in positions[:2])
            if lo < hi:
                step = lo + int(draws[0, axis] * (hi - lo))
                for p in positions[:2]:
                    p[axis] = min(max(p[axis] + step, 0), top)
        start = 2
    for item in range(start, len(positions)):
        p = positions[item]
        for axis in (0, 1):
            p[axis] = min(max(p[axis] + _step(draws[item, axis], p[axis], top, max_step), 0),
                          top)


class SyncMnistGenerator:
    """Makes SyncMNIST videos of one split from MNIST images.

    Args:
      images: uint8 [N, 28, 28], the split's MNIST images.
      labels: int [N], their classes.
      split: 'train', 'val' or 'test' (part of the random key, and picks the multiplier);
        ``images`` are MNIST's ``MNIST_SPLITS[split]`` digits.
      config: a ``SyncMnistConfig``.
      seed: non-negative int.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, split: str,
                 config: SyncMnistConfig = SyncMnistConfig(), seed: int = 0):
        if split not in _SPLIT_IDS:
            raise ValueError(f"split must be one of {SPLITS}; got {split!r}.")
        images, labels = np.asarray(images), np.asarray(labels)
        size = config.digit_size
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (size, size):
            raise ValueError(f"images must be uint8 [N, {size}, {size}]; got {images.dtype} "
                             f"{images.shape}.")
        if labels.shape != (len(images),):
            raise ValueError(f"labels must be [{len(images)}]; got {labels.shape}.")
        self.class_indices = [np.flatnonzero(labels == c) for c in range(10)]
        missing = [c for c, idx in enumerate(self.class_indices) if len(idx) == 0]
        if missing or labels.min() < 0 or labels.max() > 9:
            raise ValueError(f"labels must cover classes 0-9 only; missing {missing}.")
        if seed < 0:
            raise ValueError(f"seed must be >= 0; got {seed}.")
        self.images, self.labels = images, labels.astype(np.int64)
        self.split, self.config, self.seed = split, config, int(seed)
        self.num_videos = len(images) * config.multiplier(split)
        half = config.noise_part_size // 2
        centre = size // 2
        self._noise_crop = (slice(centre - half, centre - half + config.noise_part_size),) * 2

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng(
            [self.seed, _SPLIT_IDS[self.split], self.config.num_digits, index])

    def video(self, index: int) -> Video:
        """Video ``index`` (0 <= index < num_videos) of the split."""
        if not 0 <= index < self.num_videos:
            raise IndexError(f"video index {index} out of range [0, {self.num_videos}).")
        cfg, rng = self.config, self.rng(index)
        first = index % len(self.images)
        first_class = int(self.labels[first])
        others = np.array([c for c in range(10) if c != first_class])
        classes = [first_class] + [int(c) for c in rng.permutation(others)[:cfg.num_digits - 1]]
        chosen = [first] + [int(self.class_indices[c][rng.integers(len(self.class_indices[c]))])
                            for c in classes[1:]]
        digit_top = cfg.canvas_size - cfg.digit_size - 1
        noise_top = cfg.canvas_size - cfg.noise_part_size - 1
        digits = rng.integers(digit_top + 1, size=(cfg.num_digits, 2)).tolist()
        noise = rng.integers(noise_top + 1, size=(cfg.noise_parts, 2)).tolist()
        noise_images = rng.integers(len(self.images), size=cfg.noise_parts)
        front = cfg.noise_parts == 0 or bool(rng.integers(2))
        synced = not rng.random() <= cfg.no_sync_prob
        label = pair_label(classes[0], classes[1]) if synced else NO_SYNC_LABEL
        digit_draws = rng.random((cfg.num_frames, cfg.num_digits, 2))
        noise_draws = rng.random((cfg.num_frames, cfg.noise_parts, 2))

        canvas = np.zeros((cfg.num_frames, cfg.canvas_size, cfg.canvas_size), np.uint8)
        coords = np.zeros((cfg.num_frames, cfg.num_digits, 2), np.int64)
        crops = [self.images[i][self._noise_crop] for i in noise_images]
        sprites = [self.images[i] for i in chosen]
        n, d = cfg.noise_part_size, cfg.digit_size
        for t in range(cfg.num_frames):
            _move(noise, noise_draws[t], noise_top, cfg.max_step, synced=False)
            _move(digits, digit_draws[t], digit_top, cfg.max_step, synced=synced)
            coords[t] = digits
            frame = canvas[t]
            for (r, c), crop in zip(noise, crops):
                frame[r:r + n, c:c + n] = crop
            for (r, c), sprite in zip(digits, sprites):
                patch = frame[r:r + d, c:c + d]
                keep = sprite < 10 if front else patch > 0
                np.copyto(patch, sprite, where=~keep)
        frames = pil_resize.imresize(canvas, cfg.frame_size, cfg.frame_size)
        return Video(frames=frames, label=label, digits=np.array(classes, np.int64),
                     coords=coords, mnist_indices=np.array(chosen, np.int64), index=index)
