"""The ROIs of an RTSTRUCT as stacks of axial contour planes, and their volumes.

Why planes are slabs: a contour drawn on a CT slice stands for the tissue of that slice, so each plane is a slab
reaching half way to the neighbouring slices (the convention of planning systems, and the one the analytical
values of the Nelms et al. 2015 phantom assume: their Dmin/Dmax in a superior-inferior gradient reach half a slice
beyond the outermost contours). The slices are the contour planes of the whole structure set (no CT needed), and
``thickness`` is their most common spacing; so a ROI with a gap keeps its gap, and a CT whose slice spacing varies
gets each slab right.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from .raster import even_odd_mask, grid_over

Z_DECIMALS = 2  # contour planes closer than 0.01 mm are one plane


class StructureError(ValueError):
    """The RTSTRUCT cannot be used; the message names what is wrong."""


@dataclass(frozen=True)
class Plane:
    z: float
    polygons: tuple[np.ndarray, ...]  # each (n, 2): x, y in mm
    below: float = 0.0  # the slab reaches this far below z, mm (0: not known)
    above: float = 0.0  # … and this far above


@dataclass(frozen=True)
class Roi:
    number: int
    name: str
    kind: str  # RTROIInterpretedType
    contours: int
    planes: tuple[Plane, ...]  # closed planar contours only, by increasing z
    problem: str = ""  # why the ROI has no planes although it has contours (e.g. not axial)


@dataclass(frozen=True)
class StructureSet:
    sop_uid: str
    label: str
    frame_of_ref: str
    rois: tuple[Roi, ...]
    thickness: float  # mm, every plane's slab (0: one plane only, none known)

    def roi(self, name: str) -> Roi:
        for r in self.rois:
            if r.name == name:
                return r
        raise StructureError(f"no ROI named {name!r}; the structure set has {', '.join(r.name for r in self.rois)}")


def read_structures(source: str | Path | Dataset) -> StructureSet:
    ds = source if isinstance(source, Dataset) else pydicom.dcmread(source, force=True)
    if "ROIContourSequence" not in ds and "StructureSetROISequence" not in ds:
        raise StructureError("not an RTSTRUCT: no StructureSetROISequence or ROIContourSequence")
    names = {int(r.ROINumber): str(r.get("ROIName", "")) for r in ds.get("StructureSetROISequence", [])
             if r.get("ROINumber") is not None}
    kinds = {int(o.ReferencedROINumber): str(o.get("RTROIInterpretedType", "") or "")
             for o in ds.get("RTROIObservationsSequence", []) if o.get("ReferencedROINumber") is not None}
    rois = []
    for rc in ds.get("ROIContourSequence", []):
        number = int(rc.get("ReferencedROINumber", 0) or 0)
        contours = list(rc.get("ContourSequence", []) or [])
        name = names.get(number, f"ROI {number}")
        try:
            rois.append(Roi(number, name, kinds.get(number, ""), len(contours), _planes(contours)))
        except StructureError as exc:  # this ROI only: the others still get their DVHs
            rois.append(Roi(number, name, kinds.get(number, ""), len(contours), (), f"ROI {name!r}: {exc}"))
    for number, name in names.items():  # ROIs declared without any contour
        if all(r.number != number for r in rois):
            rois.append(Roi(number, name, kinds.get(number, ""), 0, ()))
    rois.sort(key=lambda r: r.number)
    thickness = slice_thickness(rois)
    return StructureSet(str(ds.get("SOPInstanceUID", "")), str(ds.get("StructureSetLabel", "")),
                        _frame_of_ref(ds), tuple(with_slabs(rois, thickness)), thickness)


def _planes(contours: list[Dataset]) -> tuple[Plane, ...]:
    by_z: dict[float, list[np.ndarray]] = defaultdict(list)
    for c in contours:
        if str(c.get("ContourGeometricType", "CLOSED_PLANAR")).upper() != "CLOSED_PLANAR":
            continue  # points and open lines enclose no volume
        pts = _points(c)
        if pts is None:
            continue
        if np.ptp(pts[:, 2]) > 0.5:
            raise StructureError(f"contour {c.get('ContourNumber', '?')} is not axial (z spans "
                                 f"{pts[:, 2].min():.2f} to {pts[:, 2].max():.2f} mm); only axial contours are "
                                 f"supported")
        by_z[round(float(pts[:, 2].mean()), Z_DECIMALS)].append(pts[:, :2])
    return tuple(Plane(z, tuple(by_z[z])) for z in sorted(by_z))


def _points(contour: Dataset) -> np.ndarray | None:
    """ContourData as (n, 3) floats. The raw DS text is parsed by NumPy in one call: pydicom's per-value DSfloat
    objects cost ~1 s for a whole-body structure set, NumPy ~0.1 s."""
    if "ContourData" not in contour:
        return None
    raw = contour.get_item("ContourData")
    value = getattr(raw, "value", None)
    if isinstance(value, (bytes, bytearray)):
        flat = np.array(bytes(value).replace(b"\\", b" ").split(), dtype=np.float64)
    else:
        flat = np.asarray([float(v) for v in contour.ContourData or []], dtype=np.float64)
    if len(flat) < 9 or len(flat) % 3:
        return None
    return flat.reshape(-1, 3)


def slice_thickness(rois: list[Roi] | tuple[Roi, ...]) -> float:
    """The most common gap between neighbouring planes of any ROI (ties: the smallest)."""
    gaps: Counter[float] = Counter()
    for r in rois:
        zs = [p.z for p in r.planes]
        gaps.update(round(b - a, Z_DECIMALS) for a, b in zip(zs, zs[1:]) if b - a > 0)
    if not gaps:
        return 0.0
    best = max(gaps.values())
    return min(g for g, n in gaps.items() if n == best)


def with_slabs(rois: list[Roi], thickness: float) -> list[Roi]:
    """Each plane's slab reaches half way to the neighbouring contour planes of the whole structure set (the CT
    slices), so slabs tile without gaps or overlaps even when the slice spacing varies (2.5 mm through the target,
    5 mm elsewhere). A gap wider than two ``thickness`` is no slice but missing contours (or two ROIs apart): there,
    and at the ends, the slab reaches ``thickness`` / 2."""
    zs = np.array(sorted({p.z for r in rois for p in r.planes}))
    if not len(zs) or thickness <= 0:
        return rois

    def half(gap: float | None) -> float:
        return gap / 2 if gap is not None and gap <= 2 * thickness + 1e-6 else thickness / 2

    out = []
    for r in rois:
        planes = []
        for p in r.planes:
            k = int(np.searchsorted(zs, p.z))
            below = half(zs[k] - zs[k - 1] if k > 0 else None)
            above = half(zs[k + 1] - zs[k] if k + 1 < len(zs) else None)
            planes.append(replace(p, below=float(below), above=float(above)))
        out.append(replace(r, planes=tuple(planes)))
    return out


def plane_slab(plane: Plane, thickness: float | None, fallback: float) -> tuple[float, float]:
    """(bottom, top) z of a plane's slab: ``thickness`` if given, else its own, else ``fallback`` thick."""
    if thickness is None and plane.below + plane.above > 0:
        return plane.z - plane.below, plane.z + plane.above
    t = thickness if thickness else fallback
    return plane.z - t / 2, plane.z + t / 2


