"""PNG charts: what is drawn lands where the values say (checked on the matplotlib
figures), and each chart is written as a whole PNG of the figure's size."""

import os
import sys

import cv2
import numpy as np
import pytest

from rstg_tf import plots
from tests.helpers import run_python


def _written(path, figure):
    """``path`` is a PNG of ``figure``'s pixel size, alone in its folder (no temp file)."""
    image = cv2.imread(str(path))
    assert image is not None and image.shape[:2] == (round(figure.bbox.height),
                                                     round(figure.bbox.width))
    assert os.listdir(os.path.dirname(path)) == [os.path.basename(path)]
    return image


def _dashed(ax):
    return {line.get_ydata()[0] for line in ax.lines if line.get_linestyle() == "--"}


def _boxes(figure, *labels):
    """Pixel boxes of the texts ``labels`` on the drawn ``figure``."""
    figure.canvas.draw()
    texts = {t.get_text(): t for t in figure.axes[0].texts}
    return [texts[label].get_window_extent() for label in labels]


def test_bar_chart_draws_values_levels_and_clear_labels(tmp_path):
    levels = {"chance 2.2 %": 2.2, "sync-blind 10 %": 10.0, "probes 9.0 %": 9.0}
    groups = {"ours": [10.0, None, 30.0], "paper": [15.0, 25.0, 35.0]}
    figure = plots._bar_figure(["a", "b", "c"], groups, "t", y_max=100.0, levels=levels)
    ax = figure.axes[0]
    ours, paper = ax.containers
    assert [bar.get_height() for bar in ours] == [10.0, 30.0]        # None: no bar
    assert [bar.get_height() for bar in paper] == [15.0, 25.0, 35.0]
    assert [round(bar.get_x() + bar.get_width() / 2) for bar in ours] == [0, 2]
    assert ax.get_ylim() == (0.0, 100.0)
    assert _dashed(ax) == set(levels.values())
    blind, probes, chance = _boxes(figure, *sorted(levels, key=lambda k: -levels[k]))
    assert not blind.overlaps(probes) and not probes.overlaps(chance)
    axes_box = ax.get_window_extent()
    assert min(b.x0 for b in (blind, probes, chance)) >= axes_box.x1   # right of the bars
    assert abs((blind.y0 + blind.y1) / 2 - ax.transData.transform((0, 10.0))[1]) <= 2
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["ours", "paper"]
    auto = plots._bar_figure(["a"], {"ours": [130.0]}, "t").axes[0]
    assert auto.get_ylim()[0] == 0.0 and auto.get_ylim()[1] >= 130.0
    path = tmp_path / "bars.png"
    assert plots.bar_chart(["a", "b", "c"], groups, str(path), "t", y_max=100.0,
                           levels=levels) == str(path)
    _written(path, figure)


def test_line_chart_draws_series_and_levels(tmp_path):
    nan = float("nan")
    figure = plots._line_figure({"a": [1.0, nan, 3.0], "b": [2.0, 2.0, 2.0]}, "t",
                                x_values=[4, 8, 16], levels={"half": 2.5})
    ax = figure.axes[0]
    a, b = [line for line in ax.lines if line.get_linestyle() != "--"]
    assert list(a.get_xdata()) == [1, 3] and list(a.get_ydata()) == [1.0, 3.0]   # NaN left out
    assert list(b.get_xdata()) == [1, 2, 3] and list(b.get_ydata()) == [2.0, 2.0, 2.0]
    assert list(ax.get_xticks()) == [1, 2, 3]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["4", "8", "16"]
    assert _dashed(ax) == {2.5}
    assert ax.get_ylim()[1] < 20.0
    high = plots._line_figure({"a": [1.0, 3.0]}, "t", levels={"high": 20.0}).axes[0]
    assert _dashed(high) == {20.0} and high.get_ylim()[1] > 20.0        # the axis widens
    close = plots._line_figure({"a": [0.0, 10.0]}, "t",
                               levels={"upper": 5.0, "lower": 4.99})
    upper, lower = _boxes(close, "upper", "lower")
    assert not upper.overlaps(lower) and lower.y1 <= upper.y0
    with pytest.raises(ValueError):
        plots._line_figure({"a": [nan]}, "t")
    path = tmp_path / "lines.png"
    plots.line_chart({"a": [1.0, nan, 3.0], "b": [2.0, 2.0, 2.0]}, str(path), "t",
                     x_values=[4, 8, 16], levels={"half": 2.5})
    _written(path, figure)


