"""The masks as a binary DICOM Segmentation (SEG), one segment per ROI group, written by highdicom.

Why highdicom: SEG's functional groups, dimension index and segment identification are easy to get subtly wrong,
and highdicom's writer is the reference implementation most viewers were tested against. What it needs and the
RTSTRUCT does not say is chosen here: the segmented property from the RT ROI Interpreted Type (SNOMED CT codes of
CID 7150/7151 where one fits, "Physical object" otherwise) and the algorithm type from ROIGenerationAlgorithm.
"""

from __future__ import annotations

from typing import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from .uids import DERIVED_SERIES_NUMBER_OFFSET, derived_uid
from .rois import Roi, RoiGroup

SCT = "SCT"
_ANATOMY = hd.sr.CodedConcept("91723000", SCT, "Anatomical Structure")
_ABNORMAL = hd.sr.CodedConcept("49755003", SCT, "Morphologically Altered Structure")
_OBJECT = hd.sr.CodedConcept("260787004", SCT, "Physical object")
# RT ROI Interpreted Type → (category, type)
PROPERTY = {
    "ORGAN": (_ANATOMY, hd.sr.CodedConcept("113343008", SCT, "Organ")),
    "AVOIDANCE": (_ANATOMY, hd.sr.CodedConcept("113343008", SCT, "Organ")),
    "EXTERNAL": (_ANATOMY, hd.sr.CodedConcept("38266002", SCT, "Entire body")),
    "PTV": (_ABNORMAL, hd.sr.CodedConcept("228793007", SCT, "Planning Target Volume")),
    "CTV": (_ABNORMAL, hd.sr.CodedConcept("228792002", SCT, "Clinical Target Volume")),
    "GTV": (_ABNORMAL, hd.sr.CodedConcept("228791009", SCT, "Gross Tumor Volume")),
}
ALGORITHM = hd.AlgorithmIdentificationSequence(name="rtstation contour rasterizer", version="1",
                                               family=codes.cid7162.ArtificialIntelligence)
SOFTWARE = "rtstation derive 1"


class SegError(ValueError):
    """A SEG that cannot be made from these inputs (highdicom's reason is kept)."""


def _description(number: int, group: RoiGroup) -> hd.seg.SegmentDescription:
    kinds = {r.interpreted_type for r in group.rois}
    category, prop = PROPERTY.get(kinds.pop() if len(kinds) == 1 else "", (_OBJECT, _OBJECT))
    manual = all(r.generation in ("MANUAL", "") for r in group.rois)
    first: Roi = group.rois[0]
    color = hd.color.CIELabColor.from_rgb(*first.color) if first.color else None
    return hd.seg.SegmentDescription(
        segment_number=number, segment_label=group.label[:64], segmented_property_category=category,
        segmented_property_type=prop, algorithm_type="MANUAL" if manual else "SEMIAUTOMATIC",
        algorithm_identification=None if manual else ALGORITHM, display_color=color)


def segmentation(images: Sequence[Dataset], masks: Sequence[np.ndarray], groups: Sequence[RoiGroup],
                 structure_set_uid: str, description: str = "") -> Dataset:
    """A binary SEG of ``masks`` (one n_images × rows × cols per group, images in the given order) on ``images``.
    Empty frames are left out (highdicom's default), so a SEG stays small for a small target on a long series."""
    if not images or not groups or len(masks) != len(groups):
        raise SegError(f"{len(groups)} ROI groups, {len(masks)} masks and {len(images)} images: nothing to segment")
    empty = [g.label for g, m in zip(groups, masks) if not m.any()]
    if empty:
        raise SegError(f"ROI {', '.join(empty)} covers no pixel of the images; leave it out of the selection")
    source_series = str(images[0].SeriesInstanceUID)
    # the images are part of what the SEG is: one more slice later is another SEG (a new UID), never the same UID
    # with other content (a peer that has the first would keep it)
    series_uid = derived_uid("seg", source_series, structure_set_uid,
                             *("|".join(str(r.number) for r in g.rois) for g in groups),
                             *sorted(str(ds.SOPInstanceUID) for ds in images))
    stacked = np.stack(masks, axis=-1).astype(np.uint8)  # frames × rows × cols × segments
    try:
        seg = hd.seg.Segmentation(
            source_images=list(images), pixel_array=stacked, segmentation_type="BINARY",
            segment_descriptions=[_description(k, g) for k, g in enumerate(groups, start=1)],
            series_instance_uid=series_uid, series_number=int(images[0].get("SeriesNumber", 0) or 0)
            + DERIVED_SERIES_NUMBER_OFFSET + 1, sop_instance_uid=derived_uid(series_uid, "1"), instance_number=1,
            manufacturer="rtstation", manufacturer_model_name="rtstation", software_versions=SOFTWARE,
            device_serial_number="0", content_label="CONTOURS",
            content_description=(description or "RTSTRUCT contours")[:64])
    except (ValueError, TypeError, AttributeError) as exc:
        raise SegError(f"highdicom refused the segmentation: {exc}") from exc
    seg.SeriesDescription = (description or f"{images[0].get('SeriesDescription', '')} SEG").strip()[:64]
    return seg