def _frame_of_ref(ds: Dataset) -> str:
    for item in ds.get("ReferencedFrameOfReferenceSequence", []) or []:
        if item.get("FrameOfReferenceUID"):
            return str(item.FrameOfReferenceUID)
    return str(ds.get("FrameOfReferenceUID", ""))


def sampling_step(roi: Roi, ceiling: float) -> float:
    """In-plane pixel size for a ROI: at most ``ceiling``, and fine enough that the ROI's largest plane spans ~100
    pixels across, so small targets keep their accuracy (``dvh.py`` coarsens it again for huge ROIs)."""
    areas = [sum(_bbox_area(p) for p in plane.polygons) for plane in roi.planes]
    if not areas or max(areas) <= 0:
        return ceiling
    return float(max(min(ceiling, np.sqrt(max(areas)) / 100), 0.02))


def pixel_estimate(roi: Roi, step: float) -> float:
    """Upper bound of the pixels a ROI's planes rasterize to at ``step`` (their bounding boxes)."""
    return sum(_bbox_area(p) for plane in roi.planes for p in plane.polygons) / (step * step)


def _bbox_area(poly: np.ndarray) -> float:
    return float(np.prod(np.ptp(poly, axis=0)))


def roi_volume_cc(roi: Roi, thickness: float | None = None, step: float | None = None) -> float:
    """Volume of the stacked slabs (``thickness``: None for each plane's own), from the same even-odd
    rasterization the DVH samples, so the two agree."""
    step = step or sampling_step(roi, 1.0)
    total = 0.0
    for plane in roi.planes:
        lo, hi = plane_slab(plane, thickness, 0.0)
        polys = list(plane.polygons)
        total += int(even_odd_mask(polys, grid_over(polys, step)).sum()) * (hi - lo)
    return total * step * step / 1000.0
