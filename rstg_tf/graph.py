"""Graph geometry of RSTG (docs/reference_code.md §1), plain NumPy, computed once per model.

Nodes live on square grids, largest first (3x3, 2x2, 1x1 for three scales), row-major
inside a grid. Each node owns a rectangle of the input frame; two nodes are neighbours
when their rectangles overlap or share an edge (a single shared corner does not count).

A node's input is the area average of its cell of the backbone's H x W map. TF's
``tf.image.resize(method="area")`` has no gradient, so the reference applies it as a
matmul with a constant matrix; ``area_resize_matrix`` builds that matrix exactly (in
rational arithmetic) for any (H, W) -> (h, w), down or up.
"""

from __future__ import annotations

import dataclasses
import functools
from fractions import Fraction
from typing import List, Tuple

import numpy as np


@functools.lru_cache(maxsize=None)
def _area_weights_1d(in_size: int, out_size: int) -> np.ndarray:
    """[out_size, in_size] weights of TF's area resize along one axis (align_corners=False).

    Output cell o covers [o * s, (o + 1) * s) of the input with s = in / out; each input
    cell contributes its overlap with that interval, divided by s.
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"area resize needs positive sizes; got {in_size} -> {out_size}.")
    scale = Fraction(in_size, out_size)
    weights = np.zeros((out_size, in_size), dtype=np.float64)
    for o in range(out_size):
        start, end = o * scale, (o + 1) * scale
        for i in range(int(start), min(in_size, -(-end.numerator // end.denominator))):
            overlap = min(Fraction(i + 1), end) - max(Fraction(i), start)
            if overlap > 0:
                weights[o, i] = float(overlap / scale)
    weights.setflags(write=False)
    return weights


def area_resize_matrix(in_h: int, in_w: int, out_h: int, out_w: int) -> np.ndarray:
    """[out_h * out_w, in_h * in_w] matrix M with resize(x) = M @ x (row-major pixels).

    Equals ``tf.image.resize(x, (out_h, out_w), method="area")`` on every channel.
    """
    return np.kron(_area_weights_1d(in_h, out_h), _area_weights_1d(in_w, out_w))


def _gaussian_window(size: int, std: float) -> np.ndarray:
    """Symmetric Gaussian window, as scipy.signal.windows.gaussian(size, std)."""
    n = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    return np.exp(-0.5 * (n / std) ** 2)


def _touch_or_overlap(a: Tuple[int, int, int, int], b: Tuple[int, int, int, int]) -> bool:
    """Rectangles (x0, x1, y0, y1) overlap or share an edge; a lone corner is not enough."""
    dx = min(a[1], b[1]) - max(a[0], b[0])
    dy = min(a[3], b[3]) - max(a[2], b[2])
    if dx == 0 and dy == 0:
        return False
    return dx >= 0 and dy >= 0


@dataclasses.dataclass(frozen=True)
class Graph:
    """Nodes, edges and node<->map matrices of one RSTG graph.

    Attributes:
      frame_size: (dim_h, dim_w) of the input frames.
      grids: grid sides, largest first, e.g. (3, 2, 1).
      rectangles: per node (x0, x1, y0, y1) in frame pixels.
      adjacency: [N, N] float32, symmetric, zero diagonal.
      position_maps: [N, map_size**2] float32, fixed Gaussian position maps.
    """

    frame_size: Tuple[int, int]
    grids: Tuple[int, ...]
    rectangles: Tuple[Tuple[int, int, int, int], ...]
    adjacency: np.ndarray
    position_maps: np.ndarray

    @property
    def num_nodes(self) -> int:
        return len(self.rectangles)

    @property
    def num_edges(self) -> int:
        """Undirected edges."""
        return int(self.adjacency.sum()) // 2

    @property
    def scale_slices(self) -> List[slice]:
        """Node index range of each scale, in node order."""
        out, start = [], 0
        for g in self.grids:
            out.append(slice(start, start + g * g))
            start += g * g
        return out

    def neighbours(self, node: int) -> List[int]:
        return [int(j) for j in np.flatnonzero(self.adjacency[node])]

    def area_matrix(self, height: int, width: int, grid: int) -> np.ndarray:
        """[(grid*grid), (H*W)] matrix pooling an H x W map into a grid x grid scale."""
        return area_resize_matrix(height, width, grid, grid)

    def upsample_matrix(self, height: int, width: int, grid: int) -> np.ndarray:
        """[(H*W), (grid*grid)] matrix area-resizing a grid x grid scale back to H x W."""
        return area_resize_matrix(grid, grid, height, width)

    def pooling_matrix(self, height: int, width: int) -> np.ndarray:
        """[N, H*W]: all scales' pooling matrices stacked in node order (map -> nodes)."""
        return np.concatenate([self.area_matrix(height, width, g) for g in self.grids])

    def unpooling_matrix(self, height: int, width: int) -> np.ndarray:
        """[H*W, N]: every scale up-sampled to H x W and the scales summed (nodes -> map)."""
        return np.concatenate(
            [self.upsample_matrix(height, width, g) for g in self.grids], axis=1)


def _rectangles(frame_size: Tuple[int, int], grids) -> List[Tuple[int, int, int, int]]:
    dim_h, dim_w = frame_size
    rects = []
    for g in grids:
        cell_h, cell_w = int(dim_h / g), int(dim_w / g)
        for row in range(g):
            for col in range(g):
                rects.append((col * cell_w, (col + 1) * cell_w,
                              row * cell_h, (row + 1) * cell_h))
    return rects


def _position_maps(grids, map_size: int, std: float = 2.0) -> np.ndarray:
    maps = []
    for g in grids:
        side = map_size // g
        window = np.outer(_gaussian_window(side, std), _gaussian_window(side, std))
        for row in range(g):
            for col in range(g):
                m = np.zeros((map_size, map_size))
                m[row * side:(row + 1) * side, col * side:(col + 1) * side] = window
                maps.append(m.reshape(-1))
    return np.asarray(maps, dtype=np.float32)


@functools.lru_cache(maxsize=None)
def build_graph(frame_size=(64, 64), num_scales: int = 3, position_map_size: int = 6) -> Graph:
    """Builds the multi-scale graph for frames of ``frame_size`` = (dim_h, dim_w).

    >>> g = build_graph((64, 64), 3)
    >>> g.num_nodes, g.num_edges
    (14, 45)
    """
    if isinstance(frame_size, int):
        frame_size = (frame_size, frame_size)
    frame_size = tuple(int(s) for s in frame_size)
    if len(frame_size) != 2 or min(frame_size) < num_scales or num_scales < 1:
        raise ValueError(
            f"build_graph needs frame_size=(h, w) with h, w >= num_scales >= 1; "
            f"got frame_size={frame_size}, num_scales={num_scales}.")
    grids = tuple(range(num_scales, 0, -1))
    rects = _rectangles(frame_size, grids)
    n = len(rects)
    adjacency = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        for j in range(i):
            if _touch_or_overlap(rects[i], rects[j]):
                adjacency[i, j] = adjacency[j, i] = 1.0
    positions = _position_maps(grids, position_map_size)
    adjacency.setflags(write=False)
    positions.setflags(write=False)
    return Graph(frame_size, grids, tuple(rects), adjacency, positions)
