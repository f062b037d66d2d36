"""Faults with real peers: a SIGKILLed server mid-receive loses nothing it acknowledged and leaves no half file;
eight senders at once each get their own complete patient."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import pydicom
import pytest

from helpers import (PEER_ENV, Serve, dataset_bytes, dcmtk, rtstation, show_json, station_toml, stored_files,
                     wait_for, write_config)

from rtstation_tui.engine.dicom.header import dataset_offset, read_header
from rtstation_tui.engine.dicom.lengthwalk import verify_structure
from rtstation_tui.synthetic import make_ct_bulk, make_patient


def acknowledged(storescu_verbose: str) -> list[str]:
    """Files for which storescu -v logged 'Received Store Response (Success)' (the line after its 'Sending file')."""
    done, current = [], None
    for line in storescu_verbose.splitlines():
        if m := re.match(r"I: Sending file: (.+)$", line):
            current = m.group(1)
        elif "Received Store Response (Success)" in line and current is not None:
            done.append(current)
            current = None
    return done


def index_count(config: Path) -> int:
    return int(json.loads(rtstation("index", "--json", config=config).stdout)["instances"])


@pytest.mark.slow
def test_sigkill_during_a_500_instance_receive_loses_nothing_acknowledged(tmp_path, port):
    data_dir = tmp_path / "var"
    cfg = write_config(tmp_path / "rt.toml", station_toml(data_dir, port).replace('durability = "os"',
                                                                                  'durability = "fsync"'))
    files = make_ct_bulk(tmp_path / "ct", 500, rows=32, cols=32, patient_id="KILL")
    sources = {str(f): f for f in files}
    server = Serve(cfg, tmp_path / "serve.log").start()
    err = open(tmp_path / "storescu.txt", "w+")
    sender = subprocess.Popen([dcmtk("storescu"), "-v", "-xi", "-aet", "TPS", "-aec", "RTSTATION", "127.0.0.1",
                               str(port), *map(str, files)], env=PEER_ENV, stdout=err, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: len(stored_files(data_dir)) >= 150, 60, what="150 instances stored")
        server.kill()  # SIGKILL: no clean-up of any kind
        sender.wait(60)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
        err.seek(0)
        verbose = err.read()
        err.close()
    assert sender.returncode != 0, "storescu should have seen the server die"
    acked = acknowledged(verbose)
    assert 100 <= len(acked) < 500, f"the kill should land mid-transfer ({len(acked)} acknowledged)"

    # a stray temp file, as if a C-STORE had been half received when the power went
    (data_dir / "tmp" / "leftover.part").write_bytes(b"\x00" * 1000)
    server = Serve(cfg, tmp_path / "serve2.log").start()
    try:
        assert not list((data_dir / "tmp").iterdir()), "temp files of the crashed run must be removed at start"
        assert "temp files left by an interrupted run" in server.text()
        on_disk = stored_files(data_dir)
        strays = [p for p in (data_dir / "store").rglob("*") if p.is_file() and p.suffix != ".dcm"]
        assert not strays, f"temp or partial files inside the store: {strays[:5]}"
        wait_for(lambda: index_count(cfg) == len(on_disk), 30, what="index to catch up with the files")
        # every file under a real name is complete and byte-identical to what was sent
        by_uid = {str(read_header(f).sop_uid): f for f in on_disk}
        assert len(by_uid) == len(on_disk)
        for f in on_disk:
            verify_structure(f, dataset_offset(f), "1.2.840.10008.1.2")
        sent = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in files}
        for uid, f in by_uid.items():
            assert dataset_bytes(f) == dataset_bytes(sent[uid]), f"{f.name} differs from what was sent"
        # every acknowledged instance is stored
        acked_uids = {str(pydicom.dcmread(sources[a], stop_before_pixels=True).SOPInstanceUID) for a in acked}
        assert acked_uids <= set(by_uid), f"acknowledged but lost: {sorted(acked_uids - set(by_uid))[:5]}"
        before = show_json(cfg)
        assert server.stop(signal.SIGTERM) == 0
    finally:
        server.kill()
    rtstation("index", "--rebuild", config=cfg)
    assert show_json(cfg) == before
    [patient] = before
    assert patient["patient_id"] == "KILL" and len(patient["unconnected"]) == len(on_disk)


def test_eight_concurrent_senders_each_get_their_own_complete_patient(tmp_path, port):
    data_dir = tmp_path / "var"
    cfg = write_config(tmp_path / "rt.toml", station_toml(data_dir, port))
    patients = [make_patient(tmp_path / f"p{n}", f"CONC{n}", name=f"CONC^{n}", slices=6, rows=16, cols=16,
                             label=f"PL{n}") for n in range(8)]
    server = Serve(cfg, tmp_path / "serve.log").start()
    try:
        procs = [subprocess.Popen([dcmtk("storescu"), "-xi", "-aet", f"TPS{n}", "-aec", "RTSTATION", "127.0.0.1",
                                   str(port), *map(str, p.files)], env=PEER_ENV, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for n, p in enumerate(patients)]
        for proc in procs:
            _, errors = proc.communicate(timeout=120)
            assert proc.returncode == 0, errors
        wait_for(lambda: len(show_json(cfg)) == 8 and all(pl["complete"] for pat in show_json(cfg)
                                                          for pl in pat["plans"]), 30, what="8 complete bundles")
        listing = {pat["patient_id"]: pat for pat in show_json(cfg)}
        for n, p in enumerate(patients):
            [plan] = listing[f"CONC{n}"]["plans"]
            assert plan["label"] == f"PL{n}" and plan["plan_uid"] == p.plan_uid
            assert plan["counts"] == {"CT": 6, "RTDOSE": 1, "RTPLAN": 1, "RTSTRUCT": 1}
            assert set(plan["instances"]) == {*p.ct_uids, p.struct_uid, p.plan_uid, p.dose_uid}
            assert listing[f"CONC{n}"]["unconnected"] == []
            assert f"from TPS{n}@127.0.0.1" in server.text()
        assert len(stored_files(data_dir)) == 8 * 9
        for f in stored_files(data_dir):
            uid = read_header(f).sop_uid
            src = next(s for p in patients for s in p.files if s.name.split(".", 1)[1] == f"{uid}.dcm")
            assert dataset_bytes(f) == dataset_bytes(src)
    finally:
        server.kill()


@pytest.mark.slow
def test_sigterm_mid_transfer_finishes_the_association_then_exits_0(tmp_path, port):
    """systemctl stop during a receive: new associations are refused, the one in flight completes, nothing lost."""
    data_dir = tmp_path / "var"
    cfg = write_config(tmp_path / "rt.toml", station_toml(data_dir, port))
    files = make_ct_bulk(tmp_path / "ct", 300, rows=32, cols=32, patient_id="TERM")
    server = Serve(cfg, tmp_path / "serve.log").start()
    sender = subprocess.Popen([dcmtk("storescu"), "-xi", "-aet", "TPS", "-aec", "RTSTATION", "127.0.0.1", str(port),
                               *map(str, files)], env=PEER_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    try:
        wait_for(lambda: len(stored_files(data_dir)) >= 50, 60, what="50 instances stored")
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        _, errors = sender.communicate(timeout=120)
        assert sender.returncode == 0, errors
        assert server.stop(signal.SIGTERM, timeout=60) == 0
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
        server.kill()
    assert len(stored_files(data_dir)) == 300
    assert "finishing in-flight stores" in server.text() and "300 instances" in server.text()
    assert "aborting association" not in server.text()
