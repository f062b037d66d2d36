"""[DERIVE] against real tools: Orthanc accepts the overlay series and the SEG into the source's study, and
dicom3tools' dciodvfy finds nothing in the derived images (overlay copies, SEG, split classic images) that it does
not find in their sources."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import highdicom as hd
import pydicom
import pytest

from derive_support import CT_IMAGE, MR_IMAGE, NELMS_SPHERE, image, nelms_ct, save
from helpers import PEER_ENV, dcmtk, rtstation
from peers import Orthanc
from rtstation_tui.engine.derive.enhanced import split_enhanced

DCIODVFY = Path("/usr/bin/dciodvfy")


@pytest.fixture
def derived(tmp_path: Path, config: Path) -> dict[str, list[Path]]:
    ct = nelms_ct(tmp_path / "ct")
    for kind in ("overlay", "seg"):
        rtstation("derive", kind, "--rtstruct", str(NELMS_SPHERE), "--images", str(tmp_path / "ct"),
                  "--out", str(tmp_path / kind), config=config)
    return {"ct": ct, "overlay": sorted((tmp_path / "overlay").glob("*.dcm")),
            "seg": sorted((tmp_path / "seg").glob("*.dcm"))}


def test_orthanc_shows_the_derived_series_in_the_source_study(derived, tmp_path: Path) -> None:
    orthanc = Orthanc(tmp_path / "orthanc").start()
    try:
        files = [*derived["ct"], *derived["overlay"], *derived["seg"], NELMS_SPHERE]
        proc = subprocess.run([dcmtk("storescu"), "-R", "-aet", "RTSTATION", "-aec", orthanc.aet, "127.0.0.1",
                               str(orthanc.dicom_port), *map(str, files)], env=PEER_ENV, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        (study,) = orthanc.get("/studies")
        series = [orthanc.get(f"/series/{s}") for s in orthanc.get(f"/studies/{study}")["Series"]]
        by_modality = {s["MainDicomTags"]["Modality"]: [] for s in series}
        for s in series:
            by_modality[s["MainDicomTags"]["Modality"]].append(len(s["Instances"]))
        assert sorted(by_modality["CT"]) == [20, 20]  # the source series and the overlay copy
        assert by_modality["SEG"] == [1] and by_modality["RTSTRUCT"] == [1]
        descriptions = {s["MainDicomTags"].get("SeriesDescription") for s in series}
        assert "source series + contours" in descriptions
    finally:
        orthanc.stop()


def _findings(path: Path) -> set[str]:
    if not DCIODVFY.exists():
        raise AssertionError("dciodvfy missing at /usr/bin/dciodvfy: run scripts/install-peers.sh (dicom3tools)")
    proc = subprocess.run([str(DCIODVFY), str(path)], capture_output=True, text=True, timeout=60)
    lines = (proc.stdout + proc.stderr).splitlines()
    return {re.sub(r"\s+", " ", ln) for ln in lines if ln.startswith(("Error", "Warning"))}


def test_dciodvfy_finds_nothing_new_in_the_derived_images(derived) -> None:
    source = _findings(derived["ct"][0])
    for f in derived["overlay"][:3]:
        assert _findings(f) - source == set(), f
    seg = _findings(derived["seg"][0])
    assert not [e for e in seg if e.startswith("Error")], seg


@pytest.mark.parametrize("sop_class", [CT_IMAGE, MR_IMAGE], ids=["ct", "mr"])
def test_dciodvfy_finds_nothing_new_in_split_images(sop_class: str, tmp_path: Path) -> None:
    classic = [pydicom.dcmread(save(image(sop_class, f"1.2.3.8.{k + 1}", "1.2.3.8.100", "1.2.3.8.200", "1.2.3.8.300",
                                          rows=16, cols=16, ipp=(0, 0, 3.0 * k), number=k + 1, seed=k),
                                    tmp_path / f"src{k}.dcm")) for k in range(3)]
    convert = (hd.legacy.LegacyConvertedEnhancedCTImage if sop_class == CT_IMAGE
               else hd.legacy.LegacyConvertedEnhancedMRImage)
    mf = convert(classic, "1.2.3.8.500", 5, "1.2.3.8.501", 1)
    split = split_enhanced(mf)
    split[1].save_as(tmp_path / "split.dcm", enforce_file_format=True)
    assert _findings(tmp_path / "split.dcm") - _findings(tmp_path / "src1.dcm") == set()
