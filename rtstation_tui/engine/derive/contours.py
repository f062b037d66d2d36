"""Structure set + image series → overlay series or SEG, in one call each: what the CLI runs and what a rule's
transform ([ACTIONS]) can wrap (datasets in, new datasets out; nothing read from or written to disk).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from pydicom.dataset import Dataset

from .masks import group_masks, sort_images
from .overlay import OverlayOptions, overlay_series, series_description
from .rois import MAX_OVERLAY_GROUPS, Roi, RoiSelection, group_rois, list_rois, select_rois
from .seg import segmentation


@dataclass(frozen=True)
class ContourRequest:
    """What to draw and how: ``merge`` all selected ROIs into one mask, or one mask per ROI; ``description`` is the
    SeriesDescription template ({original}, {rois}, {structure_set})."""

    selection: RoiSelection = field(default_factory=RoiSelection)
    merge: bool = False
    description: str = ""


@dataclass(frozen=True)
class Derived:
    """The new objects and which ROIs they show."""

    datasets: tuple[Dataset, ...]
    rois: tuple[Roi, ...]


def _prepare(structure_set: Dataset, images: Sequence[Dataset], request: ContourRequest, limit: int):  # type: ignore[no-untyped-def]
    rois = select_rois(list_rois(structure_set), request.selection)
    groups = group_rois(rois, request.merge, limit=limit)
    ordered = sort_images(images)
    return rois, groups, ordered, group_masks(structure_set, ordered, groups)


def overlay_for(structure_set: Dataset, images: Sequence[Dataset], request: ContourRequest = ContourRequest()
                ) -> Derived:
    """The overlay series of ``images`` (one series) with the selected ROIs of ``structure_set``."""
    rois, groups, ordered, masks = _prepare(structure_set, images, request, MAX_OVERLAY_GROUPS)
    options = OverlayOptions(request.description or OverlayOptions.description,
                             str(structure_set.get("StructureSetLabel", "") or ""))
    return Derived(tuple(overlay_series(ordered, masks, groups, str(structure_set.SOPInstanceUID), options)),
                   tuple(rois))


def seg_for(structure_set: Dataset, images: Sequence[Dataset], request: ContourRequest = ContourRequest()
            ) -> Derived:
    """A SEG on ``images`` with one segment per selected ROI (or one for all, ``merge``)."""
    rois, groups, ordered, masks = _prepare(structure_set, images, request, limit=10_000)
    text = series_description(request.description or "{original} SEG",
                              str(ordered[0].get("SeriesDescription", "") or ""), ", ".join(r.name for r in rois),
                              str(structure_set.get("StructureSetLabel", "") or ""))
    return Derived((segmentation(ordered, masks, groups, str(structure_set.SOPInstanceUID), text),), tuple(rois))
