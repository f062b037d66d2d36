"""Structure set + image series → overlay series or SEG, in one call each: what the CLI runs and what a rule's
transform ([ACTIONS]) can wrap (datasets in, new datasets out; nothing read from or written to disk).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from pydicom.dataset import Dataset

from .masks import group_masks, sort_images
from .overlay import OverlayOptions, overlay_series, series_description
from .preview import preview_png
from .rois import MAX_OVERLAY_GROUPS, Roi, RoiGroup, RoiSelection, group_rois, list_rois, select_rois
from .seg import segmentation


@dataclass(frozen=True)
class ContourRequest:
    """What to draw and how: ``merge`` all selected ROIs into one mask, or one mask per ROI; ``description`` is the
    SeriesDescription template ({original}, {rois}, {structure_set})."""

    selection: RoiSelection = field(default_factory=RoiSelection)
    merge: bool = False
    description: str = ""
    previews: bool = False  # also PNGs of the images with contours (QA)


@dataclass(frozen=True)
class Derived:
    """The new objects and which ROIs they show."""

    datasets: tuple[Dataset, ...]
    rois: tuple[Roi, ...]
    previews: tuple[tuple[str, bytes], ...] = ()  # (file name, PNG) per source image that has a contour


def _prepare(structure_set: Dataset, images: Sequence[Dataset], request: ContourRequest, limit: int):  # type: ignore[no-untyped-def]
    rois = select_rois(list_rois(structure_set), request.selection)
    groups = group_rois(rois, request.merge, limit=limit)
    ordered = sort_images(images)
    return rois, groups, ordered, group_masks(structure_set, ordered, groups)


def _previews(request: ContourRequest, images: Sequence[Dataset], groups: Sequence[RoiGroup],
              masks: Sequence[np.ndarray]) -> tuple[tuple[str, bytes], ...]:
    if not request.previews:
        return ()
    colors = [g.rois[0].color for g in groups]
    out = []
    for i, ds in enumerate(images):
        planes = [m[i] for m in masks]
        if any(p.any() for p in planes):
            out.append((f"{i + 1:04d}_{ds.SOPInstanceUID}.png", preview_png(ds, planes, colors)))
    return tuple(out)


def overlay_for(structure_set: Dataset, images: Sequence[Dataset], request: ContourRequest = ContourRequest()
                ) -> Derived:
    """The overlay series of ``images`` (one series) with the selected ROIs of ``structure_set``."""
    rois, groups, ordered, masks = _prepare(structure_set, images, request, MAX_OVERLAY_GROUPS)
    options = OverlayOptions(request.description or OverlayOptions.description,
                             str(structure_set.get("StructureSetLabel", "") or ""))
    return Derived(tuple(overlay_series(ordered, masks, groups, str(structure_set.SOPInstanceUID), options)),
                   tuple(rois), _previews(request, ordered, groups, masks))


def seg_for(structure_set: Dataset, images: Sequence[Dataset], request: ContourRequest = ContourRequest()
            ) -> Derived:
    """A SEG on ``images`` with one segment per selected ROI (or one for all, ``merge``)."""
    rois, groups, ordered, masks = _prepare(structure_set, images, request, limit=10_000)
    text = series_description(request.description or "{original} SEG",
                              str(ordered[0].get("SeriesDescription", "") or ""), ", ".join(r.name for r in rois),
                              str(structure_set.get("StructureSetLabel", "") or ""))
    return Derived((segmentation(ordered, masks, groups, str(structure_set.SOPInstanceUID), text),), tuple(rois),
                   _previews(request, ordered, groups, masks))
