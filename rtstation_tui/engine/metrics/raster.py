"""Contour polygons → pixel masks, with the even-odd rule, in NumPy only.

Why even-odd: an RTSTRUCT plane may hold several closed polygons — islands, and holes drawn as a second polygon
inside the first (a ring-shaped rectum wall, a lung around a tumour). The standard leaves the meaning to the rule
every TPS uses: a point is inside when a ray from it crosses the plane's polygons an odd number of times, i.e. the
polygons are XORed. A pixel is inside when its *centre* is; the grid is fine enough (see ``dvh.py``) that the
partial pixels on the boundary average out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PlaneGrid:
    """Pixel centres ``x0 + (i + 0.5) * step`` (i < nx) and ``y0 + (j + 0.5) * step`` (j < ny)."""

    x0: float
    y0: float
    step: float
    nx: int
    ny: int

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        return (self.x0 + (np.arange(self.nx) + 0.5) * self.step,
                self.y0 + (np.arange(self.ny) + 0.5) * self.step)


def grid_over(polygons: list[np.ndarray], step: float) -> PlaneGrid:
    """The smallest grid of ``step`` that covers the polygons' bounding box."""
    pts = np.concatenate(polygons)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    nx = max(1, int(np.ceil((hi[0] - lo[0]) / step)))
    ny = max(1, int(np.ceil((hi[1] - lo[1]) / step)))
    return PlaneGrid(float(lo[0]), float(lo[1]), step, nx, ny)


def even_odd_mask(polygons: list[np.ndarray], grid: PlaneGrid) -> np.ndarray:
    """Boolean mask (ny, nx): pixel centres inside an odd number of the polygons (each an (n, 2) array of x, y).

    Scanline: every edge toggles, on each pixel row its y-span crosses, all pixels right of the crossing; a
    cumulative sum along the row then gives the crossing parity. Half-open spans (y1 <= y < y2) count a vertex
    on a row once, so touching vertices and horizontal edges need no special case."""
    toggles = np.zeros((grid.ny, grid.nx + 1), dtype=np.int32)
    for poly in polygons:
        if len(poly) < 3:
            continue
        a, b = poly, np.roll(poly, -1, axis=0)
        ylo, yhi = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
        # rows j whose centre y_j = y0 + (j + 0.5) * step lies in [ylo, yhi)
        j0 = np.clip(np.ceil((ylo - grid.y0) / grid.step - 0.5), 0, grid.ny).astype(np.int64)
        j1 = np.clip(np.ceil((yhi - grid.y0) / grid.step - 0.5), 0, grid.ny).astype(np.int64)
        counts = j1 - j0
        keep = counts > 0
        if not keep.any():
            continue
        a, b, j0, counts = a[keep], b[keep], j0[keep], counts[keep]
        edge = np.repeat(np.arange(len(counts)), counts)
        rows = j0[edge] + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
        y = grid.y0 + (rows + 0.5) * grid.step
        ax, ay, bx, by = a[edge, 0], a[edge, 1], b[edge, 0], b[edge, 1]
        x = ax + (y - ay) * (bx - ax) / (by - ay)
        # pixels with centre x_i > x are right of the crossing: i >= ceil((x - x0) / step - 0.5)
        cols = np.clip(np.ceil((x - grid.x0) / grid.step - 0.5), 0, grid.nx).astype(np.int64)
        np.add.at(toggles, (rows, cols), 1)
    return (np.cumsum(toggles[:, :-1], axis=1) & 1).astype(bool)
