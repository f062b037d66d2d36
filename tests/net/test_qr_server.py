"""[QR] as a server: DCMTK findscu, getscu and movescu against a real ``rtstation serve`` find a stored plan at the
four levels and pull it; the bytes they write equal the stored ones. Only nodes with ``allow_retrieve`` may pull,
and a C-MOVE goes only to a ``[[nodes]]`` entry."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from helpers import PEER_ENV, Serve, dataset_bytes, dcmtk, free_port, rtstation, station_toml, write_config
from qr_support import QrData, make_qr_data, stored


@pytest.fixture(scope="module", params=["fast", "stock"])
def station(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[Serve, QrData, Path, int, int]]:
    """The station with our fast receive loops and with pynetdicom's stock ones (C-GET sends on the acceptor's
    association, which the fast loops replace)."""
    base = tmp_path_factory.mktemp("qrscp")
    env = {**os.environ, "RTSTATION_STOCK_PYNETDICOM": "1" if request.param == "stock" else "0"}
    port, move_port = free_port(), free_port()
    nodes = (f'[[nodes]]\nname = "getter"\nae_title = "GETSCU"\nhost = "127.0.0.1"\nport = 104\n'
             'allow_retrieve = true\n\n'
             f'[[nodes]]\nname = "mover"\nae_title = "MOVESCU"\nhost = "127.0.0.1"\nport = {move_port}\n'
             'allow_retrieve = true\n\n'
             '[[nodes]]\nname = "viewer"\nae_title = "VIEWER"\nhost = "127.0.0.1"\nport = 104\n')
    cfg = write_config(base / "station.toml", station_toml(base / "station", port, extra=nodes))
    data = make_qr_data(base / "data")
    explicit(base / "data")  # what getscu proposes for its C-STOREs, so the stored bytes can go out unchanged
    rtstation("import", str(base / "data"), config=cfg)
    server = Serve(cfg, base / "serve.log", env=env).start()
    try:
        yield server, data, base / "station", port, move_port
    finally:
        server.kill()


def explicit(folder: Path) -> None:
    for f in folder.rglob("*.dcm"):
        ds = pydicom.dcmread(f)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(f, implicit_vr=False, little_endian=True, enforce_file_format=True)


def dcm(tool: str, *args: str, timeout: float = 60, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([dcmtk(tool), *args], env=PEER_ENV, capture_output=True, text=True, timeout=timeout,
                          cwd=cwd)


def findscu(port: int, root: str, *keys: str, aet: str = "FINDSCU") -> str:
    args = [root, "-v", "-aet", aet, "-aec", "RTSTATION"]
    for k in keys:
        args += ["-k", k]
    proc = dcm("findscu", *args, "127.0.0.1", str(port))
    assert proc.returncode == 0, proc.stderr
    return proc.stderr + proc.stdout


@pytest.mark.parametrize("root", ["-P", "-S"])
def test_findscu_finds_the_plan_at_each_level(station: tuple[Serve, QrData, Path, int, int], root: str) -> None:
    _, data, _, port, _ = station
    if root == "-P":
        out = findscu(port, root, "QueryRetrieveLevel=PATIENT", "PatientID=QR*", "PatientName",
                      "NumberOfPatientRelatedStudies")
        assert "[QRA" in out and "[QRC" in out and out.count("(Pending)") == 2
    out = findscu(port, root, "QueryRetrieveLevel=STUDY", "PatientID=QRA", "StudyInstanceUID", "StudyDate=20250101-",
                  "ModalitiesInStudy")
    assert data.a.study_uid in out and "CT\\RTDOSE\\RTPLAN\\RTSTRUCT" in out
    out = findscu(port, root, "QueryRetrieveLevel=SERIES", "PatientID=QRA", f"StudyInstanceUID={data.a.study_uid}",
                  "Modality=RTPLAN", "SeriesInstanceUID", "NumberOfSeriesRelatedInstances")
    assert out.count("(Pending)") == 2  # the two plans' series, nothing else
    out = findscu(port, root, "QueryRetrieveLevel=IMAGE", "PatientID=QRA", f"StudyInstanceUID={data.a.study_uid}",
                  f"SOPInstanceUID={data.a.plan_uid}\\{data.b.plan_uid}", "RTPlanLabel=A*", "ApprovalStatus")
    assert out.count("(Pending)") == 1 and "[A1]" in out and "[APPROVED]" in out


def test_findscu_study_root_refuses_patient_level(station: tuple[Serve, QrData, Path, int, int]) -> None:
    _, _, _, port, _ = station
    proc = dcm("findscu", "-S", "-v", "-aet", "FINDSCU", "-aec", "RTSTATION", "-k", "QueryRetrieveLevel=PATIENT",
               "-k", "PatientID", "127.0.0.1", str(port))
    assert "DataSetDoesNotMatchSOPClass" in proc.stderr + proc.stdout  # 0xA900


def series_of(data_dir: Path, sop_uid: str) -> str:
    import sqlite3

    return sqlite3.connect(data_dir / "index.sqlite").execute(
        "SELECT series_uid FROM instances WHERE sop_uid=?", (sop_uid,)).fetchone()[0]


def test_getscu_pulls_the_stored_plan_bytes_equal(station: tuple[Serve, QrData, Path, int, int],
                                                  tmp_path: Path) -> None:
    _, data, data_dir, port, _ = station
    out = tmp_path / "got"
    out.mkdir()
    proc = dcm("getscu", "-S", "+B", "-aet", "GETSCU", "-aec", "RTSTATION", "-od", str(out),
               "-k", "QueryRetrieveLevel=SERIES", "-k", f"StudyInstanceUID={data.a.study_uid}",
               "-k", f"SeriesInstanceUID={series_of(data_dir, data.a.plan_uid)}", "127.0.0.1", str(port), cwd=out)
    assert proc.returncode == 0, proc.stderr
    files = list(out.iterdir())
    assert len(files) == 1
    assert dataset_bytes(files[0]) == dataset_bytes(stored_path(data_dir, data.a.plan_uid))


def stored_path(data_dir: Path, sop_uid: str) -> Path:
    import sqlite3

    rel = sqlite3.connect(data_dir / "index.sqlite").execute("SELECT path FROM instances WHERE sop_uid=?",
                                                             (sop_uid,)).fetchone()[0]
    return data_dir / "store" / rel


def test_movescu_pulls_a_whole_plan_chain_bytes_equal(station: tuple[Serve, QrData, Path, int, int],
                                                      tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if "stock" in request.node.callspec.id:
        # stock pynetdicom's requestor loop can steal a C-STORE response under load and stall the sub-operation
        # for the DIMSE timeout (engine/dimse/requestor.py; the sender in stock mode has the same race), so
        # this assertion would be flaky there: the C-MOVE SCP runs in both modes, its speed is proven fast-only
        pytest.skip("stock requestor loop: known response-stealing race (see engine/dimse/requestor.py)")
    _, data, data_dir, port, move_port = station
    out = tmp_path / "moved"
    out.mkdir()
    proc = dcm("movescu", "-v", "-S", "+xe", "+B", "-aet", "MOVESCU", "-aec", "RTSTATION", "-aem", "MOVESCU",
               "--port", str(move_port), "-od", str(out), "-k", "QueryRetrieveLevel=STUDY",
               "-k", f"StudyInstanceUID={data.a.study_uid}", "127.0.0.1", str(port), cwd=out)  # 3.6.7 ignores -od
    assert proc.returncode == 0, proc.stderr
    want = data.everything_a()
    files = list(out.iterdir())
    assert len(files) == len(want), proc.stderr[-3000:]
    ours = {uid: dataset_bytes(stored_path(data_dir, uid)) for uid in want}
    assert sorted(dataset_bytes(f) for f in files) == sorted(ours.values())


def test_only_nodes_allowed_to_retrieve_may_pull(station: tuple[Serve, QrData, Path, int, int],
                                                 tmp_path: Path) -> None:
    server, data, _, port, _ = station
    proc = dcm("getscu", "-S", "-aet", "VIEWER", "-aec", "RTSTATION", "-od", str(tmp_path),
               "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={data.a.study_uid}", "127.0.0.1",
               str(port), cwd=tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.is_file()]
    assert "refused a retrieve by VIEWER" in server.text()
    proc = dcm("movescu", "-S", "-aet", "MOVESCU", "-aec", "RTSTATION", "-aem", "STRANGER",
               "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={data.a.study_uid}", "127.0.0.1",
               str(port), cwd=tmp_path)
    assert "MoveDestinationUnknown" in proc.stderr  # 0xA801


def test_station_to_station_retrieve(station: tuple[Serve, QrData, Path, int, int], tmp_path: Path) -> None:
    """Our own client against our own server: the selective retrieve works against rtstation too (C-GET)."""
    _, data, _, port, _ = station
    cfg = write_config(tmp_path / "peer.toml", station_toml(tmp_path / "peer", free_port(), ae="GETSCU"))
    rtstation("retrieve", "--from", f"RTSTATION@127.0.0.1:{port}", "--patient", "QRA", "--plan", "A1", "--get",
              config=cfg)
    assert set(stored(tmp_path / "peer")) == data.chain_a()


def test_find_answers_names_in_any_character_set(station: tuple[Serve, QrData, Path, int, int],
                                                  tmp_path: Path) -> None:
    from helpers import storescu
    from rtstation_tui.synthetic import make_patient

    _, _, _, port, _ = station
    p = make_patient(tmp_path / "latin1", "QRLATIN", slices=1, with_dose=False)
    for f in p.files:  # the name in ISO 8859-7 (Greek): not encodable in the default character set
        ds = pydicom.dcmread(f)
        ds.SpecificCharacterSet, ds.PatientName = "ISO_IR 126", "Παπαδόπουλος^Νίκος"
        ds.save_as(f, enforce_file_format=True)
    storescu(port, p.files)
    cfg = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", free_port(), ae="FINDER"))
    rows = json.loads(rtstation("find", "--from", f"RTSTATION@127.0.0.1:{port}", "--level", "patient",
                                "--patient", "QRLATIN", "--json", config=cfg).stdout)
    assert [r["PatientName"] for r in rows] == ["Παπαδόπουλος^Νίκος"]
