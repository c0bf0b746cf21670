"""PNG charts on matplotlib: lines (learning curves, benchmark scaling), grouped bars
(Table 1) and row-normalised heatmaps (confusion matrices).

Each chart is a ``matplotlib.figure.Figure`` on its own Agg canvas: no pyplot state and no
``matplotlib.use``, so it is headless and safe in threads. matplotlib is imported only when
a chart is drawn (importing this module does not need it); without it, drawing raises an
ImportError that says how to install it. The ``_*_figure`` functions build the figures
(tests inspect them); the public ones write them as PNG, atomically.
"""

from __future__ import annotations

import io
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from rstg_tf.data.atomic import atomic_write_bytes

_DPI = 100


def _figure(width: int, height: int):
    """An empty Figure of ``width`` x ``height`` pixels on an Agg canvas."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("rstg_tf.plots draws with matplotlib: pip install matplotlib") \
            from error
    figure = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _colour(k: int):
    from matplotlib import colormaps
    return colormaps["tab10"](k % 10)


def _save(figure, path: str) -> str:
    buffer = io.BytesIO()
    figure.canvas.print_png(buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _levels(ax, levels: Optional[Dict[str, float]], outside: bool) -> None:
    """Dashed lines at ``levels``' values, each labelled at the right edge of the axes
    (inside, above its line; ``outside``: beside it). Draw everything else first: the
    layout is settled here, and a label that would overlap the one above moves down."""
    texts = []
    for label, value in sorted((levels or {}).items(), key=lambda item: -item[1]):
        ax.axhline(value, linestyle="--", linewidth=1, color="0.3")
        texts.append(ax.annotate(label, (1, value), xycoords=ax.get_yaxis_transform(),
                                 xytext=(4, 0) if outside else (-4, 2),
                                 textcoords="offset points", fontsize=8,
                                 ha="left" if outside else "right",
                                 va="center" if outside else "bottom"))
    if not texts:
        return
    figure = ax.get_figure()
    figure.draw_without_rendering()
    renderer = figure.canvas.get_renderer()
    floor = np.inf                                       # bottom of the label above, px
    for text in texts:
        box = text.get_window_extent(renderer)
        drop = max(0.0, box.y1 - floor + 2)
        text.xyann = (text.xyann[0], text.xyann[1] - drop * 72 / figure.dpi)
        floor = box.y0 - drop


def _line_figure(series: Dict[str, Sequence[float]], title: str, x_label: str = "epoch",
                 y_label: str = "", x_values: Optional[Sequence] = None,
                 legend_outside: bool = False, levels: Optional[Dict[str, float]] = None):
    figure = _xy_figure({name: (np.arange(1, len(ys) + 1), ys) for name, ys in series.items()},
                        title, x_label, y_label, legend_outside)
    ax = figure.axes[0]
    if x_values is not None:
        ax.set_xticks(range(1, len(x_values) + 1), [str(x) for x in x_values])
    else:
        from matplotlib.ticker import MaxNLocator
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _levels(ax, levels, outside=False)
    return figure


def _xy_figure(series: Dict[str, Tuple[Sequence[float], Sequence[float]]], title: str,
               x_label: str, y_label: str = "", legend_outside: bool = False):
    """The lines of ``series`` (name -> (xs, ys)); reference levels are drawn after."""
    if not any(np.isfinite(v) for _, ys in series.values() for v in ys):
        raise ValueError("a line chart needs at least one finite value.")
    figure = _figure(1120 if legend_outside else 900, 560)
    ax = figure.add_subplot()
    for k, (name, (xs, ys)) in enumerate(series.items()):
        xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
        if xs.shape != ys.shape:
            raise ValueError(f"series {name!r} has {xs.size} x values for {ys.size} y values.")
        kept = np.isfinite(ys)
        ax.plot(xs[kept], ys[kept], marker="o", markersize=3, color=_colour(k), label=name)
    ax.set(title=title, xlabel=x_label, ylabel=y_label)
    ax.grid(color="0.9")
    ax.legend(**dict(loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)
              if legend_outside else {})
    return figure


def line_chart(series: Dict[str, Sequence[float]], path: str, title: str,
               x_label: str = "epoch", y_label: str = "",
               x_values: Optional[Sequence] = None, legend_outside: bool = False,
               levels: Optional[Dict[str, float]] = None) -> str:
    """One line per named series over x = 1..n (labelled ``x_values`` if given); writes
    ``path`` (PNG). Non-finite values (NaN for "not measured") are left out of a line.
    ``legend_outside``: the legend goes right of the plot (many series). ``levels`` maps
    a label to a value drawn as a dashed reference line (the y axis widens to show it)."""
    return _save(_line_figure(series, title, x_label, y_label, x_values, legend_outside,
                              levels), path)


def xy_chart(series: Dict[str, Tuple[Sequence[float], Sequence[float]]], path: str,
             title: str, x_label: str, y_label: str = "", legend_outside: bool = False,
             levels: Optional[Dict[str, float]] = None) -> str:
    """As ``line_chart``, but each series has its own x values: name -> (xs, ys) (e.g.
    runs validated at different steps on one axis of steps). Writes ``path`` (PNG)."""
    figure = _xy_figure(series, title, x_label, y_label, legend_outside)
    _levels(figure.axes[0], levels, outside=False)
    return _save(figure, path)


def _bar_figure(labels: Sequence[str], groups: Dict[str, Sequence[Optional[float]]],
                title: str, y_label: str = "", y_max: Optional[float] = None,
                levels: Optional[Dict[str, float]] = None):
    margin = 7 * max(map(len, levels or {}), default=0)
    figure = _figure(max(900, 110 * len(labels) + 120) + margin, 600)
    ax = figure.add_subplot()
    width = 0.8 / max(len(groups), 1)
    for k, (name, values) in enumerate(groups.items()):
        kept = [(i, v) for i, v in enumerate(values) if v is not None]
        bars = ax.bar([i - 0.4 + width * (k + 0.5) for i, _ in kept], [v for _, v in kept],
                      width * 0.95, color=_colour(k), label=name)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    if y_max is not None:
        ax.set_ylim(0, y_max)
    ax.set(title=title, ylabel=y_label)
    ax.grid(axis="y", color="0.9")
    ax.set_axisbelow(True)
    figure.legend(loc="outside upper right", ncols=max(len(groups), 1), frameon=False)
    _levels(ax, levels, outside=True)
    return figure


def bar_chart(labels: Sequence[str], groups: Dict[str, Sequence[Optional[float]]], path: str,
              title: str, y_label: str = "", y_max: Optional[float] = None,
              levels: Optional[Dict[str, float]] = None) -> str:
    """Grouped bars: for each label, one bar per group (None: no bar), its value above it.

    ``levels`` maps a label to a value drawn as a dashed reference line (e.g. chance),
    labelled right of the plot, clear of the bars.
    """
    return _save(_bar_figure(labels, groups, title, y_label, y_max, levels), path)


def _heatmap_figure(matrix: np.ndarray, title: str, labels: Optional[Sequence[str]] = None,
                    cell: int = 14):
    matrix = np.asarray(matrix, np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"heatmap needs a square matrix; got {matrix.shape}.")
    n = len(matrix)
    sums = matrix.sum(axis=1, keepdims=True)
    rows = np.divide(matrix, sums, out=np.zeros_like(matrix), where=sums > 0)
    side = max(480, n * cell + 260)
    figure = _figure(side + 100, side)                          # + the colour bar
    ax = figure.add_subplot()
    image = ax.imshow(rows, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.colorbar(image, ax=ax, shrink=0.8, label="fraction of the true class's videos")
    ax.set(title=title, xlabel="predicted class", ylabel="true class")
    if labels is not None:
        size = 8 if n <= 20 else 6
        ax.set_xticks(range(n), labels, rotation=90, fontsize=size)
        ax.set_yticks(range(n), labels, fontsize=size)
    return figure


def heatmap(matrix: np.ndarray, path: str, title: str,
            labels: Optional[Sequence[str]] = None, cell: int = 14) -> str:
    """A row-normalised heatmap (e.g. a confusion matrix, rows = true class; a row of
    zeros stays zeros), about ``cell`` pixels a cell, with a colour bar."""
    return _save(_heatmap_figure(matrix, title, labels, cell), path)
