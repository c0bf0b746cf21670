"""Small PNG charts drawn with OpenCV (no plotting dependency): lines, bars, heatmaps."""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import cv2
import numpy as np

from rstg_tf.data.atomic import atomic_write_bytes

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_COLOURS = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148),
            (75, 86, 140), (194, 119, 227), (127, 127, 127), (34, 189, 188),
            (207, 190, 23)]   # BGR, matplotlib's tab10
_INK, _GRID = (30, 30, 30), (225, 225, 225)


def _save(image: np.ndarray, path: str) -> str:
    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError(f"could not encode {path}.")
    atomic_write_bytes(path, png.tobytes())
    return path


def _put(image, text, origin, scale=0.45, colour=_INK, thickness=1):
    cv2.putText(image, str(text), (int(origin[0]), int(origin[1])), _FONT, scale, colour,
                thickness, cv2.LINE_AA)


def _frame(title: str, size=(900, 560)):
    width, height = size
    image = np.full((height, width, 3), 255, np.uint8)
    _put(image, title, (70, 30), 0.6, thickness=1)
    return image, (70, 50, width - 30, height - 60)          # plot box: x0, y0, x1, y1


def _axes(image, box, y_lo, y_hi, y_label, ticks=5):
    x0, y0, x1, y1 = box
    for i in range(ticks + 1):
        value = y_lo + (y_hi - y_lo) * i / ticks
        y = y1 - (y1 - y0) * i / ticks
        cv2.line(image, (x0, int(y)), (x1, int(y)), _GRID, 1)
        _put(image, f"{value:.3g}", (5, y + 4), 0.4)
    cv2.rectangle(image, (x0, y0), (x1, y1), _INK, 1)
    _put(image, y_label, (5, y0 - 8), 0.4)


def line_chart(series: Dict[str, Sequence[float]], path: str, title: str,
               x_label: str = "epoch", y_label: str = "",
               x_values: Optional[Sequence] = None, legend_outside: bool = False,
               levels: Optional[Dict[str, float]] = None) -> str:
    """One line per named series over x = 1..n (labelled ``x_values`` if given); writes
    ``path`` (PNG). Non-finite values (NaN for "not measured") are left out of a line.
    ``legend_outside``: the names go in a column right of the plot (many series).
    ``levels`` maps a label to a value drawn as a dashed reference line."""
    image, box = _frame(title, (1120, 560) if legend_outside else (900, 560))
    if legend_outside:
        box = (box[0], box[1], box[2] - 220, box[3])
    levels = levels or {}
    values = [v for s in series.values() for v in s if np.isfinite(v)]
    if not values:
        raise ValueError("line_chart needs at least one finite value.")
    values += list(levels.values())
    lo, hi = min(values), max(values)
    lo, hi = (lo - 0.5, hi + 0.5) if hi == lo else (lo, hi)
    if levels and max(levels.values()) >= hi:
        hi += 0.05 * (hi - lo)            # a level at the top stays clear of the frame
    _axes(image, box, lo, hi, y_label)
    x0, y0, x1, y1 = box
    longest = max(len(s) for s in series.values())
    for k, (name, ys) in enumerate(series.items()):
        colour = _COLOURS[k % len(_COLOURS)]
        points = [(x0 + (x1 - x0) * (i / max(longest - 1, 1)),
                   y1 - (y1 - y0) * (v - lo) / (hi - lo))
                  for i, v in enumerate(ys) if np.isfinite(v)]
        pts = np.array(points, np.int32).reshape(-1, 1, 2)
        cv2.polylines(image, [pts], False, colour, 2, cv2.LINE_AA)
        for p in pts[:, 0]:
            cv2.circle(image, tuple(int(c) for c in p), 3, colour, -1, cv2.LINE_AA)
        _put(image, name, (x1 + 15 if legend_outside else x1 - 200, y0 + 20 + 18 * k), 0.45,
             colour)
    for i in range(longest):
        x = x0 + (x1 - x0) * (i / max(longest - 1, 1))
        _put(image, x_values[i] if x_values is not None else i + 1, (x - 4, y1 + 18), 0.4)
    _put(image, x_label, ((x0 + x1) / 2 - 20, y1 + 40), 0.45)
    _dashed_levels(image, box, hi, levels, bottom=lo)
    return _save(image, path)


