"""[DERIVE] ``rtstation derive``: from the store by plan label or structure set UID, or from files, into --out."""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from PIL import Image

from derive_support import MR_IMAGE, NELMS_SPHERE, image, nelms_ct, save
from helpers import rtstation
from rtstation_tui.synthetic import make_patient


@pytest.fixture
def stored(tmp_path: Path, config: Path):
    p = make_patient(tmp_path / "in", "DRV01", slices=6, label="DRV1")
    rtstation("import", str(tmp_path / "in"), config=config)
    return p


def test_overlay_of_a_stored_plan_by_label(stored, config: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = rtstation("derive", "overlay", "--plan", "drv1", "--out", str(out), "--json", config=config)
    (result,) = json.loads(proc.stdout)
    files = sorted(out.glob("CT.*.dcm"))
    assert result["files"] == len(files) == 6 and result["rois"] == ["BODY"]
    for f in files:
        ds = pydicom.dcmread(f)
        assert ds.overlay_array(0x6000).sum() == 40 * 40  # the synthetic BODY square on a 1 mm grid
        assert ds.StudyInstanceUID == stored.study_uid


def test_seg_by_structure_set_uid(stored, config: Path, tmp_path: Path) -> None:
    out = tmp_path / "seg"
    rtstation("derive", "seg", "--structure-set", stored.struct_uid, "--out", str(out), config=config)
    (f,) = out.glob("SEG.*.dcm")
    seg = hd.seg.segread(f)
    arr = seg.get_pixels_by_source_instance(stored.ct_uids, assert_missing_frames_are_empty=True)
    assert arr.shape[0] == 6 and int(arr.sum()) == 6 * 1600


def test_overlay_from_files_with_a_selection_that_matches_nothing(config: Path, tmp_path: Path) -> None:
    nelms_ct(tmp_path / "ct")
    proc = rtstation("derive", "overlay", "--rtstruct", str(NELMS_SPHERE), "--images", str(tmp_path / "ct"),
                     "--roi", "ptv*", "--out", str(tmp_path / "o"), config=config, check=False)
    assert proc.returncode == 2
    assert "no ROI matches" in proc.stderr and "Sphere_30_0 (ORGAN)" in proc.stderr
    assert not (tmp_path / "o").exists()
    rtstation("derive", "overlay", "--rtstruct", str(NELMS_SPHERE), "--images", str(tmp_path / "ct"),
              "--type", "organ", "--out", str(tmp_path / "o"), "--png", str(tmp_path / "png"), config=config)
    assert len(list((tmp_path / "o").glob("CT.*.dcm"))) == 20
    pngs = sorted((tmp_path / "png").glob("*.png"))
    assert len(pngs) == 7  # the slices whose mask is not empty (the poles' contours are smaller than a pixel)
    rgb = np.asarray(Image.open(pngs[3]).convert("RGB"))
    yellow = (rgb == [255, 255, 0]).all(axis=-1)  # the ROI's display colour
    assert 100 < yellow.sum() < 1000


def test_unknown_structure_set_is_named(config: Path, tmp_path: Path) -> None:
    proc = rtstation("derive", "seg", "--structure-set", "1.2.3.404", "--out", str(tmp_path / "o"), config=config,
                     check=False)
    assert proc.returncode == 2 and "no structure set 1.2.3.404 in the store" in proc.stderr


def test_classic_from_a_stored_series_and_refusal_of_a_classic_file(config: Path, tmp_path: Path) -> None:
    classic = [image(MR_IMAGE, f"1.2.3.5.{k + 1}", "1.2.3.5.100", "1.2.3.5.200", "1.2.3.5.300", rows=16, cols=16,
                     ipp=(0, 0, 3.0 * k), number=k + 1, seed=k) for k in range(3)]
    classic = [pydicom.dcmread(save(ds, tmp_path / f"mr{k}.dcm")) for k, ds in enumerate(classic)]
    mf = hd.legacy.LegacyConvertedEnhancedMRImage(classic, "1.2.3.5.500", 7, "1.2.3.5.501", 1)
    (tmp_path / "in").mkdir()
    mf.save_as(tmp_path / "in" / "mf.dcm", enforce_file_format=True)
    rtstation("import", str(tmp_path / "in"), config=config)
    rtstation("derive", "classic", "--series", "1.2.3.5.500", "--out", str(tmp_path / "c"), config=config)
    assert sorted(int(pydicom.dcmread(f).InstanceNumber) for f in (tmp_path / "c").glob("MR.*.dcm")) == [1, 2, 3]
    proc = rtstation("derive", "classic", str(tmp_path / "mr0.dcm"), "--out", str(tmp_path / "d"), config=config,
                     check=False)
    assert proc.returncode == 2 and "is not an Enhanced" in proc.stderr
