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
