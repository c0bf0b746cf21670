"""Contact sheets (PNG) and animations (GIF) of labelled clips, for eyeballing a data set."""

from __future__ import annotations

import math
import os
from typing import List, Sequence

import cv2
import numpy as np

from rstg_tf.data.atomic import atomic_write_bytes

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _text(image: np.ndarray, text: str, origin, scale: float = 0.4) -> None:
    cv2.putText(image, text, origin, _FONT, scale, 255, 1, cv2.LINE_AA)


def _as_gray(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim == 4:
        frames = frames[..., 0]
    if frames.dtype != np.uint8 or frames.ndim != 3:
        raise ValueError(f"clips must be uint8 [T, H, W(, 1)]; got {frames.dtype} "
                         f"{frames.shape}.")
    return frames


def contact_sheet(clips: Sequence[np.ndarray], captions: Sequence[str], zoom: int = 2,
                  margin: int = 120) -> np.ndarray:
    """One row per clip: its caption, then its frames left to right.

    Args:
      clips: uint8 [T, H, W] (or [T, H, W, 1]) arrays, all the same shape.
      captions: one text per clip (a '|' starts a second line).
      zoom: nearest-neighbour enlargement of each frame.
      margin: caption width in pixels.

    Returns:
      uint8 [rows, cols] image.
    """
    if len(clips) != len(captions) or not clips:
        raise ValueError("need one caption per clip and at least one clip.")
    clips = [_as_gray(c) for c in clips]
    t, h, w = clips[0].shape
    cell_h, cell_w, gap = h * zoom, w * zoom, 2
    sheet = np.zeros((len(clips) * (cell_h + gap), margin + t * (cell_w + gap)), np.uint8)
    for row, (clip, caption) in enumerate(zip(clips, captions)):
        top = row * (cell_h + gap)
        for line, part in enumerate(caption.split("|")):
            _text(sheet, part.strip(), (4, top + 18 + 16 * line))
        for i, frame in enumerate(clip):
            left = margin + i * (cell_w + gap)
            sheet[top:top + cell_h, left:left + cell_w] = np.kron(
                frame, np.ones((zoom, zoom), np.uint8))
    return sheet


def animation_frames(clips: Sequence[np.ndarray], captions: Sequence[str],
                     zoom: int = 2) -> List[np.ndarray]:
    """A grid of clips with captions under them, one image per time step (BGR uint8)."""
    clips = [_as_gray(c) for c in clips]
    t, h, w = clips[0].shape
    cols = math.ceil(math.sqrt(len(clips)))
    rows = math.ceil(len(clips) / cols)
    cell_h, cell_w = h * zoom + 20, w * zoom + 4
    frames = []
    for step in range(t):
        grid = np.zeros((rows * cell_h, cols * cell_w), np.uint8)
        for k, (clip, caption) in enumerate(zip(clips, captions)):
            top, left = (k // cols) * cell_h, (k % cols) * cell_w
            grid[top:top + h * zoom, left:left + w * zoom] = np.kron(
                clip[step], np.ones((zoom, zoom), np.uint8))
            _text(grid, caption.split("|")[0].strip(), (left + 2, top + h * zoom + 14))
        frames.append(cv2.cvtColor(grid, cv2.COLOR_GRAY2BGR))
    return frames


def write_preview(clips: Sequence[np.ndarray], captions: Sequence[str], png_path: str,
                  gif_path: str = None, frame_ms: int = 250) -> List[str]:
    """Writes the contact sheet (and the GIF) atomically; returns the paths written."""
    ok, png = cv2.imencode(".png", contact_sheet(clips, captions))
    if not ok:
        raise RuntimeError("could not encode the contact sheet.")
    atomic_write_bytes(png_path, png.tobytes())
    written = [png_path]
    if gif_path:
        animation = cv2.Animation()
        animation.frames = animation_frames(clips, captions)
        animation.durations = [frame_ms] * len(animation.frames)
        animation.loop_count = 0
        ok, gif = cv2.imencodeanimation(".gif", animation)
        if not ok:
            raise RuntimeError("could not encode the GIF preview.")
        atomic_write_bytes(gif_path, gif.tobytes())
        written.append(gif_path)
    return [os.path.abspath(p) for p in written]
