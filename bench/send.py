"""Send rows: ``rtstation send`` vs DCMTK storescu to DCMTK storescp, and one plan to 1 vs 3 storescp nodes.

Issue 8's targets: send ≥ 0.5× storescu; 3 targets ≤ 1.3× one target. The plan is a complete synthetic patient
imported into a station (not timed). ``rtstation send --plan LABEL --to AET@host:port[,...] --wait --force`` runs
the sender in its own process, as an operator would; two times are recorded:

- *wall*: the whole command, Python start-up and imports included (what the operator waits for);
- *transfer*: from the job's creation in the queue to the last instance's acknowledgement (``items.sent_at``),
  which is what compares with storescu's few-millisecond start-up. Ratios use the transfer time.
"""

from __future__ import annotations

import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import peers
from .data import loadavg, rt_patient


@dataclass
class SendRow:
    label: str
    instances: int
    transfer_s: list[float] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)  # to storescu (send rows) or to one target (3 targets)
    loads: list[float] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "median_transfer_s": statistics.median(self.transfer_s),
                "median_wall_s": statistics.median(self.wall_s) if self.wall_s else None,
                "ratio": statistics.median(self.ratios) if self.ratios else None}


def _station(work: Path, files_dir: Path) -> Path:
    """A data_dir holding the patient (imported through the normal import path); returns its config."""
    data_dir = work / "send-station"
    shutil.rmtree(data_dir, ignore_errors=True)
    cfg = work / "send-station.toml"
    cfg.write_text(peers.rtstation_toml(data_dir, peers.free_port(), "os"))
    proc = subprocess.run([sys.executable, "-m", "rtstation_tui", "import", str(files_dir), "--config", str(cfg)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"bench: import for the send rows failed:\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")
    return cfg


def _send(cfg: Path, label: str, targets: list[peers.Running]) -> tuple[float, float]:
    """(transfer seconds, wall seconds) of one ``rtstation send`` to ``targets``."""
    to = ",".join(f"{t.aet}@127.0.0.1:{t.port}" for t in targets)
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "rtstation_tui", "send", "--plan", label, "--to", to, "--wait",
                           "--force", "--json", "--config", str(cfg)], capture_output=True, text=True, timeout=1800)
    wall = time.time() - t0
    if proc.returncode != 0:
        raise SystemExit(f"bench: rtstation send failed ({proc.returncode}):\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")
    queue = cfg.parent / "send-station" / "queue.sqlite"
    with sqlite3.connect(queue) as conn:
        job = conn.execute("SELECT max(id) FROM jobs").fetchone()[0]
        ids = [r[0] for r in conn.execute("SELECT id FROM jobs WHERE id > ?", (job - len(targets),))]
        marks = ",".join("?" * len(ids))
        created = conn.execute(f"SELECT min(created) FROM jobs WHERE id IN ({marks})", ids).fetchone()[0]
        last = conn.execute(f"SELECT max(sent_at) FROM items WHERE job_id IN ({marks})", ids).fetchone()[0]
        states = {r[0] for r in conn.execute(f"SELECT state FROM jobs WHERE id IN ({marks})", ids)}
    if states != {"done"}:
        raise SystemExit(f"bench: send jobs ended {states}")
    return last - created, wall


def run(work: Path, slices: int, size: int, rounds: int, say: Callable[[str], None] = print) -> list[dict[str, Any]]:
    work.mkdir(parents=True, exist_ok=True)
    patient = rt_patient(work, slices, size, label="SENDBENCH")
    files = patient.files
    folder = patient.ct[0].parent.parent
    cfg = _station(work, folder)
    rows = {k: SendRow(lbl, len(files)) for k, lbl in [
        ("storescu", "storescu -> storescp"), ("send1", "rtstation send -> storescp"),
        ("send3", "rtstation send -> 3 x storescp")]}
    for r in range(rounds):
        load = loadavg()
        outs = [work / f"tx-{r}-{i}" for i in range(3)]
        scps = [peers.dcmtk_storescp(o) for o in outs]
        try:
            ref = peers.storescu(scps[0].port, scps[0].aet, files)
            one, one_wall = _send(cfg, "SENDBENCH", scps[:1])
            three, three_wall = _send(cfg, "SENDBENCH", scps)
            counts = [s.count() for s in scps]
        finally:
            for s in scps:
                s.stop()
            for o in outs:
                shutil.rmtree(o, ignore_errors=True)
        if min(counts) < len(files):  # storescp names files by SOP UID: a second copy replaces the first
            raise SystemExit(f"bench: storescp nodes hold {counts} files, expected {len(files)} each")
        for key, t, wall, ratio in [("storescu", ref, ref, 1.0), ("send1", one, one_wall, ref / one),
                                    ("send3", three, three_wall, three / one)]:
            row = rows[key]
            row.transfer_s.append(t)
            row.wall_s.append(wall)
            row.ratios.append(ratio)
            row.loads.append(load)
        say(f"  round {r + 1}/{rounds} send {len(files)} objects: storescu {ref:.2f} s, rtstation send {one:.2f} s "
            f"(wall {one_wall:.2f} s), 3 targets {three:.2f} s (load {load})")
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(work / "send-station", ignore_errors=True)
    return [row.as_json() for row in rows.values()]
