"""``rtstation send --series/--study/--patient``: everything stored there, plan objects or unconnected ones, in one
job per node (HARDEN2 item 19: 900 unconnected CT slices needed 900 ``--sop`` arguments)."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom

from helpers import rtstation
from peers import StoreSCP
from test_sender import configure, node


def uids(files) -> set[str]:
    return {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files}


def test_a_series_a_study_and_a_patient_are_sent_whole_with_one_argument(tmp_path: Path):
    from rtstation_tui.synthetic import make_ct_bulk, make_patient

    loose = make_ct_bulk(tmp_path / "loose", 30, rows=8, cols=8, patient_id="LOOSE")  # no plan refers to them
    other = make_ct_bulk(tmp_path / "other", 5, rows=8, cols=8, patient_id="OTHER")
    planned = make_patient(tmp_path / "planned", "PLANNED", slices=3, rows=8, cols=8, label="P1")
    series = pydicom.dcmread(loose[0], stop_before_pixels=True).SeriesInstanceUID
    study = planned.study_uid
    scp = StoreSCP(tmp_path / "scp").start()
    try:
        config = configure(tmp_path, node("QA", scp.spec))
        rtstation("import", str(tmp_path / "loose"), str(tmp_path / "other"), str(tmp_path / "planned"),
                  config=config)

        def send(*what: str) -> dict:
            out = rtstation("send", *what, "--to", "QA", "--wait", "--json", config=config)
            [job] = json.loads(out.stdout)
            return job

        job = send("--series", series)
        assert job["state"] == "done" and job["instances"] == 30
        assert uids(scp.files()) == uids(loose)
        job = send("--study", study)
        assert job["state"] == "done" and job["instances"] == 6
        assert uids(scp.files()) == uids(loose) | uids(planned.files)
        job = send("--patient", "OTHER")
        assert job["state"] == "done" and job["instances"] == 5
        assert uids(scp.files()) == uids(loose) | uids(planned.files) | uids(other)
        jobs = {j["id"]: j for j in json.loads(rtstation("queue", "--json", config=config).stdout)}
        assert jobs[1]["label"] == f"series {series}: 30 instances"
        bad = rtstation("send", "--series", "1.2.3.4", "--to", "QA", config=config, check=False)
        assert bad.returncode == 2 and "no series '1.2.3.4' in the index" in bad.stderr
        none = rtstation("send", "--to", "QA", config=config, check=False)
        assert none.returncode == 2 and "--series" in none.stderr
    finally:
        scp.stop()
