"""The hostile and broken corpus (tests/corpus.py), over the network and through ``rtstation import``: each object
is stored as sent or quarantined with its reason, a specific line is logged, and the receiver serves the next
association."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

import corpus
from helpers import Serve, dataset_bytes, echoscu, free_port, rtstation, show_json, station_toml, stored_files, \
    wait_for, write_config

CASES = corpus.cases()
NETWORK_LOG = {"not_dicom.txt": "declares 544434464 bytes"}  # its text, read as tags, claims this length
IMPORT_LOG = {"uid_1000.dcm": "SOP Instance UID '1.22222"}  # no C-STORE announcing another UID on import


class Station:
    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.data_dir = root / "var"
        self.config = write_config(root / "rt.toml", station_toml(self.data_dir, self.port))
        self.server = Serve(self.config, root / "serve.log").start()
        self.files = corpus.build(root / "corpus")
        self.net_dir = root / "net"


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    st = Station(tmp_path_factory.mktemp("corpus"))
    yield st
    st.server.kill()


def send_raw(port: int, case: corpus.Case, path: Path) -> int:
    """One association, one C-STORE of the file's dataset bytes exactly as they are (no parse, no re-encode)."""
    from pynetdicom import AE, _config

    ae = AE("CORPUS")
    ae.add_requested_context(case.sop_class, case.ts)
    old, _config.STORE_SEND_CHUNKED_DATASET = _config.STORE_SEND_CHUNKED_DATASET, True
    try:
        assoc = ae.associate("127.0.0.1", port, ae_title="RTSTATION")
        assert assoc.is_established, f"{case.name}: association refused"
        status = assoc.send_c_store(path)
        assoc.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = old
    return int(status.Status)


def payload(case: corpus.Case, path: Path) -> bytes:
    return dataset_bytes(path) if case.has_meta else path.read_bytes()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_network(station: Station, case: corpus.Case) -> None:
    start = len(station.server.text())
    wire = corpus.network_file(case, station.files[case.name], station.net_dir)
    status = send_raw(station.port, case, wire)
    wait_for(lambda: "released:" in station.server.text()[start:], what="the association's closing line")
    log = station.server.text()[start:]
    expected_log = NETWORK_LOG.get(case.name, case.log)
    assert expected_log in log, f"no {expected_log!r} in:\n{log}"
    if case.outcome == "quarantined":
        assert status == 0xC000
        assert "refused C-STORE" in log and "kept in quarantine" in log
        [reason] = [p for p in (station.data_dir / "quarantine").glob("*.reason.txt") if case.sop_uid in p.read_text()]
        assert expected_log in reason.read_text() and f"calling_ae: CORPUS" in reason.read_text()
        kept = Path(str(reason).removesuffix(".reason.txt"))
        assert dataset_bytes(kept) == dataset_bytes(wire)  # what was sent is kept, whole
    else:
        assert status == 0x0000
        sent = dataset_bytes(wire)
        matches = [f for f in stored_files(station.data_dir) if dataset_bytes(f) == sent]
        assert len(matches) == 1, f"{case.name} not stored exactly once as sent"
        root = (station.data_dir / "store").resolve()
        assert root in matches[0].resolve().parents
        if case.outcome == "conflict":
            assert "differs from the stored version; both kept" in log
    assert echoscu(station.port).returncode == 0, "the receiver must serve the next association"


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on the ESC in a PatientID, read here
def test_network_listing_after_the_corpus(station: Station) -> None:
    """Runs after the parametrized cases (file order): the index shows every stored case and the conflict."""
    from rtstation_tui.engine.dicom.header import read_header

    plans = {read_header(f).sop_uid for f in stored_files(station.data_dir)}
    assert len(plans) == len({c.sop_uid for c in CASES if c.outcome != "quarantined"})  # each stored case once
    wait_for(lambda: {pl["plan_uid"] for p in show_json(station.config) for pl in p["plans"]} == plans,
             what="every stored plan indexed")
    listing = show_json(station.config)
    conflicts = {c for p in listing for c in p["conflicts"]}
    assert conflicts == {corpus.uid("dup")}
    ids = {p["patient_id"] for p in listing}
    assert set(corpus.HOSTILE_IDS.values()) - {"A\x00B"} <= ids
    assert "ESC" not in station.server.text() and "\x1b" not in station.server.text(), "raw escape in the log"
    audit = [json.loads(line) for f in (station.data_dir / "logs").glob("audit-*.jsonl")
             for line in f.read_text().splitlines()]
    refused = {r["sop_uid"]: r["reason"] for r in audit if r["kind"] == "quarantined"}
    assert set(refused) == {c.sop_uid for c in CASES if c.outcome == "quarantined"}
    assert len([r for r in audit if r["kind"] == "stored"]) == len(plans)


def test_import(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    cfg = write_config(tmp_path / "rt.toml", station_toml(data_dir, free_port()))
    files = corpus.build(tmp_path / "corpus")
    proc = rtstation("import", str(tmp_path / "corpus"), "--json", config=cfg, check=False)
    assert proc.returncode == 1, "something was quarantined: the exit status must say so"
    report = json.loads(proc.stdout)
    quarantined = {Path(q["file"]).name: q["reason"] for q in report["quarantined"]}
    assert set(quarantined) == {c.name for c in CASES if c.outcome == "quarantined"}
    assert report["conflicts"] == 1 and report["errors"] == []
    assert report["stored"] == len([c for c in CASES if c.outcome == "stored"])
    for case in CASES:
        if case.outcome == "quarantined":
            assert case.log in quarantined[case.name]
            assert f"quarantined {case.name}" in proc.stderr
        else:
            sent = payload(case, files[case.name])
            assert [f for f in stored_files(data_dir) if dataset_bytes(f) == sent], f"{case.name} not stored"
            expected = IMPORT_LOG.get(case.name, case.log)
            if expected:
                assert expected in proc.stderr, f"no {expected!r} logged for {case.name}"
    assert "\x1b" not in proc.stderr and "UserWarning" not in proc.stderr
    assert "empty PatientID" in proc.stderr and "is not a valid UID" in proc.stderr
    before = show_json(cfg)
    rtstation("index", "--rebuild", config=cfg)
    assert show_json(cfg) == before


def test_import_of_a_file_that_vanished_is_an_error_not_a_crash(tmp_path: Path) -> None:
    """A dangling symlink is a file that is listed but gone when read (deterministically)."""
    cfg = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", free_port()))
    src = tmp_path / "in"
    corpus.build(src)
    (src / "gone.dcm").symlink_to(tmp_path / "nowhere.dcm")
    proc = rtstation("import", str(src), "--json", config=cfg, check=False)  # a folder: listed, then read
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and report["stored"] == len([c for c in CASES if c.outcome == "stored"])
    assert report["errors"] == [{"file": str(src / "gone.dcm"), "reason": "file vanished before it could be read"}]
    assert "Traceback" not in proc.stderr
