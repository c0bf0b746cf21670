"""PNG charts: what is drawn lands where the values say."""

import cv2
import numpy as np

from rstg_tf import plots


def test_bar_chart_draws_reference_levels_at_their_values(tmp_path):
    path = str(tmp_path / "bars.png")

    def draw(levels):
        plots.bar_chart(["a", "b"], {"ours": [10.0, 20.0]}, path, "t", y_max=100.0,
                        levels=levels)
        return cv2.imread(path)

    at_50, at_top = draw({"ceiling 50 %": 50.0}), draw({"ceiling 50 %": 100.0})
    assert at_50.shape == at_top.shape and at_50.shape[1] > 900   # a margin for the labels
    # The plot box spans y0=50 .. y1=(600-60)-40=500 in a 600-pixel-high frame: 50 % of it
    # is row 275 (a level at 100 % lies on the box's top edge). Inside the box only the
    # dashes differ.
    box_right = 900 - 30
    differs = np.flatnonzero((at_50 != at_top).any(axis=2)[:, 80:box_right].any(axis=1))
    assert differs.size and abs(differs.min() - 275) <= 1 and differs.max() - 275 <= 1
    # the label is right of the box, beside its line, off the bars
    ink = np.flatnonzero((at_50[:, box_right + 2:] < 128).any(axis=(1, 2)))
    assert ink.size and ink.min() >= 265 and ink.max() <= 285
    # two levels 1 % apart: their labels are two lines of text, one under the other
    close = draw({"sync-blind 10 %": 10.0, "probes 9.0 %": 9.0})
    rows = np.flatnonzero((close[:, box_right + 2:] < 128).any(axis=(1, 2)))
    gaps = np.flatnonzero(np.diff(rows) > 1)
    assert len(gaps) == 1 and rows[-1] - rows[0] >= 18, rows


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
    # Two levels a pixel apart: the lower one's label goes under its line, not over the
    # other's (in the box's right part, left of the series' names).
    plots.line_chart({"a": [0.0, 10.0]}, path, "t", levels={"upper": 5.0, "lower": 4.99})
    two = cv2.imread(path)
    # (rows 200-350 there: clear of the series' line, which crosses them higher up)
    rows = np.flatnonzero((two[200:350, 700:860] < 128).any(axis=(1, 2))) + 200
    texts = [t for t in np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1) if len(t) > 1]
    assert len(texts) == 2 and texts[0][-1] < 275 < texts[1][0], texts  # the dashes: 1 row
