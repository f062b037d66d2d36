"""Send rows: ``rtstation send`` vs DCMTK storescu to DCMTK storescp, and one plan to 1 vs 3 storescp nodes.

Issue 17's targets: send ≥ 0.8× storescu; 3 targets ≤ 1.3× one target (ratios of the same round, median of the
rounds). The plan is a complete synthetic patient imported into a station (not timed). ``rtstation send --plan
LABEL --to AET@host:port[,...] --wait --force`` runs the sender in its own process, as an operator would; recorded:

- *wall*: the whole command, Python start-up and imports included (what the operator waits for);
- *transfer*: from the job's creation in the queue to the last instance's acknowledgement (``items.sent_at``),
  which is what compares with storescu's few-millisecond start-up. Ratios use the transfer time.
- *CPU per instance* (user + sys of the sending process, from ``wait4``): for ``rtstation send`` the CPU of a send
  that finds nothing to send (start-up, imports, queue) is subtracted first. The machine is shared, so wall ratios
  move with the load; CPU per instance hardly does, and says what the sender itself costs.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
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
    cpu_ms_per_instance: list[float] = field(default_factory=list)
    # 3 targets only: its time over DCMTK's three storescu in the same round (the same three receivers on the same
    # cores): the figure that says what the sender costs when the machine, not the sender, sets the pace
    to_dcmtk3: list[float] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "median_transfer_s": statistics.median(self.transfer_s),
                "median_wall_s": statistics.median(self.wall_s) if self.wall_s else None,
                "ratio": statistics.median(self.ratios) if self.ratios else None,
                "median_cpu_ms_per_instance": statistics.median(self.cpu_ms_per_instance)
                if self.cpu_ms_per_instance else None,
                "median_to_dcmtk3": statistics.median(self.to_dcmtk3) if self.to_dcmtk3 else None}


@dataclass(frozen=True)
class Ran:
    wall_s: float
    cpu_s: float  # user + sys of the process (and its children)
    returncode: int
    output: str


def run_timed(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 1800) -> Ran:
    """Run ``cmd`` to its end; its wall time and its own CPU time (``os.wait4``: not other processes' load)."""
    t0 = time.perf_counter()
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            assert proc.stdout is not None
            out = proc.stdout.read()  # until the process closes its output (it exits)
            _pid, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return Ran(time.perf_counter() - t0, usage.ru_utime + usage.ru_stime, proc.returncode,
               out.decode(errors="replace"))


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


def _send_cmd(cfg: Path, label: str, targets: list[peers.Running], force: bool = True) -> list[str]:
    to = ",".join(f"{t.aet}@127.0.0.1:{t.port}" for t in targets)
    return [sys.executable, "-m", "rtstation_tui", "send", "--plan", label, "--to", to, "--wait",
            *(["--force"] if force else []), "--json", "--config", str(cfg)]


def _send(cfg: Path, label: str, targets: list[peers.Running]) -> tuple[float, Ran]:
    """(transfer seconds, the run) of one ``rtstation send`` to ``targets``."""
    ran = run_timed(_send_cmd(cfg, label, targets))
    if ran.returncode != 0:
        raise SystemExit(f"bench: rtstation send failed ({ran.returncode}):\n{ran.output[-3000:]}")
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
    return last - created, ran


def _fixed_cpu(cfg: Path, label: str, target: peers.Running) -> float:
    """CPU seconds of an ``rtstation send`` that has nothing to send (the node has it all): start-up and queue."""
    ran = run_timed(_send_cmd(cfg, label, [target], force=False))
    if ran.returncode != 0:
        raise SystemExit(f"bench: rtstation send (nothing to send) failed ({ran.returncode}):\n{ran.output[-3000:]}")
    return ran.cpu_s


def _storescu(target: peers.Running, files: list[Path]) -> Ran:
    cmd = [peers.tool(peers.DCMTK / "storescu"), "-aet", "BENCHSCU", "-aec", target.aet, "127.0.0.1",
           str(target.port), *map(str, files)]
    ran = run_timed(cmd, env=peers.PEER_ENV)
    if ran.returncode != 0:
        raise SystemExit(f"bench: storescu to {target.aet}:{target.port} failed: {ran.output[-2000:]}")
    return ran


def _storescu_parallel(targets: list[peers.Running], files: list[Path]) -> float:
    """Seconds for one storescu per target, all started at once, until the last one exits (DCMTK's own 3-node
    figure: what this machine allows when the receivers share the same two cores)."""
    cmd = [peers.tool(peers.DCMTK / "storescu"), "-aet", "BENCHSCU"]
    t0 = time.perf_counter()
    procs = [subprocess.Popen([*cmd, "-aec", t.aet, "127.0.0.1", str(t.port), *map(str, files)], env=peers.PEER_ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for t in targets]
    codes = [p.wait(1800) for p in procs]
    if any(codes):
        raise SystemExit(f"bench: parallel storescu failed: exit codes {codes}")
    return time.perf_counter() - t0


def run(work: Path, slices: int, size: int, rounds: int, say: Callable[[str], None] = print) -> list[dict[str, Any]]:
    work.mkdir(parents=True, exist_ok=True)
    patient = rt_patient(work, slices, size, label="SENDBENCH")
    files = patient.files
    folder = patient.ct[0].parent.parent
    cfg = _station(work, folder)
    n = len(files)
    rows = {k: SendRow(lbl, n) for k, lbl in [
        ("storescu", "storescu -> storescp"), ("send1", "rtstation send -> storescp"),
        ("send3", "rtstation send -> 3 x storescp"), ("storescu3", "3 x storescu -> 3 x storescp")]}
    for r in range(rounds):
        load = loadavg()
        outs = [work / f"tx-{r}-{i}" for i in range(3)]
        scps = [peers.dcmtk_storescp(o) for o in outs]
        try:
            ref = _storescu(scps[0], files)
            one, one_ran = _send(cfg, "SENDBENCH", scps[:1])
            three, three_ran = _send(cfg, "SENDBENCH", scps)
            ref3 = _storescu_parallel(scps, files)
            fixed = _fixed_cpu(cfg, "SENDBENCH", scps[0])
            counts = [s.count() for s in scps]
        finally:
            for s in scps:
                s.stop()
            for o in outs:
                shutil.rmtree(o, ignore_errors=True)
        if min(counts) < n:  # storescp names files by SOP UID: a second copy replaces the first
            raise SystemExit(f"bench: storescp nodes hold {counts} files, expected {n} each")
        # send3: the CPU the two extra nodes added, per instance and node (start-up cancels out exactly)
        cpu = {"storescu": ref.cpu_s / n, "send1": (one_ran.cpu_s - fixed) / n,
               "send3": (three_ran.cpu_s - one_ran.cpu_s) / (2 * n), "storescu3": ref.cpu_s / n}
        for key, t, wall, ratio in [("storescu", ref.wall_s, ref.wall_s, 1.0),
                                    ("send1", one, one_ran.wall_s, ref.wall_s / one),
                                    ("send3", three, three_ran.wall_s, three / one),
                                    ("storescu3", ref3, ref3, ref3 / ref.wall_s)]:
            row = rows[key]
            row.transfer_s.append(t)
            row.wall_s.append(wall)
            row.ratios.append(ratio)
            row.loads.append(load)
            row.cpu_ms_per_instance.append(cpu[key] * 1000)
        rows["send3"].to_dcmtk3.append(three / ref3)
        say(f"  round {r + 1}/{rounds} send {n} objects: storescu {ref.wall_s:.2f} s ({cpu['storescu'] * 1e3:.2f} "
            f"ms CPU/inst), rtstation send {one:.2f} s (wall {one_ran.wall_s:.2f} s, {cpu['send1'] * 1e3:.2f} ms "
            f"CPU/inst), 3 targets {three:.2f} s ({three / one:.2f}x; {cpu['send3'] * 1e3:.2f} ms CPU/inst·node), "
            f"3 x storescu {ref3:.2f} s ({ref3 / ref.wall_s:.2f}x; ours {three / ref3:.2f}x theirs) (load {load})")
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(work / "send-station", ignore_errors=True)
    return [row.as_json() for row in rows.values()]
