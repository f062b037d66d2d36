"""``overlay[:PATTERN,...]``: each image series a structure set of the bundle is drawn on goes out as its overlay
copy (the contours as 60xx overlay planes, pixel data untouched); everything else goes out as stored.

Why one object for one object: the sender keeps one queue row per stored instance, so a transform answers each
input with exactly one output. A viewer that cannot show RTSTRUCT then scrolls the whole volume with the contours
burnt into overlay planes, while the structure set, plan and dose still reach it unchanged. The overlay copies get
new Series/SOP Instance UIDs derived from the originals (``derive.uids``), so a retry sends the very same objects.
"""

from __future__ import annotations

import copy
from typing import Sequence

from pydicom.dataset import Dataset

from ..derive.contours import ContourRequest, overlay_for
from ..derive.rasterize import GeometryError
from ..derive.overlay import OverlayError
from ..derive.rois import RoiSelection, SelectionError
from ..derive.sources import referenced_series
from .base import TransformError

RTSTRUCT = "1.2.840.10008.5.1.4.1.1.481.3"


class Overlay:
    """ROIs whose names match any of ``include`` (case-insensitive globs or ``re:``), all when empty."""

    changes_identity = False  # the overlay copies are new objects; nothing else is renamed or remapped

    def __init__(self, include: tuple[str, ...] = ()) -> None:
        self.include = include
        self.name = "overlay" + (":" + ",".join(include) if include else "")

    @property
    def config(self) -> tuple[str, ...]:
        return self.include

    def describe(self) -> str:
        rois = ", ".join(self.include) if self.include else "all ROIs"
        return f"image series with {rois} of their structure set as overlay planes"

    def apply(self, objects: Sequence[Dataset]) -> list[Dataset]:
        derived: dict[str, Dataset] = {}
        for rs, images in contour_targets(objects):
            images = [o for o in images if str(o.SOPInstanceUID) not in derived]  # drawn once, by the first
            if images:
                derived.update(self._series(rs, images))
        if not derived:
            raise TransformError(f"{self.name}: the bundle has no structure set with its images to draw on")
        return [derived.get(str(o.SOPInstanceUID)) or copy.deepcopy(o) for o in objects]

    def _series(self, rs: Dataset, images: list[Dataset]) -> dict[str, Dataset]:
        """Source SOP Instance UID → its overlay copy."""
        try:
            made = overlay_for(rs, images, request=ContourRequest(RoiSelection(include=self.include))).datasets
        except (SelectionError, GeometryError, OverlayError, ValueError) as exc:
            raise TransformError(f"{self.name}: structure set {rs.SOPInstanceUID}: {exc}") from None
        return {str(d.SourceImageSequence[0].ReferencedSOPInstanceUID): d for d in made}


def contour_targets(objects: Sequence[Dataset]) -> list[tuple[Dataset, list[Dataset]]]:
    """(structure set, the images of one series it is drawn on) for each such pair among ``objects``."""
    out = []
    for rs in (o for o in objects if str(o.get("SOPClassUID", "")) == RTSTRUCT):
        for series in referenced_series(rs):
            images = [o for o in objects if str(o.get("SeriesInstanceUID", "")) == series and "PixelData" in o]
            if images:
                out.append((rs, images))
    return out


def build(arg: str) -> Overlay:
    return Overlay(tuple(p.strip() for p in arg.split(",") if p.strip()))
