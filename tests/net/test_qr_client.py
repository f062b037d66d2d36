"""[QR] as a client, against a real Orthanc: ``find`` agrees with Orthanc's own answer at every level, and the
selective ``retrieve`` pulls exactly one plan's chain (C-MOVE and C-GET), byte for byte, and resumes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from helpers import Serve, free_port, rtstation, station_toml, wait_for, write_config
from peers import Orthanc
from qr_support import QrData, dataset_bytes, make_qr_data, orthanc_files, stored, upload

AE = "RTSTATION"


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Orthanc, QrData, int]]:
    base = tmp_path_factory.mktemp("qr")
    port = free_port()
    data = make_qr_data(base / "data", slices=60, rows=128)
    orthanc = Orthanc(base / "orthanc", modalities={"station": (AE, port)}).start()
    try:
        upload(orthanc, data)
        yield orthanc, data, port
    finally:
        orthanc.stop()


def config_for(tmp_path: Path, port: int, name: str = "station") -> Path:
    return write_config(tmp_path / f"{name}.toml", station_toml(tmp_path / name, port, ae=AE))


def find_json(cfg: Path, orthanc: Orthanc, *args: str) -> list[dict[str, Any]]:
    return json.loads(rtstation("find", "--from", orthanc.spec, "--json", *args, config=cfg).stdout)


def orthanc_find(orthanc: Orthanc, level: str, query: dict[str, str]) -> list[dict[str, Any]]:
    body = json.dumps({"Level": level, "Query": query, "Expand": True}).encode()
    return list(orthanc.post("/tools/find", body))


@pytest.mark.parametrize("level, args, rest_level, query, key", [
    ("patient", ["--patient", "QR*"], "Patient", {"PatientID": "QR*"}, "PatientID"),
    ("study", ["--patient", "QRA", "--study-date", "20250101-20261231"], "Study",
     {"PatientID": "QRA", "StudyDate": "20250101-20261231"}, "StudyInstanceUID"),
    ("series", ["--modality", "RTPLAN"], "Series", {"Modality": "RTPLAN"}, "SeriesInstanceUID"),
    ("image", ["--patient", "QRA", "--modality", "RT*"], "Instance", {"PatientID": "QRA", "Modality": "RT*"},
     "SOPInstanceUID"),
])
def test_find_agrees_with_orthanc(peer: tuple[Orthanc, QrData, int], tmp_path: Path, level: str, args: list[str],
                                  rest_level: str, query: dict[str, str], key: str) -> None:
    orthanc, _, port = peer
    ours = find_json(config_for(tmp_path, port), orthanc, "--level", level, *args)
    theirs = orthanc_find(orthanc, rest_level, query)
    tags = "MainDicomTags"
    their_keys = {(t.get(tags, {}).get(key) or t.get("PatientMainDicomTags", {}).get(key)) for t in theirs}
    assert {r[key] for r in ours} == their_keys and their_keys


def test_find_returns_plan_labels_asked_by_tag(peer: tuple[Orthanc, QrData, int], tmp_path: Path) -> None:
    orthanc, data, port = peer
    rows = find_json(config_for(tmp_path, port), orthanc, "--level", "image", "--patient", "QRA", "--modality",
                     "RTPLAN", "--tag", "(300A,0002)=A*", "--tag", "(300E,0002)")
    assert [(r["SOPInstanceUID"], r["RTPlanLabel"], r["ApprovalStatus"]) for r in rows] == \
        [(data.a.plan_uid, "A1", "APPROVED")]


def test_find_rejects_a_bad_tag_by_name(peer: tuple[Orthanc, QrData, int], tmp_path: Path) -> None:
    orthanc, _, port = peer
    proc = rtstation("find", "--from", orthanc.spec, "--tag", "300A,0002=x", config=config_for(tmp_path, port),
                     check=False)
    assert proc.returncode == 2 and "(gggg,eeee)=value" in proc.stderr


@pytest.mark.parametrize("method", ["--move", "--get"])
def test_selective_retrieve_stores_exactly_one_plans_chain(peer: tuple[Orthanc, QrData, int], tmp_path: Path,
                                                           method: str) -> None:
    orthanc, data, port = peer
    cfg = config_for(tmp_path, port)
    proc = rtstation("retrieve", "--from", orthanc.spec, "--patient", "QRA", "--plan", "A1,B2", "--approved-only",
                     method, "--json", config=cfg)
    report = json.loads(proc.stdout)
    assert [p["label"] for p in report["plans"]] == ["A1"]
    got = stored(tmp_path / "station")
    assert set(got) == data.chain_a()  # the other plan, its structure set and its dose never came
    assert report["stored"] == len(data.chain_a()) and report["failed"] == 0
    theirs = orthanc_files(orthanc)
    assert {u: dataset_bytes(got[u]) for u in got} == {u: dataset_bytes(theirs[u]) for u in got}  # Orthanc's bytes
    tree = json.loads(rtstation("show", "--json", config=cfg).stdout)
    assert [(p["label"], p["complete"]) for p in tree[0]["plans"]] == [("A1", True)]
    sources = sqlite3.connect(tmp_path / "station" / "index.sqlite").execute(
        "SELECT DISTINCT source, calling_ae FROM instances").fetchall()
    assert sources == [("retrieve", orthanc.aet)]


def test_unknown_move_destination_says_how_to_fix(peer: tuple[Orthanc, QrData, int], tmp_path: Path) -> None:
    orthanc, _, port = peer
    proc = rtstation("retrieve", "--from", orthanc.spec, "--patient", "QRC", "--ae-title", "STRANGER",
                     config=config_for(tmp_path, port), check=False)
    assert proc.returncode == 1
    assert "must know this station as AE title STRANGER" in proc.stderr and "--get" in proc.stderr


def test_retrieve_killed_half_way_resumes_with_the_rest(peer: tuple[Orthanc, QrData, int], tmp_path: Path) -> None:
    orthanc, data, port = peer
    cfg = config_for(tmp_path, port)
    index = tmp_path / "station" / "index.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "rtstation_tui", "retrieve", "--from", orthanc.spec, "--patient",
                             "QRA", "--get", "--config", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)

    def count() -> int:
        if not index.exists():
            return 0
        try:
            return int(sqlite3.connect(index).execute("SELECT count(*) FROM instances").fetchone()[0])
        except sqlite3.OperationalError:
            return 0

    try:
        first = wait_for(lambda: count() >= 10 and count(), 60, interval=0.01, what="half the retrieve")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    before = set(stored(tmp_path / "station"))
    total = len(data.everything_a())
    assert first <= len(before) < total, "the kill came too late to test resuming"
    report = json.loads(rtstation("retrieve", "--from", orthanc.spec, "--patient", "QRA", "--get", "--json",
                                  config=cfg).stdout)
    assert report["skipped"] == len(before)
    # the instance being written at the kill may be on disk but not yet indexed: ingest finds it and says duplicate
    assert report["stored"] + report["duplicates"] == total - len(before) and report["duplicates"] <= 1
    assert set(stored(tmp_path / "station")) == data.everything_a()


def test_move_while_serve_runs_lands_in_its_receiver(peer: tuple[Orthanc, QrData, int], tmp_path: Path) -> None:
    """On a station `rtstation serve` holds the port: the C-MOVE sub-operations go to its receiver, and the
    selective retrieve waits for them in the index before reading the chain's references."""
    orthanc, data, port = peer
    cfg = config_for(tmp_path, port)
    server = Serve(cfg, tmp_path / "serve.log").start()
    try:
        proc = rtstation("retrieve", "--from", orthanc.spec, "--patient", "QRA", "--plan", "A1", "--json",
                         config=cfg)
    finally:
        server.kill()
    assert json.loads(proc.stdout)["stored"] == len(data.chain_a())
    assert set(stored(tmp_path / "station")) == data.chain_a()
    sources = sqlite3.connect(tmp_path / "station" / "index.sqlite").execute(
        "SELECT DISTINCT source, calling_ae FROM instances").fetchall()
    assert sources == [("retrieve", orthanc.aet)]  # the serve's receiver knew them as this retrieve's objects


