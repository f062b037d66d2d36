"""``send --anonymize PROFILE`` to real peers: Orthanc files the de-identified plan as one patient and one study,
its references resolve, the store keeps its originals, and a refused transform sends nothing."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pydicom

from helpers import BREAST, free_port, rtstation, show_json, station_toml, stored_files, write_config
from peers import Orthanc, StoreSCP
from rtstation_tui.synthetic import make_patient

KEY = "net-test-key-0123456789abcdef"


def node(name: str, spec: str) -> str:
    ae, rest = spec.split("@")
    host, port = rest.split(":")
    return f'[[nodes]]\nname = "{name}"\nae_title = "{ae}"\nhost = "{host}"\nport = {port}\nretry = "1x1s"\n'


def configure(tmp_path: Path, nodes: str) -> Path:
    extra = f'[anonymize]\nkey = "{KEY}"\npatient_id = "RESEARCH-{{n:04d}}"\n\n{nodes}'
    return write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", free_port(), extra=extra))


def hashes(data_dir: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in stored_files(data_dir)}


def test_orthanc_files_an_anonymized_plan_as_one_patient_and_one_study(tmp_path):
    orthanc = Orthanc(tmp_path / "orthanc").start()
    scp = StoreSCP(tmp_path / "scp").start()
    try:
        config = configure(tmp_path, node("RESEARCH", orthanc.spec) + node("QA", scp.spec))
        p = make_patient(tmp_path / "syn", "SYN-0815", name="ROE^RICHARD", slices=5, rows=16, cols=16,
                         label="PROST_1")
        rtstation("import", str(tmp_path / "syn"), *BREAST, config=config)
        before = hashes(tmp_path / "var")
        out = rtstation("send", "--plan", "PROST_1", "--to", "RESEARCH,QA", "--anonymize", "rt-research", "--wait",
                        "--json", config=config)
        assert [(r["state"], r["transform"]) for r in json.loads(out.stdout)] == [("done", "anonymize:rt-research")] * 2
        listing = rtstation("queue", config=config).stdout
        assert re.search(r"RESEARCH\s+PROST_1\s+as anonymize:rt-research\s+done", listing), listing

        patients, studies = orthanc.get("/patients"), orthanc.get("/studies")
        assert len(patients) == 1 and len(studies) == 1
        tags = orthanc.get(f"/patients/{patients[0]}")["MainDicomTags"]
        assert tags["PatientID"] == "RESEARCH-0001" and "ROE" not in json.dumps(tags)
        series = orthanc.get(f"/studies/{studies[0]}")["Series"]
        assert len(orthanc.get("/instances")) == len(p.files) and len(series) == 4  # CT, RS, RP, RD
        assert not set(orthanc.instance_uids_in_arrival_order()) & {p.plan_uid, p.struct_uid, p.dose_uid, *p.ct_uids}

        # what the storage SCP got fits together in a fresh station: one complete bundle, nothing unconnected
        fresh = write_config(tmp_path / "fresh.toml", station_toml(tmp_path / "fresh", free_port()))
        rtstation("import", *map(str, scp.files()), config=fresh)
        [patient] = show_json(fresh)
        [plan] = patient["plans"]
        assert plan["complete"] and plan["counts"] == {"CT": 5, "RTDOSE": 1, "RTPLAN": 1, "RTSTRUCT": 1}
        assert patient["unconnected"] == [] and patient["patient_id"] == "RESEARCH-0001"
        # the same copies as `rtstation anonymize` makes with the same key: re-sending lands on the same study
        rtstation("anonymize", "--plan", "PROST_1", "--out", str(tmp_path / "files"), config=config)
        made = {pydicom.dcmread(f).SOPInstanceUID for f in (tmp_path / "files").iterdir()}
        assert made == set(orthanc.instance_uids_in_arrival_order())

        assert hashes(tmp_path / "var") == before  # the store keeps the originals, byte for byte
        assert not any((tmp_path / "var" / "tmp" / "outgoing").glob("*/*"))  # no copies left behind

        # the originals to the same node are another send, not "already delivered"
        plain = json.loads(rtstation("send", "--plan", "PROST_1", "--to", "QA", "--wait", "--json",
                                     config=config).stdout)
        assert plain[0]["state"] == "done" and plain[0]["instances"] == len(p.files)
        got = {pydicom.dcmread(f).SOPInstanceUID for f in scp.files()}
        assert {p.plan_uid, p.dose_uid} <= got
    finally:
        scp.stop()
        orthanc.stop()


def test_a_refused_bundle_sends_nothing_and_says_why(tmp_path):
    scp = StoreSCP(tmp_path / "scp").start()
    try:
        config = configure(tmp_path, node("QA", scp.spec))
        p = make_patient(tmp_path / "syn", "SYN-9", slices=3, rows=16, cols=16, label="BURNT")
        ds = pydicom.dcmread(p.ct[1])
        ds.BurnedInAnnotation = "YES"
        ds.save_as(p.ct[1])
        rtstation("import", str(tmp_path / "syn"), config=config)
        out = rtstation("send", "--plan", "BURNT", "--to", "QA", "--anonymize", "basic", "--wait", "--json",
                        config=config, check=False)
        [job] = json.loads(out.stdout)
        assert out.returncode == 1 and job["state"] == "failed" and "BurnedInAnnotation = YES" in job["error"]
        assert scp.files() == []  # not half a bundle: nothing at all
        bad = rtstation("send", "--plan", "BURNT", "--to", "QA", "--anonymize", "nope", config=config, check=False)
        assert bad.returncode == 2 and "unknown anonymize profile 'nope'" in bad.stderr and "rt-research" in bad.stderr
    finally:
        scp.stop()


def test_copies_left_by_a_crash_never_reach_the_store_and_go_at_start(tmp_path):
    from helpers import Serve

    config = configure(tmp_path, "")
    make_patient(tmp_path / "syn", "SYN-3", slices=2, rows=16, cols=16, label="LEFT")
    rtstation("import", str(tmp_path / "syn"), config=config)
    rtstation("anonymize", "--plan", "LEFT", "--out", str(tmp_path / "var" / "tmp" / "outgoing" / "job-7"),
              config=config)  # what an attempt killed mid-way leaves behind
    before = hashes(tmp_path / "var")
    server = Serve(config, tmp_path / "serve.log").start()
    try:
        assert not (tmp_path / "var" / "tmp" / "outgoing").exists()
    finally:
        server.stop()
    assert hashes(tmp_path / "var") == before
    assert [p["patient_id"] for p in show_json(config)] == ["SYN-3"]
