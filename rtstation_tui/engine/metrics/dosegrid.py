"""An RTDOSE as a 3-D dose grid in Gy, with interpolation at patient coordinates.

Why our own: the DVH accuracy depends on how the dose between grid points is estimated. Grid values are the dose
at voxel centres; between them the dose is interpolated linearly in each axis (trilinear), which is exact for the
linear gradients of the analytical phantoms and what planning systems do. Points up to half a voxel outside the
outermost centres take the edge value (that half voxel belongs to the grid); points further out get no dose and
are counted as *outside the grid*.

Only axial grids are handled (frames perpendicular to the patient z axis, any in-plane rotation or flip): contours
are axial planes and every planning system we know exports axial dose. Anything else is refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset


class DoseError(ValueError):
    """The RTDOSE cannot be used for a DVH; the message names the attribute and the value."""


@dataclass(frozen=True)
class DoseGrid:
    sop_uid: str
    dose: np.ndarray  # (frames, rows, columns), Gy (or the file's unit when it is RELATIVE)
    origin: np.ndarray  # ImagePositionPatient of the first frame
    row_dir: np.ndarray  # direction of increasing column index
    col_dir: np.ndarray  # direction of increasing row index
    spacing: tuple[float, float]  # (between rows, between columns), mm
    z: np.ndarray  # patient z of every frame, increasing
    units: str
    summation: str
    dose_type: str
    frame_of_ref: str = ""

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.dose.shape  # type: ignore[return-value]

    @cached_property
    def frame_spacing(self) -> float:
        return float(np.median(np.diff(self.z))) if len(self.z) > 1 else 0.0

    def in_plane(self, x: np.ndarray, y: np.ndarray) -> InPlane:
        """Bilinear weights of points (x, y) of one axial plane, to apply to any interpolated frame."""
        dx, dy = x - self.origin[0], y - self.origin[1]
        col = (dx * self.row_dir[0] + dy * self.row_dir[1]) / self.spacing[1]
        row = (dx * self.col_dir[0] + dy * self.col_dir[1]) / self.spacing[0]
        rows, cols = self.dose.shape[1:]
        inside = (row >= -0.5) & (row <= rows - 0.5) & (col >= -0.5) & (col <= cols - 0.5)
        row, col = np.clip(row, 0, rows - 1), np.clip(col, 0, cols - 1)
        r0 = np.minimum(np.floor(row).astype(np.int64), max(rows - 2, 0))
        c0 = np.minimum(np.floor(col).astype(np.int64), max(cols - 2, 0))
        return InPlane(r0, c0, row - r0, col - c0, inside, min(rows - 1, 1), min(cols - 1, 1))

    def frame_at(self, z: float) -> np.ndarray | None:
        """The dose plane at patient ``z`` (linear between frames); None when z is outside the grid."""
        zs = self.z
        half = self.frame_spacing / 2 if len(zs) > 1 else 0.5
        if z < zs[0] - half or z > zs[-1] + half:
            return None
        if len(zs) == 1 or z <= zs[0]:
            return self.dose[0]
        if z >= zs[-1]:
            return self.dose[-1]
        k = int(np.searchsorted(zs, z) - 1)
        f = (z - zs[k]) / (zs[k + 1] - zs[k])
        return (1 - f) * self.dose[k] + f * self.dose[k + 1]


@dataclass(frozen=True)
class InPlane:
    r0: np.ndarray
    c0: np.ndarray
    fr: np.ndarray
    fc: np.ndarray
    inside: np.ndarray
    dr: int  # 1, or 0 for a grid one voxel wide in that direction
    dc: int

    def sample(self, frame: np.ndarray | None) -> np.ndarray:
        """Dose at the points on ``frame`` (bilinear); 0 outside the grid."""
        if frame is None:
            return np.zeros(len(self.r0))
        r0, c0, fr, fc = self.r0, self.c0, self.fr, self.fc
        top = frame[r0, c0] * (1 - fc) + frame[r0, c0 + self.dc] * fc
        bottom = frame[r0 + self.dr, c0] * (1 - fc) + frame[r0 + self.dr, c0 + self.dc] * fc
        return np.where(self.inside, top * (1 - fr) + bottom * fr, 0.0)


def read_dose(source: str | Path | Dataset) -> DoseGrid:
    ds = source if isinstance(source, Dataset) else pydicom.dcmread(source)
    if "PixelData" not in ds:
        raise DoseError("the RTDOSE has no PixelData (a DVH-only RTDOSE has no grid to compute from)")
    for key in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        if key not in ds:
            raise DoseError(f"the RTDOSE has no {key}")
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    if abs(normal[2]) < 0.999:
        raise DoseError(f"the dose grid is not axial (ImageOrientationPatient {list(iop)}); only axial grids are "
                        f"supported")
    scaling = float(ds.get("DoseGridScaling", 1.0) or 1.0)
    pixels = np.asarray(ds.pixel_array, dtype=np.float64) * scaling
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    pixels = pixels.reshape(frames, int(ds.Rows), int(ds.Columns))
    origin = np.array([float(v) for v in ds.ImagePositionPatient])
    offsets = _frame_offsets(ds, frames, float(origin @ normal))
    z = origin[2] + offsets * normal[2]
    if frames > 1 and not (np.all(np.diff(z) > 0) or np.all(np.diff(z) < 0)):
        raise DoseError("GridFrameOffsetVector is not monotonic: frames cannot be ordered")
    if frames > 1 and z[1] < z[0]:
        z, pixels = z[::-1], pixels[::-1]
    spacing = (float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1]))
    return DoseGrid(str(ds.SOPInstanceUID), pixels, origin, row_dir, col_dir, spacing, np.ascontiguousarray(z),
                    str(ds.get("DoseUnits", "")), str(ds.get("DoseSummationType", "")), str(ds.get("DoseType", "")),
                    str(ds.get("FrameOfReferenceUID", "")))


def _frame_offsets(ds: Dataset, frames: int, origin_w: float) -> np.ndarray:
    if frames == 1:
        return np.zeros(1)
    gfov = ds.get("GridFrameOffsetVector")
    if gfov is None or len(gfov) != frames:
        raise DoseError(f"GridFrameOffsetVector has {0 if gfov is None else len(gfov)} values for {frames} frames")
    offsets = np.array([float(v) for v in gfov])
    if offsets[0] != 0 and abs(offsets[0] - origin_w) < 1e-3:  # old "type 2" vectors: absolute positions
        offsets = offsets - origin_w
    return offsets