def _dashed_levels(image, box, top, levels, bottom=0.0, outside=False):
    """Dashed horizontal lines at ``levels``' values across the plot box (y from
    ``bottom`` to ``top``). Each is labelled at the right inside the box (above its line,
    or below it, or left of the labels already drawn, whichever first keeps clear of
    them) or, ``outside``, just right of the box (moved down clear of the one above)."""
    x0, y0, x1, y1 = box
    placed = []                                     # (baseline, left, right) of labels
    for label, value in sorted(levels.items(), key=lambda item: -item[1]):
        y = int(y1 - (y1 - y0) * (min(value, top) - bottom) / (top - bottom))
        for x in range(x0, x1, 12):
            cv2.line(image, (x, y), (min(x + 6, x1), y), _INK, 1)
        width = 8 * len(label) + 6
        if outside:
            base = max([y + 4] + [b + 12 for b, _, _ in placed])
            placed.append((base, x1 + 6, x1 + 6 + width))
            _put(image, label, (x1 + 6, base), 0.4)
            continue
        further_left = min((left for _, left, _ in placed), default=x1) - 12
        for base, right in ((y - 5, x1), (y + 13, x1), (y - 5, further_left)):
            if all(abs(base - b) >= 12 or right - width >= r or right <= lft
                   for b, lft, r in placed):
                break
        placed.append((base, right - width, right))
        _put(image, label, (right - width, base), 0.4)


def bar_chart(labels: Sequence[str], groups: Dict[str, Sequence[Optional[float]]], path: str,
              title: str, y_label: str = "", y_max: Optional[float] = None,
              levels: Optional[Dict[str, float]] = None) -> str:
    """Grouped bars: for each label, one bar per group (None: no bar).

    ``levels`` maps a label to a value drawn as a dashed reference line (e.g. chance),
    labelled right of the plot, clear of the bars.
    """
    margin = 8 * max(map(len, levels), default=0) + 20 if levels else 0
    image, box = _frame(title, (max(900, 110 * len(labels) + 120) + margin, 600))
    x0, y0, x1, y1 = box
    x1 -= margin
    y1 -= 40
    box = (x0, y0, x1, y1)
    values = [v for g in groups.values() for v in g if v is not None]
    top = y_max or (max(values) * 1.1 if values else 1.0)
    _axes(image, box, 0.0, top, y_label)
    slot = (x1 - x0) / max(len(labels), 1)
    width = slot * 0.8 / max(len(groups), 1)
    for k, (name, bars) in enumerate(groups.items()):
        colour = _COLOURS[k % len(_COLOURS)]
        _put(image, name, (x1 - 220, 18 + 16 * k), 0.45, colour)   # legend above the box
        for i, value in enumerate(bars):
            if value is None:
                continue
            left = x0 + slot * i + slot * 0.1 + width * k
            height = (y1 - y0) * min(value, top) / top
            cv2.rectangle(image, (int(left), int(y1 - height)), (int(left + width - 2), y1),
                          colour, -1)
            _put(image, f"{value:.1f}", (left, y1 - height - 4), 0.35)
    _dashed_levels(image, box, top, levels or {}, outside=True)
    for i, label in enumerate(labels):
        _put(image, label, (x0 + slot * i + 4, y1 + 18 + 14 * (i % 2)), 0.4)
    return _save(image, path)


def heatmap(matrix: np.ndarray, path: str, title: str,
            labels: Optional[Sequence[str]] = None, cell: int = 14) -> str:
    """A row-normalised heatmap (e.g. a confusion matrix, rows = true class)."""
    matrix = np.asarray(matrix, np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"heatmap needs a square matrix; got {matrix.shape}.")
    n = len(matrix)
    rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    colours = cv2.applyColorMap((255 * (1 - rows)).astype(np.uint8), cv2.COLORMAP_BONE)
    grid = cv2.resize(colours, (n * cell, n * cell), interpolation=cv2.INTER_NEAREST)
    margin = 60
    image = np.full((n * cell + margin + 40, n * cell + margin + 20, 3), 255, np.uint8)
    image[margin:margin + n * cell, margin:margin + n * cell] = grid
    _put(image, title, (margin, 25), 0.55)
    _put(image, "true class (rows) vs predicted (columns)", (margin, 45), 0.4)
    step = max(1, n // 23)
    for i in range(0, n, step):
        name = labels[i] if labels is not None else str(i)
        _put(image, name, (2, margin + i * cell + cell - 3), 0.3)
        _put(image, i, (margin + i * cell, margin + n * cell + 14), 0.3)
    return _save(image, path)
