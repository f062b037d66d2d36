"""[DERIVE] Enhanced → classic: a classic MR series made multi-frame by highdicom and split back is the original,
pixel for pixel and in geometry, for native, JPEG 2000 and RLE pixel data."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.encaps import generate_frames
from pydicom.uid import JPEG2000Lossless, RLELossless

from derive_support import CT_IMAGE, MR_IMAGE, image, save
from rtstation_tui.engine.derive.enhanced import EnhancedError, split_enhanced

GEOMETRY = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
            "RescaleIntercept", "RescaleSlope", "WindowCenter", "WindowWidth")


def _classic(tmp: Path) -> list[pydicom.Dataset]:
    iop = (1, 0, 0, 0, 0.8, 0.6)  # oblique, so orientation is really carried per image
    out = []
    for k in range(5):
        ds = image(MR_IMAGE, f"1.2.3.4.{k + 1}", "1.2.3.4.100", "1.2.3.4.200", "1.2.3.4.300", rows=64, cols=48,
                   ipp=(-20.0, -30.0 + 2.4 * k, 4.0 + 3.2 * k), iop=iop, spacing=(0.8, 0.9), number=k + 1, seed=k)
        ds.WindowCenter, ds.WindowWidth = 1000 + k, 2000
        out.append(pydicom.dcmread(save(ds, tmp / f"MR{k}.dcm")))
    return out


def _enhanced(classic: list[pydicom.Dataset], ts: str | None, tmp: Path) -> pydicom.Dataset:
    mf = hd.legacy.LegacyConvertedEnhancedMRImage(classic, "1.2.3.4.500", 7, "1.2.3.4.501", 1,
                                                  transfer_syntax_uid=ts)
    mf.save_as(tmp / "enhanced.dcm", enforce_file_format=True)
    return pydicom.dcmread(tmp / "enhanced.dcm")


@pytest.mark.parametrize("ts", [None, JPEG2000Lossless, RLELossless], ids=["native", "jpeg2000", "rle"])
def test_split_back_gives_the_original_images(ts: str | None, tmp_path: Path) -> None:
    classic = _classic(tmp_path)
    mf = _enhanced(classic, ts, tmp_path)
    images = split_enhanced(mf)
    for k, im in enumerate(images):
        im.save_as(tmp_path / f"out{k}.dcm", enforce_file_format=True)
    back = [pydicom.dcmread(tmp_path / f"out{k}.dcm") for k in range(len(images))]
    assert [b.InstanceNumber for b in back] == [1, 2, 3, 4, 5]
    by_z = {float(o.ImagePositionPatient[2]): o for o in classic}
    for b in back:
        orig = by_z[float(b.ImagePositionPatient[2])]
        assert b.SOPClassUID == MR_IMAGE and b.file_meta.TransferSyntaxUID == mf.file_meta.TransferSyntaxUID
        assert np.array_equal(b.pixel_array, orig.pixel_array)
        for key in GEOMETRY:
            assert [float(v) for v in np.atleast_1d(b[key].value)] == \
                pytest.approx([float(v) for v in np.atleast_1d(orig[key].value)]), key
        assert b.SourceImageSequence[0].ReferencedSOPInstanceUID == mf.SOPInstanceUID
        assert b.StudyInstanceUID == orig.StudyInstanceUID and b.FrameOfReferenceUID == orig.FrameOfReferenceUID
        assert list(b.ImageType)[:2] == list(mf.ImageType)[:2]
    assert len({b.SeriesInstanceUID for b in back}) == 1 and back[0].SeriesInstanceUID != mf.SeriesInstanceUID
    assert [i.SOPInstanceUID for i in split_enhanced(mf)] == [b.SOPInstanceUID for b in back]
    if ts is not None:  # the compressed frames are carried over, not re-encoded
        source = list(generate_frames(mf.PixelData, number_of_frames=5))
        assert [next(generate_frames(b.PixelData, number_of_frames=1)) for b in back] == source


def test_enhanced_without_functional_groups_is_refused_with_the_reason(tmp_path: Path) -> None:
    mf = _enhanced(_classic(tmp_path), None, tmp_path)
    del mf.SharedFunctionalGroupsSequence
    del mf.PerFrameFunctionalGroupsSequence
    with pytest.raises(EnhancedError, match="has no functional groups"):
        split_enhanced(mf)


def test_a_classic_image_is_not_split(tmp_path: Path) -> None:
    ct = image(CT_IMAGE, "1.2.3.9", "1.2.3.10", "1.2.3.11", "1.2.3.12", rows=8, cols=8, ipp=(0, 0, 0))
    with pytest.raises(EnhancedError, match="1.2.3.9 .* is not an Enhanced"):
        split_enhanced(ct)


def test_legacy_enhanced_ct_splits_into_ct_images(tmp_path: Path) -> None:
    classic = [pydicom.dcmread(save(image(CT_IMAGE, f"1.2.3.7.{k + 1}", "1.2.3.7.100", "1.2.3.7.200", "1.2.3.7.300",
                                          rows=16, cols=16, ipp=(0, 0, 3.0 * k), number=k + 1, seed=k),
                                    tmp_path / f"ct{k}.dcm")) for k in range(3)]
    mf = hd.legacy.LegacyConvertedEnhancedCTImage(classic, "1.2.3.7.500", 5, "1.2.3.7.501", 1)
    images = split_enhanced(mf)
    assert [i.SOPClassUID for i in images] == [CT_IMAGE] * 3
    by_z = {float(c.ImagePositionPatient[2]): c for c in classic}  # the converter orders frames its own way
    assert all(np.array_equal(i.pixel_array, by_z[float(i.ImagePositionPatient[2])].pixel_array) for i in images)
    assert "PixelPresentation" not in images[0] and list(images[0].ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]


def test_per_frame_echo_time_frame_type_and_acquisition_time(tmp_path: Path) -> None:
    """What a scanner's Enhanced MR carries per frame (a multi-echo series) reaches each classic image."""
    mf = _enhanced(_classic(tmp_path), None, tmp_path)
    for k, frame in enumerate(mf.PerFrameFunctionalGroupsSequence):
        echo = pydicom.Dataset()
        echo.EffectiveEchoTime = 10.0 * (k + 1)
        frame.MREchoSequence = pydicom.Sequence([echo])
        kind = pydicom.Dataset()
        kind.FrameType = ["DERIVED", "PRIMARY", "T2_MAP", "NONE"] if k == 4 else ["ORIGINAL", "PRIMARY", "M", "NONE"]
        frame.MRImageFrameTypeSequence = pydicom.Sequence([kind])
        frame.FrameContentSequence[0].FrameAcquisitionDateTime = f"2026010112{k:02d}00"
    images = split_enhanced(mf)
    assert [float(i.EchoTime) for i in images] == [10, 20, 30, 40, 50]
    assert list(images[4].ImageType) == ["DERIVED", "PRIMARY", "T2_MAP"]
    assert images[2].AcquisitionDateTime == "20260101120200" and images[2].AcquisitionTime == "120200"