def test_line_chart_legend_outside_and_ten_colours(tmp_path):
    series = {f"s{k}": [float(k), k + 1.0, k + 2.0] for k in range(10)}
    figure = plots._line_figure(series, "t", legend_outside=True)
    figure.canvas.draw()
    ax, legend = figure.axes[0], figure.axes[0].get_legend()
    assert legend.get_window_extent().x0 >= ax.get_window_extent().x1
    assert [t.get_text() for t in legend.get_texts()] == list(series)
    assert len({tuple(line.get_color()) for line in ax.lines}) == 10
    inside = plots._line_figure(series, "t")
    inside.canvas.draw()
    box = inside.axes[0].get_legend().get_window_extent()
    assert box.x1 <= inside.axes[0].get_window_extent().x1               # inside the box
    assert figure.bbox.width > inside.bbox.width
    path = tmp_path / "lines.png"
    plots.line_chart(series, str(path), "t", legend_outside=True)
    _written(path, figure)


def test_heatmap_is_row_normalised_and_labelled(tmp_path):
    matrix = np.array([[2, 2, 0], [0, 0, 0], [1, 0, 3]])
    figure = plots._heatmap_figure(matrix, "t", labels=["x", "y", "z"])
    ax = figure.axes[0]
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()),
                                  [[0.5, 0.5, 0.0], [0.0, 0.0, 0.0], [0.25, 0.0, 0.75]])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x", "y", "z"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x", "y", "z"]
    assert len(figure.axes) == 2                                          # + the colour bar
    unlabelled = plots._heatmap_figure(matrix, "t").axes[0]
    unlabelled.figure.canvas.draw()
    assert "x" not in [t.get_text() for t in unlabelled.get_xticklabels()]
    with pytest.raises(ValueError):
        plots._heatmap_figure(np.zeros((2, 3)), "t")
    path = tmp_path / "confusion.png"
    plots.heatmap(matrix, str(path), "t", labels=["x", "y", "z"])
    _written(path, figure)


def test_matplotlib_is_imported_only_to_draw_and_programs_skip_charts_without_it(
        tmp_path, monkeypatch, capsys):
    result = run_python(["-c", "import sys, rstg_tf.plots; "
                         "print(sorted(m for m in sys.modules if 'matplotlib' in m))"])
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr
    from benchmarks.block_speed import plot_scaling as _plot
    from train.table_report import write_table

    rows = [{"batch": 1, "T": t, "variant": "rstg", "forward_s": 1e-3 * t} for t in (2, 4)]
    path = str(tmp_path / "results.png")
    assert _plot({"scaling": {"rows": rows}}, path) == path and os.path.exists(path)
    os.remove(path)
    for name in ["matplotlib", *(m for m in sys.modules if m.startswith("matplotlib."))]:
        monkeypatch.setitem(sys.modules, name, None)                 # as if not installed
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plots.line_chart({"a": [1.0]}, path, "t")
    assert _plot({"scaling": {"rows": rows}}, path) is None and not os.listdir(tmp_path)
    row = {"top1": 0.5, "top5": 0.9, "parameters": 10, "num_videos": 100}
    write_table(3, "quick", ["rstg_all_temp"], {"rstg_all_temp": row}, str(tmp_path))
    assert os.listdir(tmp_path) == ["table.md"]                     # the table, no chart
    out = capsys.readouterr().out
    assert "no results.png: " in out and "no table.png: " in out
    assert "pip install matplotlib" in out
