"""[QR] against DCMTK dcmqrscp, whose C-FIND answers neither RTPlanLabel nor reference sequences: the selective
retrieve falls back to pulling the plans (to read labels) and the doses (to read what they reference), says so,
and still never pulls the other plan's structure set; C-MOVE and C-GET."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from helpers import free_port, rtstation, station_toml, write_config
from qr_support import DcmQrScp, QrData, make_qr_data, stored

AE = "RTSTATION"


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DcmQrScp, QrData, int]]:
    base = tmp_path_factory.mktemp("dcmqrscp")
    port = free_port()
    data = make_qr_data(base / "data")
    scp = DcmQrScp(base, {AE: port}).start()
    try:
        scp.store([*data.a.files, *(p for p in (data.b.struct, data.b.plan, data.b.dose) if p), *data.c.files])
        yield scp, data, port
    finally:
        scp.stop()


@pytest.mark.parametrize("method", ["--move", "--get"])
def test_selective_retrieve_without_answered_labels_or_references(peer: tuple[DcmQrScp, QrData, int],
                                                                   tmp_path: Path, method: str) -> None:
    scp, data, port = peer
    cfg = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", port, ae=AE))
    proc = rtstation("retrieve", "--from", scp.spec, "--patient", "QRA", "--plan", "A1", "--approved-only", method,
                     "--json", config=cfg)
    report = json.loads(proc.stdout)
    assert [p["label"] for p in report["plans"]] == ["A1"]
    # plan B2 (for its label) and its dose (for its reference) had to come; B2's structure set did not
    assert set(stored(tmp_path / "var")) == data.chain_a() | {data.b.plan_uid, data.b.dose_uid}
    assert report["pulled_to_read"] == 2
    tree = json.loads(rtstation("show", "--json", config=cfg).stdout)
    assert {p["label"]: p["complete"] for p in tree[0]["plans"]} == {"A1": True, "B2": False}
    again = json.loads(rtstation("retrieve", "--from", scp.spec, "--patient", "QRA", "--plan", "A1", method,
                                 "--json", config=cfg).stdout)
    assert again["stored"] == 0 and again["skipped"] >= len(data.chain_a())
