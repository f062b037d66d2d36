"""Transforms that add or split objects ([DERIVE] on the way out): ``seg[:ROI,...]`` and ``classic``.

``seg``: everything goes out as stored, *plus* a DICOM Segmentation of the structure set's ROIs on each image series
it is drawn on. The RTSTRUCT is still sent: the SEG is for systems that read SEG and not RTSTRUCT (AI tools,
research PACS, viewers), and a planning system on the same node still gets the structure set it expects.

``classic``: each Enhanced / Legacy Converted Enhanced MR, CT or PET image is *replaced* by its classic single-frame
images (a new series, UIDs derived from the source); every other object goes out as it is. References to the
Enhanced object in other objects of the bundle (a structure set drawn on it) are left as they are.

Why ``derive`` and not only ``apply``: a send job keeps one queue row per object the peer acknowledges; it must
know which output stands for which stored instance and which are new (``transforms.base.Deriving``). Derived UIDs
come from the sources (``derive.uids``), so every attempt makes the very same objects and a retry sends only what
the peer did not acknowledge.
"""

from __future__ import annotations

import copy
import io
from typing import Sequence

import pydicom
from pydicom.dataset import Dataset

from ..derive.contours import ContourRequest, seg_for
from ..derive.enhanced import CLASSIC_OF, EnhancedError, split_enhanced
from ..derive.overlay import OverlayError
from ..derive.rasterize import GeometryError
from ..derive.rois import RoiSelection, SelectionError
from ..derive.seg import SegError
from .base import TransformError
from .overlay import contour_targets


class Seg:
    """One SEG per (structure set, image series) of the objects; ROIs whose names match ``include`` (all when
    empty), one segment per ROI."""

    changes_identity = False  # the SEG is a new object; nothing sent is renamed

    def __init__(self, include: tuple[str, ...] = ()) -> None:
        self.include = include
        self.name = "seg" + (":" + ",".join(include) if include else "")

    @property
    def config(self) -> tuple[str, ...]:
        return self.include

    def describe(self) -> str:
        rois = ", ".join(self.include) if self.include else "all ROIs"
        return f"everything as stored, plus a SEG of {rois} of each structure set on its image series"

    def derive(self, objects: Sequence[Dataset]) -> list[tuple[int | None, Dataset]]:
        made: list[tuple[int | None, Dataset]] = list(enumerate(objects))  # unchanged: see ``Classic.derive``
        targets = contour_targets(objects)
        if not targets:
            raise TransformError(f"{self.name}: no structure set with its images among the {len(objects)} objects "
                                 "to send (a SEG needs the RTSTRUCT and the image series it is drawn on)")
        request = ContourRequest(RoiSelection(include=self.include))
        for rs, images in targets:
            multi = next((ds for ds in images if int(ds.get("NumberOfFrames", 1) or 1) > 1), None)
            if multi is not None:
                raise TransformError(f"{self.name}: structure set {rs.SOPInstanceUID} is drawn on series "
                                     f"{multi.SeriesInstanceUID}, multi-frame image {multi.SOPInstanceUID}: a SEG is "
                                     "made on classic single-frame images only")
            try:
                made.extend((None, _as_read(ds)) for ds in seg_for(rs, images, request=request).datasets)
            except (SelectionError, GeometryError, OverlayError, SegError, ValueError) as exc:
                raise TransformError(f"{self.name}: structure set {rs.SOPInstanceUID} on series "
                                     f"{images[0].SeriesInstanceUID}: {exc}") from None
        return made

    def apply(self, objects: Sequence[Dataset]) -> list[Dataset]:
        return _copies(self.derive(objects), objects)


class Classic:
    """Enhanced multi-frame images split into classic ones; other objects unchanged."""

    name = "classic"
    changes_identity = False  # the classic images are new objects; what passes through keeps its UIDs
    config = None

    def describe(self) -> str:
        return "each Enhanced MR/CT/PET image as its classic single-frame images (the rest as stored)"

    def derive(self, objects: Sequence[Dataset]) -> list[tuple[int | None, Dataset]]:
        made: list[tuple[int | None, Dataset]] = []
        for k, o in enumerate(objects):
            if str(o.get("SOPClassUID", "")) not in CLASSIC_OF:
                # passed through as the very object it was given (never modified): a send job then sends the
                # stored file byte for byte instead of a rewritten copy (``outbound.outgoing``)
                made.append((k, o))
                continue
            try:
                made.extend((None, ds) for ds in split_enhanced(o))
            except EnhancedError as exc:  # never half a conversion: the job fails with the object named
                raise TransformError(f"classic: {exc}") from None
        return made

    def apply(self, objects: Sequence[Dataset]) -> list[Dataset]:
        return _copies(self.derive(objects), objects)


def _as_read(ds: Dataset) -> Dataset:
    """The object as a peer (or the next transform) reads it: highdicom keeps some values as Python objects (dates
    as ``datetime.date``) that tag-level transforms such as ``anonymize`` cannot take."""
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    buffer.seek(0)
    return pydicom.dcmread(buffer)


def _copies(made: list[tuple[int | None, Dataset]], objects: Sequence[Dataset]) -> list[Dataset]:
    """``apply``'s promise (new datasets, the given ones never shared): pass-through objects deep-copied."""
    return [copy.deepcopy(ds) if k is not None and ds is objects[k] else ds for k, ds in made]


def build_seg(arg: str) -> Seg:
    return Seg(tuple(p.strip() for p in arg.split(",") if p.strip()))
