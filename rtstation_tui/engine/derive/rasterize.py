"""Contours → boolean masks on an image's own pixel grid.

Why it is written out here rather than taken from a library: the traps are all geometric (oblique orientation, holes,
contours referencing images by UIDs that are not the images' own), and a library that gets one of them wrong gives a
plausible mask that is silently wrong.

Rules:
- a contour belongs to the image whose plane is nearest to its points (distance along the image normal), if within
  half the slice spacing; ContourImageSequence UIDs are not trusted (the nelms phantom's do not match its CT);
- all CLOSED_PLANAR polygons of one ROI on one plane are combined by the even-odd rule, so a contour inside another
  is a hole, one inside that an island (the same as XOR of the polygons);
- a pixel is inside when its centre is; a centre exactly on an edge is decided by the half-open rule of scanline
  rasterizers (left and top edges in, right and bottom out), so two ROIs sharing an edge never both claim a pixel
  and their union has no gap.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Sequence

import numpy as np
from pydicom.dataset import Dataset

log = logging.getLogger(__name__)

CLOSED_TYPES = {"CLOSED_PLANAR", "CLOSED_PLANAR_XOR"}
# pixel-coordinate snapping: a centre within this of an edge counts as on it (floating error of the projection)
_SNAP = 1e-6


class GeometryError(ValueError):
    """An image without the geometry a rasterizer needs (position, orientation, spacing)."""


@dataclass(frozen=True)
class ImageGrid:
    """The pixel grid of one image in patient coordinates (mm). ``row_dir`` is the direction of increasing column
    index (IOP values 1-3), ``col_dir`` that of increasing row index (IOP 4-6); PixelSpacing is (between rows,
    between columns)."""

    rows: int
    cols: int
    origin: tuple[float, float, float]
    row_dir: tuple[float, float, float]
    col_dir: tuple[float, float, float]
    spacing: tuple[float, float]

    @classmethod
    def of(cls, ds: Dataset) -> "ImageGrid":
        missing = [k for k in ("Rows", "Columns", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")
                   if k not in ds or ds[k].value in (None, "")]
        if missing:
            raise GeometryError(f"image {ds.get('SOPInstanceUID', '?')} has no {', '.join(missing)}")
        iop = [float(v) for v in ds.ImageOrientationPatient]
        ipp = [float(v) for v in ds.ImagePositionPatient]
        ps = [float(v) for v in ds.PixelSpacing]
        if len(iop) != 6 or len(ipp) != 3 or len(ps) != 2 or min(ps) <= 0:
            raise GeometryError(f"image {ds.get('SOPInstanceUID', '?')}: ImagePositionPatient {ipp}, "
                                f"ImageOrientationPatient {iop}, PixelSpacing {ps} are not a valid geometry")
        return cls(int(ds.Rows), int(ds.Columns), (ipp[0], ipp[1], ipp[2]), (iop[0], iop[1], iop[2]),
                   (iop[3], iop[4], iop[5]), (ps[0], ps[1]))

    @cached_property
    def normal(self) -> np.ndarray:
        n = np.cross(np.asarray(self.row_dir), np.asarray(self.col_dir))
        return n / np.linalg.norm(n)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Patient points (N×3, mm) → (column, row) in pixel units (pixel centres at integers) and the signed
        distance from the image plane (mm)."""
        rel = points - np.asarray(self.origin)
        col = rel @ np.asarray(self.row_dir) / self.spacing[1]
        row = rel @ np.asarray(self.col_dir) / self.spacing[0]
        return col, row, rel @ self.normal

    def plane_distance(self, point: np.ndarray) -> float:
        return float((point - np.asarray(self.origin)) @ self.normal)


