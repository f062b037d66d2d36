"""Plan-ready latency: from the end of the export (last C-STORE answered, association released) to *ready*.

Why in-process: the Station's events carry wall-clock stamps (``Event.at``), so the gap between the receiver's
``AssociationClosed`` (posted when the peer's A-RELEASE arrives, i.e. right after the last C-STORE response went
out) and ``BundleReady`` is measured without log-parsing or clock resolution issues. The sender is DCMTK storescu
in its own process, as a TPS export would be.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from rtstation_tui.engine.config.model import load_config
from rtstation_tui.engine.events import AssociationClosed, BundleReady
from rtstation_tui.engine.station import Station

from . import peers
from .data import loadavg, rt_patient


@dataclass
class LatencyRow:
    durability: str
    slices: int
    instances: int
    send_s: list[float] = field(default_factory=list)
    ready_after_close_s: list[float] = field(default_factory=list)
    ready_after_sender_exit_s: list[float] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.ready_after_close_s)

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "median_ready_after_close_s": self.median}


async def _until(events: list[Any], kind: type, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in events if isinstance(e, kind)]
        if found:
            return found[-1]
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: no {kind.__name__} within {timeout} s")
        await asyncio.sleep(0.005)


async def _one(work: Path, files: list[Path], plan_uid: str, durability: str) -> tuple[float, float, float]:
    port = peers.free_port()
    data_dir = work / "var"
    shutil.rmtree(data_dir, ignore_errors=True)
    cfg = work / "latency.toml"
    cfg.write_text(peers.rtstation_toml(data_dir, port, durability, settle=60))
    station = Station(load_config(cfg))
    events: list[Any] = []
    station.subscribe(events.extend)
    await station.start()
    try:
        send_s = await asyncio.to_thread(peers.storescu, port, "RTSTATION", files)
        exited = time.time()
        ready = await _until(events, BundleReady, 60)
        closed = await _until(events, AssociationClosed, 5)
        if ready.plan_uid != plan_uid or not ready.complete:
            raise SystemExit(f"bench: unexpected ready event {ready}")
        return send_s, ready.at - closed.at, ready.at - exited
    finally:
        await station.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def run(work: Path, slices: int, size: int, rounds: int, durabilities: tuple[str, ...] = ("os", "fsync"),
        say: Callable[[str], None] = print) -> list[LatencyRow]:
    work.mkdir(parents=True, exist_ok=True)
    patient = rt_patient(work, slices, size)
    files = patient.files
    rows = {d: LatencyRow(d, slices, len(files)) for d in durabilities}
    for r in range(rounds):
        for d in durabilities:
            load = loadavg()
            send_s, after_close, after_exit = asyncio.run(_one(work, files, patient.plan_uid, d))
            row = rows[d]
            row.send_s.append(send_s)
            row.ready_after_close_s.append(after_close)
            row.ready_after_sender_exit_s.append(after_exit)
            row.loads.append(load)
            say(f"  round {r + 1}/{rounds} plan ready ({d}): export {send_s:.2f} s, ready {after_close * 1000:.0f} ms "
                f"after the association closed (load {load})")
    shutil.rmtree(patient.ct[0].parent.parent, ignore_errors=True)
    return list(rows.values())
