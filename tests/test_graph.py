"""Graph geometry (docs/reference_code.md §1) and area matrices vs tf.image.resize."""

import itertools

import numpy as np
import pytest

from rstg_tf.graph import area_resize_matrix, build_graph


def test_syncmnist_graph_facts():
    g = build_graph((64, 64), 3)
    assert g.num_nodes == 14
    assert g.num_edges == 45
    assert g.grids == (3, 2, 1)
    assert g.neighbours(0) == [1, 3, 9, 13]
    assert g.adjacency[9, 12] == 0 and g.adjacency[12, 9] == 0  # corner contact only
    assert np.array_equal(g.adjacency, g.adjacency.T)
    assert np.all(np.diag(g.adjacency) == 0)


def test_node_order_and_rectangles():
    g = build_graph((64, 64), 3)
    # Largest grid first, row-major; cells of int(64 / grid) pixels from the top-left.
    assert g.rectangles[0] == (0, 21, 0, 21)
    assert g.rectangles[1] == (21, 42, 0, 21)
    assert g.rectangles[3] == (0, 21, 21, 42)
    assert g.rectangles[9] == (0, 32, 0, 32)
    assert g.rectangles[12] == (32, 64, 32, 64)
    assert g.rectangles[13] == (0, 64, 0, 64)
    assert [s.stop - s.start for s in g.scale_slices] == [9, 4, 1]


def test_edges_follow_the_touch_rule_and_cross_scales():
    g = build_graph((224, 224), 3)
    for i, j in itertools.combinations(range(g.num_nodes), 2):
        a, b = g.rectangles[i], g.rectangles[j]
        dx = min(a[1], b[1]) - max(a[0], b[0])
        dy = min(a[3], b[3]) - max(a[2], b[2])
        expected = dx >= 0 and dy >= 0 and not (dx == 0 and dy == 0)
        assert g.adjacency[i, j] == float(expected), (i, j)
    assert g.adjacency[:9, 9:13].sum() == 16  # 3x3 <-> 2x2 edges
    assert g.adjacency[13, :13].sum() == 13   # the 1x1 node sees everyone


def test_position_maps_are_gaussians_on_the_node_cell():
    g = build_graph((64, 64), 3)
    maps = g.position_maps.reshape(14, 6, 6)
    assert g.position_maps.shape == (14, 36)
    v = np.exp(-0.5 * (0.5 / 2.0) ** 2)  # 2-wide window, std 2
    expected0 = np.zeros((6, 6))
    expected0[0:2, 0:2] = v * v
    np.testing.assert_allclose(maps[0], expected0, rtol=1e-6)
    expected_last = np.zeros((6, 6))
    expected_last[4:6, 4:6] = v * v
    np.testing.assert_allclose(maps[8], expected_last, rtol=1e-6)
    w3 = np.exp(-0.5 * (np.array([-1.0, 0.0, 1.0]) / 2.0) ** 2)
    np.testing.assert_allclose(maps[10][0:3, 3:6], np.outer(w3, w3), rtol=1e-6)
    assert maps[10][3:].sum() == 0 and maps[10][:, :3].sum() == 0
    assert np.all(maps[13] > 0)


@pytest.mark.parametrize("big", [6, 7, 14, 28, 56])
@pytest.mark.parametrize("small", [3, 2, 1])
def test_area_matrices_equal_tf_image_resize(big, small):
    tf = pytest.importorskip("tensorflow")
    for a, b in ((big, small), (small, big)):
        basis = np.eye(a * a, dtype=np.float32).reshape(a * a, a, a, 1)
        tf_matrix = tf.image.resize(basis, (b, b), method="area").numpy().reshape(a * a, b * b).T
        ours = area_resize_matrix(a, a, b, b)
        # Ours are exact rationals; TF's kernel forms its weights in float32.
        np.testing.assert_allclose(ours, tf_matrix, atol=1e-5)
        image = np.random.default_rng(a * 100 + b).normal(size=(2, a, a, 3)).astype(np.float32)
        resized = tf.image.resize(image, (b, b), method="area").numpy()
        mine = np.einsum("ok,bkc->boc", ours, image.reshape(2, a * a, 3)).reshape(resized.shape)
        np.testing.assert_allclose(mine, resized, atol=5e-5)


def test_graph_matrices_shapes_and_rows():
    g = build_graph((64, 64), 3)
    m = g.area_matrix(7, 5, 3)
    assert m.shape == (9, 35)
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    assert g.upsample_matrix(6, 6, 2).shape == (36, 4)
    assert g.pooling_matrix(6, 6).shape == (14, 36)
    # Unpooling sums the scales: every pixel receives weight 1 from each of the 3 scales.
    np.testing.assert_allclose(g.unpooling_matrix(6, 6).sum(axis=1), 3.0)


def test_bad_geometry_is_rejected():
    with pytest.raises(ValueError, match="frame_size"):
        build_graph((2, 64), 3)
    with pytest.raises(ValueError, match="positive sizes"):
        area_resize_matrix(0, 4, 2, 2)
