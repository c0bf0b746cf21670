"""The reference's frame resize, ``scipy.misc.imresize(frame, (64, 64))``, in NumPy.

The reference renders each 100x100 SyncMNIST frame as float64 and resizes it with the
long-removed ``scipy.misc.imresize``. That function did two things:

1. ``bytescale``: map the frame's own ``[min, max]`` to ``[0, 255]`` and round,
   ``uint8((x - min) * (255 / (max - min)) + 0.5)`` (a constant frame maps to 0).
2. ``PIL.Image.resize(..., BILINEAR)`` on the 8-bit image. Pillow (>= 4) resizes with a
   separable convolution whose triangle filter is stretched by the scale factor when
   shrinking (so 100 -> 64 averages ~3 input pixels per output, unlike OpenCV's
   ``INTER_LINEAR``), with 22-bit fixed-point weights and a uint8 rounding after each pass,
   horizontal pass first (Pillow 4-13 for a shrink on both axes; Pillow >= 10 runs the
   vertical pass first when only it shrinks, a case SyncMNIST never meets).

``resize_matrix`` builds Pillow's fixed-point weights exactly; ``resize_uint8`` applies both
passes with float64 matrix products, which are exact here (every partial sum is an integer
below 2**53), so the result equals Pillow's bit for bit.
"""

from __future__ import annotations

import functools
import math

import numpy as np

_PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed-point precision for 8-bit images.


def _triangle(x: float) -> float:
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


@functools.lru_cache(maxsize=None)
def resize_matrix(in_size: int, out_size: int) -> np.ndarray:
    """Pillow's bilinear weights for one axis as fixed-point integers.

    Args:
      in_size: input length along the axis.
      out_size: output length.

    Returns:
      float64 array [out_size, in_size] holding integers; each row sums to ~2**22.
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be positive; got {in_size} -> {out_size}.")
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale
    weights = np.zeros((out_size, in_size), np.float64)
    for out in range(out_size):
        center = (out + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        taps = [_triangle((x - center + 0.5) / filterscale) for x in range(lo, hi)]
        total = sum(taps)
        for x, tap in zip(range(lo, hi), taps):
            k = tap / total if total != 0.0 else tap
            # C's (int) cast truncates toward zero; k >= 0 for the triangle filter.
            weights[out, x] = math.floor(0.5 + k * (1 << _PRECISION_BITS))
    weights.setflags(write=False)
    return weights


def _fixed_point_round(accumulated: np.ndarray) -> np.ndarray:
    rounded = np.floor((accumulated + (1 << (_PRECISION_BITS - 1))) / (1 << _PRECISION_BITS))
    return np.clip(rounded, 0, 255)


def resize_uint8(images: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Pillow ``BILINEAR`` resize of uint8 images ``[..., H, W]`` to ``[..., out_h, out_w]``."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim < 2:
        raise ValueError(f"resize_uint8 wants uint8 [..., H, W]; got {images.dtype} "
                         f"{images.shape}.")
    in_h, in_w = images.shape[-2:]
    x = images.astype(np.float64)
    if in_w != out_w:
        x = _fixed_point_round(x @ resize_matrix(in_w, out_w).T)
    if in_h != out_h:
        x = _fixed_point_round(resize_matrix(in_h, out_h) @ x)
    return x.astype(np.uint8)


def bytescale(frames: np.ndarray) -> np.ndarray:
    """``scipy.misc.bytescale`` per frame: own [min, max] -> [0, 255], rounded, uint8.

    Args:
      frames: real array [..., H, W]; each trailing [H, W] image is scaled on its own.
    """
    frames = np.asarray(frames, np.float64)
    lo = frames.min(axis=(-2, -1), keepdims=True)
    span = frames.max(axis=(-2, -1), keepdims=True) - lo
    scale = 255.0 / np.where(span == 0, 1.0, span)
    return (np.clip((frames - lo) * scale, 0, 255) + 0.5).astype(np.uint8)


def imresize(frames: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """``scipy.misc.imresize(frame, (out_h, out_w))`` on every frame of ``[..., H, W]``."""
    return resize_uint8(bytescale(frames), out_h, out_w)
