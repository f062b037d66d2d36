"""Storage Commitment against Orthanc: after the C-STOREs, the node with ``commitment = true`` is asked about every
instance sent; Orthanc answers with an N-EVENT-REPORT on a new association to our listener, and the job shows
``committed``. An instance Orthanc no longer holds when asked is reported as not committed, with its reason."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from helpers import Serve, free_port, rtstation, show_json, station_toml, wait_for, write_config
from peers import Orthanc
from rulestools import node_toml
from rtstation_tui.synthetic import make_patient


def jobs(config: Path) -> list[dict]:
    return json.loads(rtstation("queue", "--json", config=config).stdout)


@contextmanager
def committing_orthanc(tmp_path: Path, patient: str, label: str, slices: int) -> Iterator[tuple]:
    """Orthanc as a ``commitment = true`` node of a serving station that holds one synthetic plan:
    (orthanc, the station's config, the patient, the serve process)."""
    port = free_port()
    orthanc = Orthanc(tmp_path / "orthanc", modalities={"rtstation": ("RTSTATION", port)}).start()
    server = None
    try:
        node = node_toml("PACS", orthanc.spec) + "commitment = true\n\n"
        config = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", port, extra=node))
        p = make_patient(tmp_path / "syn", patient, label=label, slices=slices, rows=8, cols=8)
        rtstation("import", str(tmp_path / "syn"), config=config)
        server = Serve(config, tmp_path / "serve.log").start()
        yield orthanc, config, p, server
    finally:
        if server is not None:
            server.stop()
        orthanc.stop()


def test_every_sent_instance_is_reported_committed_by_orthanc(tmp_path):
    with committing_orthanc(tmp_path, "SC1", "SC_1", 3) as (orthanc, config, p, server):
        rtstation("send", "--plan", "SC_1", "--to", "PACS", config=config)
        wait_for(lambda: [(j["state"], j["commitment"]) for j in jobs(config)] == [("done", "committed")], 60,
                 what="the job committed")
        assert len(orthanc.get("/instances")) == len(p.files)
        assert "storage commitment" in server.text()


def test_an_instance_removed_from_orthanc_before_the_request_is_reported_not_committed(tmp_path):
    import urllib.request

    port = free_port()
    orthanc = Orthanc(tmp_path / "orthanc", modalities={"rtstation": ("RTSTATION", port)}).start()
    server = None
    try:
        config = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", port,
                                                                 extra=node_toml("PACS", orthanc.spec)))
        p = make_patient(tmp_path / "syn", "SC2", label="SC_2", slices=3, rows=8, cols=8)
        rtstation("import", str(tmp_path / "syn"), config=config)
        [job] = json.loads(rtstation("send", "--plan", "SC_2", "--to", "PACS", "--wait", "--json",
                                     config=config).stdout)
        assert job["state"] == "done" and job["commitment"] == ""  # the node has no commitment = true
        [dose] = [i for i in orthanc.get("/instances")
                  if orthanc.get(f"/instances/{i}/simplified-tags")["SOPInstanceUID"] == p.dose_uid]
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{orthanc.http_port}/instances/{dose}",
                                                      method="DELETE"), timeout=10).read()
        server = Serve(config, tmp_path / "serve.log").start()
        out = rtstation("queue", "commit", str(job["job_id"]), config=config).stdout
        assert f"storage commitment of {len(p.files)} instances to PACS: waiting" in out
        wait_for(lambda: jobs(config)[0]["commitment"].startswith("commit failed"), 60, what="the report")
        assert jobs(config)[0]["commitment"] == "commit failed: 1 instances (0x0112 no such object instance)"
        assert "commit failed: 1 instances" in rtstation("queue", config=config).stdout
    finally:
        if server is not None:
            server.stop()
        orthanc.stop()


def test_delete_after_send_removes_the_bundle_once_committed_and_keeps_it_when_a_commitment_fails(tmp_path):
    """Rule GO sends to Orthanc (commitment = true) and deletes after: once Orthanc's report says committed, the
    bundle is gone from the store and the index, audited as the rule. Rule KEEP also targets a storescp with
    commitment = true that cannot commit (no Storage Commitment service): its bundle stays."""
    from peers import StoreSCP
    from rulestools import audit_records, rule_toml

    port = free_port()
    orthanc = Orthanc(tmp_path / "orthanc", modalities={"rtstation": ("RTSTATION", port)}).start()
    scp = StoreSCP(tmp_path / "scp").start()
    server = None
    try:
        nodes = (node_toml("PACS", orthanc.spec) + "commitment = true\n\n" + node_toml("QA", scp.spec)
                 + "commitment = true\ncommitment_timeout_s = 30\n\n")
        rules = (rule_toml("GO", ["PACS"], plan_label="glob:GO*", delete_after_send=True)
                 + rule_toml("KEEP", ["PACS", "QA"], plan_label="glob:KEEP*", delete_after_send=True))
        config = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", port, extra=nodes + rules))
        go = make_patient(tmp_path / "syn" / "go", "DAS1", label="GO_1", slices=2, rows=8, cols=8)
        keep = make_patient(tmp_path / "syn" / "keep", "DAS2", label="KEEP_1", slices=2, rows=8, cols=8)
        server = Serve(config, tmp_path / "serve.log").start()
        rtstation("import", str(tmp_path / "syn"), config=config)
        wait_for(lambda: [p["patient_id"] for p in show_json(config)] == ["DAS2"], 60, what="GO_1 deleted")
        assert not list((tmp_path / "var" / "store").glob("DAS1/**/*.dcm"))
        assert len(orthanc.get("/instances")) == len(go.files) + len(keep.files)  # delivered, then removed here
        wait_for(lambda: f"plan {keep.plan_uid} stays in the store: rule KEEP: not committed by QA" in server.text(),
                 60, what="KEEP_1 kept")
        assert len(list((tmp_path / "var" / "store").glob("DAS2/**/*.dcm"))) == len(keep.files)
        [record] = audit_records(tmp_path / "var" / "logs", "deleted")
        assert (record["who"], record["patient_id"], record["files"]) == ("rule:GO", "DAS1", len(go.files))
    finally:
        if server is not None:
            server.stop()
        scp.stop()
        orthanc.stop()


def test_anonymized_copies_are_asked_about_and_committed_under_the_uids_that_were_sent(tmp_path):
    """A chain that changes identity (anonymize) sends new SOP Instance UIDs: the node is asked about exactly
    those (the queue remembers them per instance), never about the stored originals it does not hold."""
    import sqlite3

    with committing_orthanc(tmp_path, "SC3", "SC_3", 2) as (orthanc, config, p, _):
        rtstation("send", "--plan", "SC_3", "--to", "PACS", "--anonymize", "basic", config=config)
        wait_for(lambda: [(j["state"], j["commitment"]) for j in jobs(config)] == [("done", "committed")], 60,
                 what="the anonymized job committed")
        held = {orthanc.get(f"/instances/{i}/simplified-tags")["SOPInstanceUID"] for i in orthanc.get("/instances")}
        with sqlite3.connect(tmp_path / "var" / "queue.sqlite") as conn:
            asked = {r[0] for r in conn.execute("SELECT sop_uid FROM commitment_items WHERE state='committed'")}
        stored = {*p.ct_uids, p.struct_uid, p.plan_uid, p.dose_uid}
        assert len(held) == len(p.files) and asked == held and not asked & stored
