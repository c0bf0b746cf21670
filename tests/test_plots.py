"""PNG charts: what is drawn lands where the values say."""

import cv2
import numpy as np

from rstg_tf import plots


def test_bar_chart_draws_reference_levels_at_their_values(tmp_path):
    path = str(tmp_path / "bars.png")
    plots.bar_chart(["a", "b"], {"ours": [10.0, 20.0]}, path, "t", y_max=100.0,
                    levels={"ceiling 50 %": 50.0})
    with_level = cv2.imread(path)
    plots.bar_chart(["a", "b"], {"ours": [10.0, 20.0]}, path, "t", y_max=100.0)
    without = cv2.imread(path)
    assert with_level.shape == without.shape
    # The plot box spans y0=50 .. y1=(600-60)-40=500 in a 600-pixel-high frame: 50 % of it
    # is row 275. Look left of the label, where only the dashes differ.
    differs = np.flatnonzero((with_level != without).any(axis=2)[:, 80:400].any(axis=1))
    assert differs.size and abs(differs.min() - 275) <= 1 and differs.max() - 275 <= 1


def test_line_chart_legend_outside_keeps_names_off_the_lines(tmp_path):
    path = str(tmp_path / "lines.png")
    series = {f"s{k}": [float(k), k + 1.0, k + 2.0] for k in range(10)}
    plots.line_chart(series, path, "t", legend_outside=True)
    image = cv2.imread(path)
    assert image.shape[1] == 1120
    # The plot box ends 220 + 30 pixels from the right; the names lie right of it, in ten
    # distinct colours (the palette no longer repeats within ten series).
    legend = image[50:260, 1120 - 240:].reshape(-1, 1, 3).astype(int)
    colours = np.array(plots._COLOURS)
    near = (np.abs(legend - colours[None]).max(axis=2) <= 12).any(axis=0)   # anti-aliased text
    assert len({tuple(c) for c in plots._COLOURS}) == 10 and near.all()
    plots.line_chart(series, path, "t")
    assert cv2.imread(path).shape[1] == 900


def test_line_chart_draws_reference_levels_at_their_values(tmp_path):
    path = str(tmp_path / "lines.png")
    plots.line_chart({"a": [0.0, 10.0]}, path, "t", levels={"half": 5.0})
    with_level = cv2.imread(path)
    plots.line_chart({"a": [0.0, 10.0]}, path, "t")
    without = cv2.imread(path)
    # Plot box y0=50 .. y1=500 for values 0 .. 10: 5 is row 275. Left of the label, where
    # only the dashes differ (the line is far below row 275 there).
    differs = np.flatnonzero((with_level != without).any(axis=2)[:, 80:400].any(axis=1))
    assert differs.size and abs(differs.min() - 275) <= 1 and differs.max() - 275 <= 1
    # A level outside the series' range widens the axis to show it.
    plots.line_chart({"a": [0.0, 10.0]}, path, "t", levels={"high": 20.0})
    assert not np.array_equal(cv2.imread(path), with_level)
