"""`rtstation import`: the network's ingest path for files, folders and ZIPs; broken input is quarantined with
its reason, never deleted."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from helpers import BREAST, DATA, dataset_bytes, rtstation, show_json, stored_files, zip_with_unreadable_member

RTDOSE_UID = "1.9.999.999.99.9.9999.9999.20030818153516"


def test_import_stores_good_files_and_quarantines_broken_ones(config, data_dir, tmp_path):
    src = tmp_path / "in"
    shutil.copytree(DATA / "pydicom", src)
    (src / "notes.txt").write_text("not DICOM at all\n")
    proc = rtstation("import", str(src), "--json", config=config, check=False)
    assert proc.returncode == 1  # something was quarantined: scripts must notice
    reasons = {q["file"].rsplit("/", 1)[-1]: q["reason"] for q in __import__("json").loads(proc.stdout)["quarantined"]}
    assert "truncated" in reasons["rtplan_truncated.dcm"] and "(300A,00B0)" in reasons["rtplan_truncated.dcm"]
    assert "not DICOM: no 'DICM' marker" in reasons["notes.txt"]
    assert set(reasons) == {"rtplan_truncated.dcm", "notes.txt", "LICENSE.pydicom", "README.pydicom-test_files.txt"}

    quarantine = data_dir / "quarantine"
    kept = [p for p in quarantine.iterdir() if not p.name.endswith(".reason.txt")]
    assert any(p.name.endswith("rtplan_truncated.dcm") for p in kept)
    reason_file = next(quarantine.glob("*rtplan_truncated.dcm.reason.txt")).read_text()
    assert "truncated" in reason_file and "original:" in reason_file
    assert (src / "rtplan_truncated.dcm").exists()  # a one-shot import never touches the user's files

    # a raw dataset without file meta is stored as a proper Part-10 file around the same dataset bytes
    raw = (DATA / "pydicom" / "ExplVR_LitEndNoMeta.dcm").read_bytes()
    [ion] = [p for p in stored_files(data_dir) if dataset_bytes(p) == raw]
    assert ion.read_bytes()[128:132] == b"DICM" and ion.name.startswith("RTPLAN.")
    # the RTDOSE variants share one SOP UID with different bytes: all kept, marked as conflicts
    conflicts = {c for p in show_json(config) for c in p["conflicts"]}
    assert conflicts == {RTDOSE_UID}
    assert len([p for p in stored_files(data_dir) if RTDOSE_UID in p.name]) == 3  # implicit, big endian, RLE


def test_import_twice_stores_nothing_new(config, data_dir):
    rtstation("import", *BREAST, config=config)
    out = rtstation("import", *BREAST, "--json", config=config).stdout
    assert '"stored": 0' in out and '"duplicates": 4' in out
    assert len(stored_files(data_dir)) == 4


def test_zip_is_expanded_and_its_junk_quarantined(config, data_dir, tmp_path):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted((DATA / "breast_boost").glob("*.dcm")):
            zf.write(f, f"export/../../evil/{f.name}")  # a zip-slip name must not escape
        zf.writestr("export/readme.txt", "hello")
    proc = rtstation("import", str(archive), "--json", config=config, check=False)
    data = __import__("json").loads(proc.stdout)
    assert data["stored"] == 4 and len(data["quarantined"]) == 1
    assert data["quarantined"][0]["file"].endswith("export.zip!export/readme.txt")
    assert not (tmp_path.parent / "evil").exists() and not (data_dir / "evil").exists()
    [patient] = show_json(config)
    assert patient["plans"][0]["label"] == "B1"


@pytest.mark.parametrize("kind, why", [("encrypted", "encrypted (password required)"),
                                       ("method", "compression method")])
def test_a_zip_with_an_unreadable_member_is_quarantined_and_the_import_goes_on(config, data_dir, tmp_path, kind, why):
    src = tmp_path / "in"
    src.mkdir()
    first, *rest = BREAST
    zip_with_unreadable_member(src / "a-export.zip", {"export/ct.dcm": Path(first).read_bytes()}, "export/rp.dcm",
                               kind)
    for f in rest:
        shutil.copy(f, src)
    proc = rtstation("import", str(src), "--json", config=config, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    data = json.loads(proc.stdout)
    assert proc.returncode == 1 and data["stored"] == 4, data  # the archive's readable member and the 3 files
    [(name, reason)] = [(q["file"], q["reason"]) for q in data["quarantined"]]
    assert name.endswith("a-export.zip") and "export/rp.dcm" in reason and why in reason
    [kept] = [p for p in (data_dir / "quarantine").iterdir() if p.name.endswith("a-export.zip")]
    assert kept.read_bytes() == (src / "a-export.zip").read_bytes()  # a copy: the user's file is left alone
    assert why in Path(f"{kept}.reason.txt").read_text()


def test_after_kill_9_the_same_import_indexes_the_files_already_on_disk(config, data_dir, tmp_path):
    """kill -9 between placing files and the batch commit leaves files in the store the index lacks; importing the
    same folder again finds them as duplicates, and must index them: else the plan stays invisible."""
    import signal
    import subprocess
    import sys

    from rtstation_tui.synthetic import make_patient
    from waiting import wait_for

    make_patient(tmp_path / "p", "KILL9", slices=400, rows=8, cols=8, label="K9")
    total = 403
    cmd = [sys.executable, "-m", "rtstation_tui", "import", str(tmp_path / "p"), "--config", str(config)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(stored_files(data_dir)) >= 20 or proc.poll() is not None, 60, interval=0.002,
                 what="the import under way")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    on_disk = len(stored_files(data_dir))
    assert on_disk < total + 1, "the import finished before the kill"
    indexed = sum(len(p["plans"]) for p in show_json(config)) if show_json(config) else 0
    assert indexed == 0, "the plan (imported first) was committed before the kill: nothing to test"
    again = json.loads(rtstation("import", str(tmp_path / "p"), "--json", config=config).stdout)
    assert again["stored"] + again["duplicates"] == total and again["duplicates"] >= 20
    [patient] = show_json(config)
    assert [p["label"] for p in patient["plans"]] == ["K9"]
    assert "no plan" not in rtstation("send", "--plan", "K9", "--to", "X@127.0.0.1:1", config=config).stderr
    import sqlite3

    with sqlite3.connect(data_dir / "index.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM instances").fetchone()[0] == total