def test_move_sub_operations_obey_the_receivers_allowlist(peer: tuple[Orthanc, QrData, int], tmp_path: Path) -> None:
    orthanc, _, port = peer
    cfg = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "station", port, ae=AE,
                                                          receiver='allowed_calling_aes = ["ECLIPSE"]'))
    proc = rtstation("retrieve", "--from", orthanc.spec, "--patient", "QRC", config=cfg, check=False)
    assert proc.returncode == 1 and "allowed_calling_aes" in proc.stderr and "ORTHANC" in proc.stderr
    assert not stored(tmp_path / "station")


def test_retrieve_under_a_new_patient_remaps_every_uid(peer: tuple[Orthanc, QrData, int], tmp_path: Path) -> None:
    """A QA copy: stored as the new patient, no UID of the original (a TPS holding both must not confuse them),
    the chain still whole; the same retrieve again finds it all stored."""
    orthanc, data, port = peer
    cfg = config_for(tmp_path, port)
    chain = {*data.c.ct_uids, data.c.struct_uid, data.c.plan_uid, data.c.dose_uid}  # the small patient: cheap
    args = ("retrieve", "--from", orthanc.spec, "--patient", "QRC", "--plan", "C1", "--new-patient-id", "QA-1",
            "--new-patient-name", "Phantom^QA", "--json")
    report = json.loads(rtstation(*args, config=cfg).stdout)
    assert report["stored"] == len(chain) and report["stored_as"] == "QA-1"
    conn = sqlite3.connect(tmp_path / "station" / "index.sqlite")
    rows = conn.execute("SELECT sop_uid, study_uid, series_uid, patient_id FROM instances").fetchall()
    assert {r[3] for r in rows} == {"QA-1"} and len(rows) == len(chain)
    originals = chain | {data.c.study_uid}
    assert not originals & {u for r in rows for u in r[:3]}
    tree = json.loads(rtstation("show", "--json", config=cfg).stdout)
    assert [(p["patient_id"], [(b["label"], b["complete"]) for b in p["plans"]]) for p in tree] == \
        [("QA-1", [("C1", True)])]
    import pydicom
    one = pydicom.dcmread(tmp_path / "station" / "store" / conn.execute("SELECT path FROM instances").fetchone()[0])
    assert str(one.PatientName) == "Phantom^QA" and one.file_meta.MediaStorageSOPInstanceUID == one.SOPInstanceUID
    again = json.loads(rtstation(*args, config=cfg).stdout)
    assert again["stored"] == 0 and again["skipped"] == len(chain)


