"""The disk fills up in the middle of a transfer: the C-STORE is answered 0xA700, nothing is stored, the space is
freed at once and the same association carries on. Simulated with a file-size limit (RLIMIT_FSIZE) on the real
``rtstation serve`` process: a write past it fails with EFBIG, as one fails with ENOSPC on a full disk."""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import PEER_ENV, dataset_bytes, dcmtk, free_port, station_toml, stored_files, wait_for, write_config

from rtstation_tui.synthetic import make_ct_bulk

LIMIT = 6_000_000  # bytes: a 64×64 CT and the index's WAL fit, a 2048×2048 CT (8.4 MB) does not


def limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def test_disk_full_mid_transfer_answers_a700_and_the_association_goes_on(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "var"
    cfg = write_config(tmp_path / "rt.toml", station_toml(data_dir, port))
    small = make_ct_bulk(tmp_path / "small", 4, rows=64, cols=64, patient_id="SMALL")
    big = make_ct_bulk(tmp_path / "big", 1, rows=2048, cols=2048, patient_id="BIG")
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "rtstation_tui", "serve", "--config", str(cfg)],
                                  stdout=log, stderr=subprocess.STDOUT, preexec_fn=limit_file_size)
    try:
        wait_for(lambda: "serving" in log_path.read_text(), 30, what="serve to start")
        files = [small[0], small[1], big[0], small[2], small[3]]
        proc = subprocess.run([dcmtk("storescu"), "-v", "-nh", "-xi", "-aet", "TPS", "-aec", "RTSTATION", "127.0.0.1",
                               str(port), *map(str, files)], env=PEER_ENV, capture_output=True, text=True,
                              timeout=60)
        responses = re.findall(r"Received Store Response \(([^)]*)\)", proc.stderr)
        assert responses == ["Success", "Success", "Refused: OutOfResources", "Success", "Success"], proc.stderr
        wait_for(lambda: "released: 4 instances" in log_path.read_text(), what="the association's closing line")
        text = log_path.read_text()
        assert "no space to receive" in text and "refused with 0xA700, nothing stored" in text
        assert "Exception in thread" not in text and "Traceback" not in text
        stored = {dataset_bytes(f) for f in stored_files(data_dir)}
        assert stored == {dataset_bytes(f) for f in small}  # the big one is nowhere under a real name
        assert not list((data_dir / "tmp").iterdir()), "the half-written spool file must be gone"
        audit = [json.loads(line) for f in (data_dir / "logs").glob("audit-*.jsonl")
                 for line in f.read_text().splitlines()]
        [refused] = [r for r in audit if r["kind"] == "store_refused"]
        assert refused["status"] == "0xA700" and "File too large" in refused["reason"]
    finally:
        server.kill()
        server.wait()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the death is the point
async def test_an_association_whose_connection_thread_dies_is_still_closed_and_logged(tmp_path, monkeypatch, caplog):
    """Any other spool write error (EIO: a failing disk) still kills pynetdicom's connection thread and ends the
    association without an event; the receiver notices at the next association and closes its books."""
    import asyncio
    import errno
    import logging
    import tempfile

    from pynetdicom import dimse_messages

    from helpers import DATA, storescu
    from rtstation_tui.engine.dimse import cstore_wire
    from rtstation_tui.engine.config.model import load_config
    from rtstation_tui.engine.events import AssociationClosed
    from rtstation_tui.engine.station import Station

    class FailingSpool:
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            self._inner = tempfile.NamedTemporaryFile(*args, **kwargs)
            self.name = self._inner.name

        def write(self, data: bytes) -> int:
            raise OSError(errno.EIO, "Input/output error")

        def __getattr__(self, name):  # type: ignore[no-untyped-def]
            return getattr(self._inner, name)

    port = free_port()
    station = Station(load_config(write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", port))))
    events: list = []
    station.subscribe(events.extend)
    await station.start()
    try:
        monkeypatch.setattr(dimse_messages, "NamedTemporaryFile", FailingSpool)
        monkeypatch.setattr(cstore_wire.TempDataset, "write", FailingSpool.write)  # the fast path's own spool files
        failed = await asyncio.to_thread(storescu, port, [DATA / "breast_boost" / "ct.0.dcm"], aet="DYING",
                                         check=False)
        assert failed.returncode != 0
        monkeypatch.undo()
        with caplog.at_level(logging.INFO, logger="rtstation"):
            await asyncio.to_thread(storescu, port, [DATA / "breast_boost" / "ct.0.dcm"], aet="NEXT")
            deadline = asyncio.get_running_loop().time() + 20
            while len([e for e in events if isinstance(e, AssociationClosed)]) < 2:
                assert asyncio.get_running_loop().time() < deadline, "no AssociationClosed for both"
                await asyncio.sleep(0.02)
        lost = next(e for e in events if isinstance(e, AssociationClosed) and e.calling_ae == "DYING")
        assert lost.aborted and lost.instances == 0
        assert "from DYING@127.0.0.1" in caplog.text and "lost (its connection thread failed" in caplog.text
    finally:
        await station.stop()
