"""[DERIVE] the SEG: highdicom reads back exactly the masks, one segment per ROI with its name and colour."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from derive_support import CT_IMAGE, NELMS_SPHERE, circle, image, nelms_ct, structure_set
from rtstation_tui.engine.derive.masks import group_masks, sort_images
from rtstation_tui.engine.derive.rois import group_rois, list_rois
from rtstation_tui.engine.derive.seg import SegError, segmentation


@pytest.fixture
def case():
    n = normal = np.array([0, 0, 1.0])
    u, v = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    images = [image(CT_IMAGE, f"1.2.3.{k + 1}", "1.2.3.100", "1.2.3.200", "1.2.3.300", rows=96, cols=80,
                    ipp=(-40, -48, 3.0 * k), number=k + 1) for k in range(6)]
    c = np.array([0.0, 0.0, 0.0])
    ptv = [[circle(c + 3 * k * n, u, v, 20), circle(c + 3 * k * n, u, v, 8)] if 1 <= k <= 4 else [] for k in range(6)]
    oar = [[circle(c + 3 * k * normal + [10, 10, 0], u, v, 6)] if k in (2, 3) else [] for k in range(6)]
    rs = structure_set(images, [("PTV ring", "PTV", ptv), ("Cord", "ORGAN", oar)])
    images = sort_images(images)
    groups = group_rois(list_rois(rs), merge=False)
    return rs, images, groups, group_masks(rs, images, groups)


def test_seg_read_back_with_highdicom_equals_the_masks(case, tmp_path: Path) -> None:
    rs, images, groups, masks = case
    seg = segmentation(images, masks, groups, str(rs.SOPInstanceUID))
    seg.save_as(tmp_path / "seg.dcm")
    back = hd.seg.segread(tmp_path / "seg.dcm")
    arr = back.get_pixels_by_source_instance([str(i.SOPInstanceUID) for i in images],
                                             assert_missing_frames_are_empty=True)
    assert arr.shape == (6, 96, 80, 2)
    for k, mask in enumerate(masks):
        assert int((arr[..., k].astype(bool) != mask).sum()) == 0
        assert mask.sum() > 100
    labels = [back.get_segment_description(k).SegmentLabel for k in (1, 2)]
    assert labels == ["PTV ring", "Cord"]
    rgb = hd.color.CIELabColor.from_dicom_value(back.get_segment_description(2).RecommendedDisplayCIELabValue)
    assert rgb.to_rgb() == pytest.approx((255, 80, 0), abs=2)
    assert back.StudyInstanceUID == images[0].StudyInstanceUID
    assert back.FrameOfReferenceUID == images[0].FrameOfReferenceUID
    assert segmentation(images, masks, groups, str(rs.SOPInstanceUID)).SOPInstanceUID == back.SOPInstanceUID


def test_roi_missing_every_image_is_refused_by_name(case) -> None:
    rs, images, groups, masks = case
    with pytest.raises(SegError, match="Cord covers no pixel"):
        segmentation(images, [masks[0], np.zeros_like(masks[1])], groups, "1.2.3")


def test_nelms_sphere_seg_read_back_equals_the_mask(tmp_path: Path) -> None:
    images = sort_images([pydicom.dcmread(p) for p in nelms_ct(tmp_path / "ct")])
    rs = pydicom.dcmread(NELMS_SPHERE)
    groups = group_rois(list_rois(rs), merge=False)
    (mask,) = group_masks(rs, images, groups)
    segmentation(images, [mask], groups, str(rs.SOPInstanceUID)).save_as(tmp_path / "seg.dcm")
    back = hd.seg.segread(tmp_path / "seg.dcm")
    arr = back.get_pixels_by_source_instance([str(i.SOPInstanceUID) for i in images],
                                             assert_missing_frames_are_empty=True)
    assert int((arr[..., 0].astype(bool) != mask).sum()) == 0 and mask.sum() == 6584
    assert back.get_segment_description(1).SegmentLabel == "Sphere_30_0"