async def test_console_pulls_one_plan_from_orthanc_into_its_tree(peer: tuple[Orthanc, QrData, int],
                                                                 tmp_path: Path) -> None:
    """The Remote screen of a console that runs the station: query Orthanc, mark A1, pull it; its chain comes by
    C-MOVE into the console's own receiver (recorded as retrieved) and the plan shows in the tree."""
    from tui_support import make_app, screen_text, until

    from rtstation_tui.engine.config.model import load_config
    from rtstation_tui.ui.screens.remote import RemoteScreen

    orthanc, data, port = peer
    nodes = (f'[[nodes]]\nname = "pacs"\nae_title = "{orthanc.aet}"\nhost = "127.0.0.1"\n'
             f'port = {orthanc.dicom_port}\n')
    config = load_config(write_config(tmp_path / "rt.toml", station_toml(tmp_path / "station", port, ae=AE,
                                                                         extra=nodes)))
    app = make_app(config, listen=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.station.receiver_state == "listening", what="the receiver")
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, RemoteScreen), what="the Remote screen")
        await pilot.press(*"QRA", "enter")
        await until(pilot, lambda: "2 plans of QRA on pacs" in screen_text(app), what="Orthanc's plans")
        text = screen_text(app)
        assert "A1" in text and "B2" in text and "APPROVED" in text and "TrueBeam1" in text
        assert str(len(data.chain_a())) in text  # the objects of A1's chain, counted from the C-FIND answers
        await pilot.press("space", "p")
        await until(pilot, lambda: "pulled A1 from pacs" in screen_text(app), timeout=60, what="the pull")
        await pilot.press("escape")
        await until(pilot, lambda: "QRA" in app.main.tree.patients, what="the patient in the tree")
        await pilot.press("enter")  # open the patient
        await until(pilot, lambda: data.a.plan_uid in app.main.tree.plans, what="plan A1 in the tree")
        assert [p.label for p in app.main.tree.plans.values()] == ["A1"]
    assert set(stored(tmp_path / "station")) == data.chain_a()
    sources = sqlite3.connect(tmp_path / "station" / "index.sqlite").execute(
        "SELECT DISTINCT source FROM instances").fetchall()
    assert sources == [("retrieve",)]


