"""Make the legacy data_dir of ``tests/unit/test_schema.py`` with the code of a previous release (see README.md).

Run it from a checkout of that release (its venv, its ``tests/`` helpers), never from the current code:
    python tests/data/legacy/make_legacy.py OUT_DIR
What it does, with the release's own Station in this process and real peers:
- patient LEGACY1 arrives through the watched import folder (``after_import = "keep"``: kept-file rows);
- patient LEGACY2 is received over the network from DCMTK storescu;
- the rule "everything" sends both plans to PACS, a small SCP that accepts CT/RTSTRUCT/RTPLAN but not RTDOSE (no
  presentation context: a permanent failure), so each job has delivered rows and a failed one and ends "failed";
- the rule service leaves its rule marks; then the databases are checkpointed (no -wal files) and the old
  ``show --json`` / ``queue --json`` / ``queue show N --json`` outputs are stored beside them.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCP = """
import socket, sys
from pynetdicom import AE, evt
from pynetdicom.sop_class import (CTImageStorage, RTPlanStorage, RTStructureSetStorage, Verification)
def on_open(event):
    event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
def on_store(event):
    return 0
ae = AE("PACS")
for sop_class in (Verification, CTImageStorage, RTPlanStorage, RTStructureSetStorage):
    ae.add_supported_context(sop_class)
ae.start_server(("127.0.0.1", int(sys.argv[1])), block=True,
                evt_handlers=[(evt.EVT_CONN_OPEN, on_open), (evt.EVT_C_STORE, on_store)])
"""


def main(out: Path) -> None:
    repo = Path.cwd()
    sys.path.insert(0, str(repo / "tests"))
    from helpers import echoscu, free_port, station_toml, wait_for, write_config
    from rulestools import node_toml, rule_toml

    work = out / "work"
    shutil.rmtree(out, ignore_errors=True)
    (work / "inbox").mkdir(parents=True)
    scp_port, port = free_port(), free_port()
    scp = subprocess.Popen([sys.executable, "-c", SCP, str(scp_port)])
    try:
        wait_for(lambda: echoscu(scp_port, aec="PACS").returncode == 0, 30, what="the PACS SCP")
        extra = (f'[import]\nfolder = "{work / "inbox"}"\nafter_import = "keep"\nsettle_seconds = 0.2\n\n'
                 + node_toml("PACS", f"PACS@127.0.0.1:{scp_port}", retry="") + rule_toml("everything", ["PACS"]))
        text = station_toml(work / "var", port, extra=extra).replace("settle_seconds = 30", "settle_seconds = 0.5")
        config = write_config(work / "rt.toml", text)
        asyncio.run(run_station(config, port, work))
    finally:
        scp.terminate()
        scp.wait(10)
    data_dir = out / "data_dir"
    shutil.copytree(work / "var", data_dir, ignore=shutil.ignore_patterns("*.sqlite-wal", "*.sqlite-shm", "tmp",
                                                                          "station.lock", "logs"))
    store_outputs(repo, data_dir, out)
    shutil.rmtree(work)


async def run_station(config: Path, port: int, work: Path) -> None:
    from helpers import storescu
    from waiting import until

    from rtstation_tui.engine.config.model import load_config
    from rtstation_tui.engine.station import Station
    from rtstation_tui.synthetic import make_patient

    first = make_patient(work / "p1", "LEGACY1", name="LEGACY^ONE", label="L1", slices=2, rows=8, cols=8,
                         seed="legacy-1")
    second = make_patient(work / "p2", "LEGACY2", name="LEGACY^TWO", label="L2", slices=2, rows=8, cols=8,
                          seed="legacy-2")
    station = Station(load_config(config))
    await station.start()
    try:
        for f in first.files:
            shutil.copy(f, work / "inbox" / f.name)
        await asyncio.to_thread(storescu, port, second.files)
        await until(lambda: [j.state for j in station.sender.queue.jobs()] == ["failed", "failed"], timeout=120,
                    what="both rule jobs sent (RTDOSE not accepted)")
        await until(lambda: count(station, "import_kept") == len(first.files), what="the kept files remembered")
        await until(lambda: count(station, "rule_marks") == 2, what="both rule marks")
    finally:
        await station.stop()
    for db in (work / "var" / "index.sqlite", work / "var" / "queue.sqlite"):
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def count(station: object, table: str) -> int:
    return int(station.index.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[attr-defined]


def store_outputs(repo: Path, data_dir: Path, out: Path) -> None:
    """What the release printed for its own data_dir (run on a scratch copy: opening writes WAL files)."""
    scratch = out / "scratch"
    shutil.copytree(data_dir, scratch / "data_dir")
    config = scratch / "rt.toml"
    config.write_text(f'[station]\ndata_dir = "{scratch / "data_dir"}"\n', encoding="utf-8")
    expected = {}
    for name, args in {"show": ["show", "--json"], "queue": ["queue", "--json"],
                       "job1": ["queue", "show", "1", "--json"], "job2": ["queue", "show", "2", "--json"]}.items():
        proc = subprocess.run([sys.executable, "-m", "rtstation_tui", *args, "--config", str(config)],
                              capture_output=True, text=True, check=True, cwd=repo)
        expected[name] = json.loads(proc.stdout)
    (out / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    shutil.rmtree(scratch)


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
