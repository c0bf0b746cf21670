"""The paper's backbone pretraining data: one MNIST digit at a random place per frame.

A digit is placed on the 100x100 SyncMNIST canvas at a random corner in [0, 72) and the
frame goes through the same ``scipy.misc.imresize`` reproduction as SyncMNIST, so digits
have the size and look they will have in the videos. Pure NumPy.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from rstg_tf.data import pil_resize


def single_digit_frames(images: np.ndarray, labels: np.ndarray, count: int, seed: int = 0,
                        canvas_size: int = 100, frame_size: int = 64
                        ) -> Tuple[np.ndarray, np.ndarray]:
    """``count`` frames uint8 [count, 1, frame_size, frame_size, 1] and labels int [count].

    Image ``i mod N`` of ``images`` is used for frame ``i`` (so ``count <= N`` uses each
    digit once); its corner is drawn with ``seed``.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 3 or images.dtype != np.uint8 or len(images) != len(labels):
        raise ValueError(f"images must be uint8 [N, h, w] with N labels; got {images.dtype} "
                         f"{images.shape} and {len(labels)} labels.")
    size = images.shape[1]
    rng = np.random.default_rng([seed, count])
    corners = rng.integers(canvas_size - size, size=(count, 2))
    frames = np.zeros((count, 1, frame_size, frame_size, 1), np.uint8)
    chunk = 512
    for start in range(0, count, chunk):
        stop = min(start + chunk, count)
        batch = np.zeros((stop - start, canvas_size, canvas_size), np.uint8)
        for k, i in enumerate(range(start, stop)):
            r, c = corners[i]
            batch[k, r:r + size, c:c + size] = images[i % len(images)]
        frames[start:stop, 0, :, :, 0] = pil_resize.imresize(batch, frame_size, frame_size)
    return frames, labels[np.arange(count) % len(labels)].astype(np.int64)
