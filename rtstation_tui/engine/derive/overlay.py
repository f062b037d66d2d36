"""The overlay series: a copy of every image of the referenced series with the masks as 60xx overlay planes.

Why overlays: viewers and systems that cannot show RTSTRUCT still show overlay planes, and a copy of *every* image
(those without contours too) lets the user scroll the whole volume. The pixel data element is carried over as the
same bytes in the same transfer syntax (never decoded or re-encoded). UIDs are derived from the source UIDs and
the ROI groups, so deriving twice gives the same objects (the station stores them once) instead of a new series.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import pack_bits
from pydicom.sequence import Sequence as DSequence

from .rois import MAX_OVERLAY_GROUPS, RoiGroup
from .uids import DERIVED_SERIES_NUMBER_OFFSET, derived_uid

FIRST_GROUP = 0x6000


class OverlayError(ValueError):
    """Overlays that cannot be written: no free overlay group left, masks not matching the images."""


@dataclass(frozen=True)
class OverlayOptions:
    """``description`` is a template for SeriesDescription; ``{original}`` is the source's, ``{rois}`` the ROI
    names, ``{structure_set}`` the structure set label."""

    description: str = "{original} + contours"
    structure_set_label: str = ""


def _free_groups(ds: Dataset, needed: int) -> list[int]:
    used = {tag.group for tag in ds.keys() if 0x6000 <= tag.group <= 0x601E and tag.group % 2 == 0}
    free = [g for g in range(FIRST_GROUP, FIRST_GROUP + 2 * MAX_OVERLAY_GROUPS, 2) if g not in used]
    if len(free) < needed:
        raise OverlayError(f"image {ds.SOPInstanceUID} already has {len(used)} overlay planes; {needed} more do "
                           f"not fit in the 16 groups 6000-601E (merge the ROIs into one group)")
    return free[:needed]


def add_overlay(ds: Dataset, group: int, mask: np.ndarray, description: str, label: str) -> None:
    """One overlay plane (PS3.3 C.9.2) of ``mask`` (rows × cols, bool) in ``group``, anchored at the first pixel."""
    rows, cols = mask.shape
    ds.add_new((group, 0x0010), "US", rows)
    ds.add_new((group, 0x0011), "US", cols)
    ds.add_new((group, 0x0022), "LO", description[:64])
    ds.add_new((group, 0x0040), "CS", "G")
    ds.add_new((group, 0x0050), "SS", [1, 1])  # OverlayOrigin is 1-based: row 1, column 1
    ds.add_new((group, 0x0100), "US", 1)
    ds.add_new((group, 0x0102), "US", 0)
    ds.add_new((group, 0x1500), "LO", label[:64])
    ds.add_new((group, 0x3000), "OW", pack_bits(mask.astype(np.uint8).ravel(), pad=True))


def _describe(groups: Sequence[RoiGroup]) -> str:
    return ", ".join(r.name for g in groups for r in g.rois)


def overlay_image(source: Dataset, masks: Sequence[np.ndarray], groups: Sequence[RoiGroup], series_uid: str,
                  series_description: str, derivation: str) -> Dataset:
    """A copy of ``source`` with one overlay plane per group, new SOP Instance UID in ``series_uid``."""
    ds = copy.deepcopy(source)
    for key in ("SeriesInstanceUID", "SOPInstanceUID"):
        if key not in source:
            raise OverlayError(f"source image has no {key}")
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = derived_uid(series_uid, str(source.SOPInstanceUID))
    ds.SeriesDescription = series_description[:64]
    ds.SeriesNumber = int(source.get("SeriesNumber", 0) or 0) + DERIVED_SERIES_NUMBER_OFFSET
    image_type = list(source.get("ImageType", []) or ["ORIGINAL", "PRIMARY"])
    image_type[0:2] = ["DERIVED", "SECONDARY"]
    ds.ImageType = image_type
    ds.DerivationDescription = derivation[:1024]
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = source.SOPClassUID, source.SOPInstanceUID
    purpose = Dataset()
    purpose.CodeValue, purpose.CodingSchemeDesignator = "121322", "DCM"
    purpose.CodeMeaning = "Source image for image processing operation"
    ref.PurposeOfReferenceCodeSequence = DSequence([purpose])
    ds.SourceImageSequence = DSequence([ref])
    for group, mask, g in zip(_free_groups(ds, len(groups)), masks, groups):
        add_overlay(ds, group, mask, ", ".join(r.name for r in g.rois), g.label)
    meta = FileMetaDataset(copy.deepcopy(getattr(source, "file_meta", None) or FileMetaDataset()))
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.file_meta = meta
    return ds


def series_description(template: str, original: str, rois: str, structure_set: str) -> str:
    """The template filled in; an unknown ``{name}`` is an error naming the allowed ones."""
    try:
        return template.format(original=original, rois=rois, structure_set=structure_set)
    except (KeyError, IndexError, ValueError) as exc:
        raise OverlayError(f"series description template {template!r}: {exc!r} is not allowed; use {{original}}, "
                           f"{{rois}}, {{structure_set}}") from None


def overlay_series(images: Sequence[Dataset], masks: Sequence[np.ndarray], groups: Sequence[RoiGroup],
                   structure_set_uid: str, options: OverlayOptions = OverlayOptions()) -> list[Dataset]:
    """The derived series: image ``i`` gets ``masks[k][i]`` for each group ``k``. Images and masks in the same
    order (see ``masks.sort_images``)."""
    if not images:
        raise OverlayError("no images to copy")
    if len(groups) != len(masks) or any(m.shape[0] != len(images) for m in masks):
        raise OverlayError(f"{len(masks)} masks for {len(groups)} ROI groups and {len(images)} images")
    source_series = str(images[0].SeriesInstanceUID)
    series_uid = derived_uid("overlay", source_series, structure_set_uid,
                             *("|".join(str(r.number) for r in g.rois) for g in groups))
    rois = _describe(groups)
    description = series_description(options.description, str(images[0].get("SeriesDescription", "") or ""),
                                     rois, options.structure_set_label)
    derivation = (f"Contours of RTSTRUCT {options.structure_set_label or structure_set_uid} ({rois}) as overlay "
                  f"planes by rtstation; pixel data unchanged")
    return [overlay_image(src, [m[i] for m in masks], groups, series_uid, description, derivation)
            for i, src in enumerate(images)]