async def test_attached_console_lists_and_pulls_through_the_service(peer: tuple[Orthanc, QrData, int],
                                                                    tmp_path: Path) -> None:
    """What an attached console's Remote screen calls, over ``rtstation serve``'s API: the node's plans, then a
    retrieve run by the serve, its progress and end on the event stream."""
    import asyncio

    from waiting import until

    from rtstation_tui.engine.config.model import load_config
    from rtstation_tui.engine.events import RetrieveFinished, RetrieveProgress
    from rtstation_tui.engine.qr.pull import RemoteUnavailable
    from rtstation_tui.engine.service.remote import RemoteStation

    orthanc, data, port = peer
    nodes = (f'[[nodes]]\nname = "pacs"\nae_title = "{orthanc.aet}"\nhost = "127.0.0.1"\n'
             f'port = {orthanc.dicom_port}\n')
    cfg = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "station", port, ae=AE, extra=nodes))
    server = Serve(cfg, tmp_path / "serve.log").start()
    events: list[Any] = []
    try:
        remote = RemoteStation(load_config(cfg).api_socket)
        await remote.start()
        remote.subscribe(events.extend)
        plans = await asyncio.to_thread(remote.remote_plans, "pacs", "QRA")
        chain = len(data.chain_a())  # B2's chain is as long: the same CT, its own RS, RP, RD
        assert [(p.label, p.approval, p.date, p.machine, p.objects, p.counted, p.stored_here) for p in plans] == \
            [("A1", "APPROVED", "20260101", "TrueBeam1", chain, True, False),
             ("B2", "UNAPPROVED", "20260101", "TrueBeam1", chain, True, False)]
        with pytest.raises(RemoteUnavailable, match="no node 'nope'"):
            await asyncio.to_thread(remote.remote_plans, "nope", "QRA")
        rid = await asyncio.to_thread(remote.retrieve, "pacs", "QRA", [data.a.plan_uid])
        done = await until(lambda: [e for e in events if isinstance(e, RetrieveFinished) and e.retrieve_id == rid],
                           60, "the retrieve's end on the stream")
        assert done[0].ok and done[0].stored == chain and done[0].plans == ("A1",), done[0]
        counts = [e for e in events if isinstance(e, RetrieveProgress) and e.retrieve_id == rid]
        assert counts and max(e.completed for e in counts) == len(data.a.ct_uids)  # the CT series' C-MOVE
        await remote.stop()
    finally:
        server.kill()
    assert set(stored(tmp_path / "station")) == data.chain_a()