def fill_even_odd(polygons: Iterable[np.ndarray], rows: int, cols: int) -> np.ndarray:
    """Rasterize polygons given in pixel coordinates (each K×2: column, row) by the even-odd rule over all their
    edges together; a centre is inside when a ray to the right from it crosses an odd number of edges."""
    edges = [np.stack([p, np.roll(p, -1, axis=0)], axis=1) for p in polygons if len(p) >= 3]
    mask = np.zeros((rows, cols), dtype=bool)
    if not edges:
        return mask
    e = np.concatenate(edges)  # E×2(start,end)×2(col,row)
    x0, y0, x1, y1 = e[:, 0, 0], e[:, 0, 1], e[:, 1, 0], e[:, 1, 1]
    lo, hi = np.minimum(y0, y1), np.maximum(y0, y1)
    first = max(int(np.ceil(lo.min() - _SNAP)), 0)
    last = min(int(np.floor(hi.max() + _SNAP)), rows - 1)
    if last < first:
        return mask
    ys = np.arange(first, last + 1, dtype=float)[:, None]  # R×1
    # half-open in y: an edge covers lo <= y < hi, so a vertex on the scanline is counted once, horizontals never
    crosses = (ys >= lo - _SNAP) & (ys < hi - _SNAP)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (ys - y0) / (y1 - y0)
    x = x0 + t * (x1 - x0)
    r_idx, e_idx = np.nonzero(crosses)
    # the first pixel centre at or right of the crossing: a centre on a left edge is in, on a right edge out
    start = np.clip(np.ceil(x[r_idx, e_idx] - _SNAP), 0, cols).astype(np.intp)
    toggles = np.zeros((len(ys), cols + 1), dtype=np.int32)
    np.add.at(toggles, (r_idx, start), 1)
    mask[first:last + 1] = (np.cumsum(toggles[:, :cols], axis=1) & 1).astype(bool)
    return mask


@dataclass(frozen=True)
class Contour:
    """One closed planar contour: its points (N×3 mm)."""

    points: np.ndarray


def closed_contours(roi_contour: Dataset) -> list[Contour]:
    """The closed planar contours of one ROIContourSequence item (points, open contours and empty ones skipped)."""
    out: list[Contour] = []
    for item in roi_contour.get("ContourSequence", []) or []:
        kind = str(item.get("ContourGeometricType", "")).upper()
        data = item.get("ContourData")
        if kind not in CLOSED_TYPES or not data or len(data) < 9:
            continue
        out.append(Contour(np.asarray([float(v) for v in data], dtype=float).reshape(-1, 3)))
    return out


def slice_tolerance(grids: Sequence[ImageGrid]) -> float:
    """Half the distance between neighbouring image planes (a contour farther than that from every plane belongs to
    none); one image: 0.5 mm."""
    if len(grids) < 2:
        return 0.5
    d = sorted(g.plane_distance(np.zeros(3)) for g in grids)
    steps = [b - a for a, b in zip(d, d[1:]) if b - a > 1e-6]
    return 0.5 * min(steps) if steps else 0.5


def plane_distances(points: np.ndarray, grids: Sequence[ImageGrid]) -> np.ndarray:
    """|distance| of each point (P×3) from each image plane (K grids): P×K, in one vectorized step (a series of
    150 images × 10 ROIs × 150 contours is 225 000 pairs)."""
    origins = np.asarray([g.origin for g in grids], dtype=float)
    normals = np.stack([g.normal for g in grids])
    offsets = np.einsum("kj,kj->k", origins, normals)
    return np.abs(points @ normals.T - offsets[None, :])


def rasterize_roi(contours: Sequence[Contour], grids: Sequence[ImageGrid]) -> np.ndarray:
    """A mask per image (n_images × rows × cols, bool) for one ROI's contours."""
    if not grids:
        return np.zeros((0, 0, 0), dtype=bool)
    rows, cols = grids[0].rows, grids[0].cols
    if any((g.rows, g.cols) != (rows, cols) for g in grids):
        raise GeometryError("the images of the series do not all have the same Rows × Columns")
    masks = np.zeros((len(grids), rows, cols), dtype=bool)
    if not contours:
        return masks
    tol = slice_tolerance(grids)
    per_image: dict[int, list[np.ndarray]] = {}
    dists = plane_distances(np.stack([c.points.mean(axis=0) for c in contours]), grids)
    for c, row_of_dists in zip(contours, dists):
        best = int(np.argmin(row_of_dists))
        if row_of_dists[best] > tol:
            log.debug("contour at %s mm from the nearest image plane: on no image", round(row_of_dists[best], 2))
            continue
        col, row, _ = grids[best].project(c.points)
        per_image.setdefault(best, []).append(np.stack([col, row], axis=1))
    for i, polys in per_image.items():
        g = grids[i]
        masks[i] = fill_even_odd(polys, g.rows, g.cols)
    return masks


def polygon_area(points2d: np.ndarray) -> float:
    """Shoelace area (absolute) of one polygon given as K×2."""
    x, y = points2d[:, 0], points2d[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
