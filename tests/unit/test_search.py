"""``rtstation search`` gives the same answers as a brute-force pydicom scan (folders, sequence paths, stats, the
store through its index), and ``show --path`` lists a folder as ``show --json`` lists it once imported."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pydicom
import pytest

from helpers import DATA, rtstation, station_toml, write_config

TERMS_OF_PLANS = ["--tag", "(0008,0060)=RT*", "--tag", "(300A,00B0)/(300A,00B2)=?"]


def brute_force(root: Path) -> dict[str, pydicom.Dataset]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            try:
                out[str(p)] = pydicom.dcmread(p, stop_before_pixels=True)
            except Exception:  # noqa: BLE001 - anything pydicom cannot read is "not DICOM" to both sides
                continue
    return out


def search(*args: str, config: Path | None = None) -> object:
    return json.loads(rtstation("search", *args, "--json", config=config).stdout)


def test_folder_search_agrees_with_a_brute_force_scan() -> None:
    hits = search("--path", str(DATA), *TERMS_OF_PLANS)
    expected = {}
    for path, ds in brute_force(DATA).items():
        if str(ds.get("Modality", "")).startswith("RT"):
            expected[path] = sorted(str(b.TreatmentMachineName) for b in ds.get("BeamSequence", [])
                                    if "TreatmentMachineName" in b)
    got = {h["path"]: sorted(h["values"]["(300A,00B0)/(300A,00B2)"]) for h in hits}
    assert got == expected and any(expected.values())


def test_stats_count_values_as_a_scan_does() -> None:
    stats = search("--path", str(DATA), "--tag", "(0008,0060)=?", "--stats")
    expected = Counter(str(ds.Modality) for ds in brute_force(DATA).values() if "Modality" in ds)
    assert stats["stats"]["(0008,0060)"] == dict(expected)


def test_dirs_only_and_a_bad_term() -> None:
    dirs = search("--path", str(DATA), "--tag", "(300A,0002)=B1", "--dirs-only")
    assert dirs == [str(DATA / "breast_boost")]
    proc = rtstation("search", "--path", str(DATA), "--tag", "(300A,0002)", check=False)
    assert proc.returncode == 2 and "(gggg,eeee)=value" in proc.stderr


@pytest.fixture
def imported(tmp_path: Path) -> Path:
    cfg = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", 11112))
    rtstation("import", *map(str, sorted((DATA / "breast_boost").glob("*.dcm"))), config=cfg)
    return cfg


def test_store_search_uses_the_index_and_agrees_with_a_scan(imported: Path, tmp_path: Path) -> None:
    hits = search("--tag", "(0010,0020)=123456", "--tag", "(0008,0060)=CT", config=imported)
    store = tmp_path / "var" / "store"
    expected = {p for p, ds in brute_force(store).items() if ds.get("PatientID") == "123456" and ds.Modality == "CT"}
    assert {h["path"] for h in hits} == expected and expected
    mixed = search("--tag", "(0008,0060)=RTPLAN", "--tag", "(300A,0002)=?", config=imported)
    assert [h["values"]["(300A,0002)"] for h in mixed] == [["B1"]]


def test_show_path_lists_a_folder_as_show_lists_it_imported(imported: Path) -> None:
    folder = json.loads(rtstation("show", "--path", str(DATA / "breast_boost"), "--json").stdout)
    stored = json.loads(rtstation("show", "--json", config=imported).stdout)
    assert folder == stored and folder[0]["plans"][0]["label"] == "B1"
