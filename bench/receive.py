"""Receive throughput: DCMTK storescu sends the same files to each receiver, rounds interleaved.

Why interleaved rounds and per-round ratios: on a shared 2-core VM, DCMTK's own rate moves by a factor of two from
one minute to the next (page cache, other users' test suites). Each round runs every receiver once, back to back,
in a rotated order; a receiver's ratio is the median over rounds of (its rate / DCMTK's rate in that round).
"""

from __future__ import annotations

import shutil
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from . import peers
from .data import loadavg, size_mb

REFERENCE = "dcmtk"


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    start: Callable[[Path], peers.Running]


TARGETS = [
    Target("dcmtk", "DCMTK storescp (PDU 128K)", peers.dcmtk_storescp),
    Target("dcmtk-fork", "DCMTK storescp --fork", lambda out: peers.dcmtk_storescp(out, fork=True)),
    Target("orthanc", "Orthanc 1.10", peers.orthanc),
    Target("pynetdicom", "pynetdicom storescp app", peers.pynetdicom_storescp),
    Target("rts-os", 'rtstation serve "os"', lambda out: peers.rtstation_serve(out, "os")),
    Target("rts-fsync", 'rtstation serve "fsync"', lambda out: peers.rtstation_serve(out, "fsync")),
]


@dataclass
class ReceiveRow:
    dataset: str
    key: str
    label: str
    instances: int
    megabytes: float
    seconds: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    peak_rss_mb: list[float] = field(default_factory=list)
    user_ms: list[float] = field(default_factory=list)  # CPU per instance during the transfer (load-robust)
    sys_ms: list[float] = field(default_factory=list)
    streams: int = 1  # concurrent storescu associations sharing the files

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def inst_per_s(self) -> float:
        return self.instances / self.median_s

    @property
    def mb_per_s(self) -> float:
        return self.megabytes / self.median_s

    @property
    def cpu_ms(self) -> tuple[float, float]:
        """Median (user, system) CPU milliseconds per instance."""
        if not self.user_ms:
            return float("nan"), float("nan")
        return statistics.median(self.user_ms), statistics.median(self.sys_ms)

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios) if self.ratios else float("nan")

    def as_json(self) -> dict[str, object]:
        d = asdict(self)
        d.update(cpu_user_ms=self.cpu_ms[0], cpu_sys_ms=self.cpu_ms[1], median_s=self.median_s, inst_per_s=self.inst_per_s, mb_per_s=self.mb_per_s, ratio_to_dcmtk=self.ratio)
        return d


def run(dataset: str, files: list[Path], work: Path, rounds: int, keys: list[str] | None = None,
        say: Callable[[str], None] = print, streams: int = 1) -> list[ReceiveRow]:
    """Every target receives ``files`` once per round (over ``streams`` concurrent associations); one row per
    target. CPU per instance is the receiver process's user and system time across the transfer alone."""
    targets = [t for t in TARGETS if t.key == REFERENCE or (t.key in keys if keys is not None else t.key != "dcmtk-fork")]
    mb = size_mb(files)
    rows = {t.key: ReceiveRow(dataset, t.key, t.label, len(files), mb, streams=streams) for t in targets}
    for r in range(rounds):
        order = targets[r % len(targets):] + targets[:r % len(targets)]
        rates: dict[str, float] = {}
        for t in order:
            out = work / f"rx-{t.key}-{r}"
            shutil.rmtree(out, ignore_errors=True)
            running = t.start(out)
            try:
                load = loadavg()
                user0, sys0 = running.cpu_s()
                seconds = peers.storescu(running.port, running.aet, files, streams=streams)
                got = running.count()
                user1, sys1 = running.cpu_s()
                rows[t.key].user_ms.append(round((user1 - user0) * 1000 / len(files), 3))
                rows[t.key].sys_ms.append(round((sys1 - sys0) * 1000 / len(files), 3))
                if got < len(files):
                    raise SystemExit(f"bench: {t.label} stored {got} of {len(files)} files (see {running.log})")
                rows[t.key].peak_rss_mb.append(round(running.peak_rss_mb(), 1))
            finally:
                running.stop()
            shutil.rmtree(out, ignore_errors=True)
            rows[t.key].seconds.append(seconds)
            rows[t.key].loads.append(load)
            rates[t.key] = len(files) / seconds
            user, system = rows[t.key].user_ms[-1], rows[t.key].sys_ms[-1]
            say(f"  round {r + 1}/{rounds} {dataset}: {t.label:28s} {seconds:6.2f} s {len(files) / seconds:7.0f} inst/s"
                f"  CPU/inst {user:.3f}+{system:.3f} ms  (load {load})")
        for key, rate in rates.items():
            rows[key].ratios.append(rate / rates[REFERENCE])
    return list(rows.values())
