"""Permanent failures are final and counted; an abort by the peer is reported as one (HARDEN2 item 18).

A failure status such as 0xA900 (dataset does not match the SOP class) is refused again on every attempt, and an
association rejected permanently (DCMTK ``storescp --refuse``) stays rejected: neither is retried, and the job's
instances end ``failed``, counted, never left ``queued``. An A-ABORT from the peer (``storescp --abort-after``) is
named as an abort with its source, not as a timeout; once the schedule is used up, the undelivered instances are
``failed`` too."""

from __future__ import annotations

import json
import subprocess

import pydicom

from helpers import BREAST, PEER_ENV, dcmtk, echoscu, free_port, rtstation, wait_for
from peers import StoreSCP
from test_sender import B1, configure, job_items, node


def send_b1(config, target: str) -> dict:
    out = rtstation("send", "--plan", B1, "--to", target, "--wait", "--json", config=config, check=False)
    [job] = json.loads(out.stdout)
    return job


def test_a_failure_status_like_a900_is_final_for_that_instance_and_counted(tmp_path, refscp):
    plan = next(f for f in BREAST if pydicom.dcmread(f, stop_before_pixels=True).Modality == "RTPLAN")
    plan_uid = pydicom.dcmread(plan, stop_before_pixels=True).SOPInstanceUID
    (refscp.out / "refuse.json").write_text(json.dumps({plan_uid: 0xA900}))
    config = configure(tmp_path, node("REF", f"REFSCP@127.0.0.1:{refscp.port}", retry="3x1s"))
    rtstation("import", *BREAST, config=config)
    job = send_b1(config, "REF")
    assert job["state"] == "failed" and job["done"] == 3 and job["failed"] == 1, job
    assert job["attempts"] == 0, "a permanent failure status was retried"
    assert "1 of 4 instances cannot be sent" in job["error"]
    items = {i["sop_uid"]: i for i in job_items(config)}
    assert items[plan_uid]["state"] == "failed" and "0xA900" in items[plan_uid]["error"]
    refused = (refscp.out / "refused.jsonl").read_text().splitlines()
    assert len(refused) == 1, "the refused instance was sent again"
    assert {r["sop"] for r in refscp.received()} == set(items) - {plan_uid}


def refusing_scp(tmp_path) -> subprocess.Popen[bytes]:
    """DCMTK storescp --refuse: every association is rejected (A-ASSOCIATE-RJ, rejected-permanent)."""
    port = free_port()
    proc = subprocess.Popen([dcmtk("storescp"), "-aet", "REFUSES", "--refuse", str(port)], env=PEER_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: "Association Rejected" in echoscu(port, aec="REFUSES").stderr, 20, what="storescp --refuse")
    proc.port = port  # type: ignore[attr-defined]
    return proc


def test_an_association_rejected_permanently_fails_the_job_at_once_with_every_instance_counted(tmp_path):
    scp = refusing_scp(tmp_path)
    try:
        config = configure(tmp_path, node("REFUSES", f"REFUSES@127.0.0.1:{scp.port}", retry="5x1s"))
        rtstation("import", *BREAST, config=config)
        job = send_b1(config, "REFUSES")
    finally:
        scp.terminate()
        scp.wait(10)
    assert job["state"] == "failed" and job["attempts"] == 0, job
    assert "rejected permanently" in job["error"] and "not retried" in job["error"]
    assert job["failed"] == 4 and job["done"] == 0
    assert {i["state"] for i in job_items(config)} == {"failed"}


