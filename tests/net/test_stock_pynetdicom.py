"""Fast paths off (``RTSTATION_STOCK_PYNETDICOM=1``): the station receives and sends with pynetdicom's own loops and
temp files, and still stores and sends the same bytes. In-process, so the test can see whose loops ran.

The end-to-end runs with real peers in both modes are ``test_receive.py`` (breast set from storescu, byte for
byte) and ``test_sender.py`` (B1 to storescp and Orthanc); this file proves the stock code is what ran.
"""

from __future__ import annotations

import asyncio
import re
import socket
import tempfile
from pathlib import Path

import pytest
from pynetdicom import AE, dimse_messages
from pynetdicom.association import Association

from helpers import PEER_ENV, DATA, dataset_bytes, dcmtk, free_port, station_toml, stored_files, write_config
from peers import StoreSCP
from waiting import until
from rtstation_tui.engine.config.model import load_config
from rtstation_tui.engine.config.nodes import NodeConfig
from rtstation_tui.engine.dimse.manifest import INTERNALS, resolve
from rtstation_tui.engine.outbound.scu import associate, close, contexts_for, store
from rtstation_tui.engine.station import Station

CT = DATA / "breast_boost" / "ct.0.dcm"
CT_CLASS, IMPLICIT = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2"


@pytest.fixture
def stock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTSTATION_STOCK_PYNETDICOM", "1")


async def _station(tmp_path: Path, min_free_mb: int = 0) -> tuple[Station, int]:
    port = free_port()
    text = station_toml(tmp_path / "var", port).replace("min_free_mb = 0", f"min_free_mb = {min_free_mb}")
    config = load_config(write_config(tmp_path / "rt.toml", text))
    assert not config.network.fast_paths
    station = Station(config)
    await station.start()
    return station, port


def _is_stock(bound: object, function: object) -> bool:
    return getattr(bound, "__func__", None) is function


async def test_receive_runs_the_stock_loops_and_stores_the_bytes_sent(stock, tmp_path):
    station, port = await _station(tmp_path)
    try:
        assert dimse_messages.NamedTemporaryFile is tempfile.NamedTemporaryFile  # no spool guard
        ae = AE("STOCKSCU")
        ae.add_requested_context(CT_CLASS, IMPLICIT)
        assoc = await asyncio.to_thread(ae.associate, "127.0.0.1", port, ae_title="RTSTATION")
        assert assoc.is_established
        [server_side] = station.receiver._server.active_associations
        live = {"Association": server_side, "DULServiceProvider": server_side.dul,
                "DIMSEServiceProvider": server_side.dimse}
        replaced = [i for i in INTERNALS if i.kind == "replaced" and i.fast_path and i.name.split(".")[-2] in live]
        assert len(replaced) >= 6
        for item in replaced:  # every per-association replacement the manifest lists is pynetdicom's own here
            assert _is_stock(getattr(live[item.name.split(".")[-2]], item.last), resolve(item.name)), item.name
        assert server_side.dul._target.__name__ != "dul_reactor"
        assert server_side.dul.socket.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert (await asyncio.to_thread(assoc.send_c_store, CT)).Status == 0
        await asyncio.to_thread(assoc.release)
        [stored] = await until(lambda: stored_files(tmp_path / "var"), what="the stored CT")
        assert dataset_bytes(stored) == dataset_bytes(CT)
        assert not list((tmp_path / "var" / "tmp").iterdir()), "pynetdicom's temp file was moved, not left"
    finally:
        await station.stop()


async def test_stock_mode_still_answers_a700_when_the_disk_is_below_min_free_mb(stock, tmp_path):
    """What stock mode keeps of the disk-full handling: the min_free_mb check before anything is placed."""
    station, port = await _station(tmp_path, min_free_mb=100_000_000)
    try:
        proc = await asyncio.to_thread(_storescu, port, [CT])
        assert re.findall(r"Received Store Response \(([^)]*)\)", proc.stderr) == ["Refused: OutOfResources"]
        assert not stored_files(tmp_path / "var")
    finally:
        await station.stop()


def _storescu(port: int, files: list[Path]):  # type: ignore[no-untyped-def]
    import subprocess

    return subprocess.run([dcmtk("storescu"), "-v", "-nh", "-xi", "-aet", "TPS", "-aec", "RTSTATION", "127.0.0.1",
                           str(port), *map(str, files)], env=PEER_ENV, capture_output=True, text=True, timeout=60)


def test_send_runs_the_stock_association_loop_and_delivers_the_bytes(stock, tmp_path):
    config = load_config(write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", free_port())))
    scp = StoreSCP(tmp_path / "scp").start()
    try:
        node = NodeConfig(name="scp", ae_title=scp.aet, host="127.0.0.1", port=scp.port)
        assoc = associate(node, "RTSTATION", contexts_for([(CT_CLASS, IMPLICIT)]),
                          fast_paths=config.network.fast_paths)
        try:
            assert _is_stock(assoc._run_reactor, Association._run_reactor)
            assert assoc.dul._run_loop_delay == 0.001  # pynetdicom's own
            assert assoc.dul.socket.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            out = store(assoc, str(CT), CT_CLASS, IMPLICIT, CT.stat().st_size, 10, {(CT_CLASS, IMPLICIT)})
            assert out.ok and out.status == 0
        finally:
            close(assoc)
        [received] = scp.files()
        assert dataset_bytes(received) == dataset_bytes(CT)
    finally:
        scp.stop()