def test_an_abort_by_the_peer_is_named_as_such_and_a_job_that_gives_up_counts_its_instances(tmp_path):
    scp = StoreSCP(tmp_path / "scp", extra=("--abort-after",)).start()
    try:
        config = configure(tmp_path, node("ABORTS", scp.spec, retry="1x1s"))
        rtstation("import", *BREAST, config=config)
        job = send_b1(config, "ABORTS")
    finally:
        scp.stop()
    assert job["state"] == "failed", job
    assert "the peer aborted the association (A-ABORT from" in job["error"], job["error"]
    assert "timeout" not in job["error"]
    assert "gave up after 2 attempts" in job["error"]
    items = job_items(config)
    assert {i["state"] for i in items} == {"failed"}, "a job that gave up left instances queued"
    assert job["failed"] == 4 and job["done"] == 0


def test_a_stored_file_truncated_behind_the_stations_back_is_not_forwarded_and_is_named(tmp_path):
    from helpers import stored_files

    scp = StoreSCP(tmp_path / "scp").start()
    try:
        config = configure(tmp_path, node("QA", scp.spec, retry="2x1s"))
        rtstation("import", *BREAST, config=config)
        [dose] = [f for f in stored_files(tmp_path / "var") if f.name.startswith("RTDOSE.")]
        dose_uid = pydicom.dcmread(dose, stop_before_pixels=True).SOPInstanceUID
        with open(dose, "r+b") as fh:  # a disk error or a script cut it short
            fh.truncate(dose.stat().st_size // 2)
        job = send_b1(config, "QA")
        items = {i["sop_uid"]: i for i in job_items(config)}
    finally:
        scp.stop()
    assert job["state"] == "failed" and job["done"] == 3 and job["failed"] == 1 and job["attempts"] == 0, job
    assert items[dose_uid]["state"] == "failed"
    assert str(dose) in items[dose_uid]["error"] and "not forwarded" in items[dose_uid]["error"]
    assert dose_uid not in {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in scp.files()}


def test_a_failed_connection_is_one_line_of_ours_with_the_reason_not_pynetdicoms_errors(tmp_path):
    """[CONSOLE] log noise: C-ECHO to a node where nothing listens and to one that rejects every association (DCMTK
    ``storescp --refuse``; a send takes the same ``associate``). pynetdicom's own ERROR lines (``Association request
    failed…``, ``TCP Initialisation Error…``, ``Association Rejected`` / ``Result:`` / ``Reason:``) are folded into
    our warning, which names the node and the reason, in the daily log file (the console's pane and the API's
    records are handlers of the same loggers; the filters sit on pynetdicom's loggers, before any handler)."""
    from rtstation_tui.engine.config.model import load_config
    from rtstation_tui.engine.logsetup import setup_logging
    from rtstation_tui.engine.outbound.scu import echo

    port = free_port()  # nothing listens there
    scp = refusing_scp(tmp_path)
    config = configure(tmp_path, f'[[nodes]]\nname = "DOWN"\nae_title = "DOWN"\nhost = "127.0.0.1"\nport = {port}\n\n'
                       f'[[nodes]]\nname = "REFUSES"\nae_title = "REFUSES"\nhost = "127.0.0.1"\nport = {scp.port}\n')
    cfg = load_config(config)
    setup_logging(cfg, stream=None)
    try:
        down, refuses = cfg.nodes
        result = echo(down, "RTSTATION")
        assert not result.ok and f"connection refused: nothing listening on 127.0.0.1:{port}" in result.message
        result = echo(refuses, "RTSTATION")
        assert not result.ok and "association rejected permanently" in result.message
    finally:
        setup_logging(cfg, stream=None, file=False)
        scp.terminate()
        scp.wait(10)
    lines = (cfg.log_dir / "rtstation.log").read_text().splitlines()
    assert not [line for line in lines if "pynetdicom" in line], lines
    [down_line] = [line for line in lines if "C-ECHO DOWN" in line]
    assert "WARNING" in down_line and f"connection refused: nothing listening on 127.0.0.1:{port}" in down_line
    [refused_line] = [line for line in lines if "C-ECHO REFUSES" in line]
    assert "WARNING" in refused_line and "association rejected permanently" in refused_line
    assert len(lines) == 2, lines
