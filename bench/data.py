"""Benchmark inputs (from the project's own generator) and the machine's load, recorded with every result.

Why record load: the benchmark machine is shared, absolute rates move by ±30% from minute to minute, so every
figure is reported with the load it was measured under and compared only with references from the same run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from rtstation_tui.synthetic import SynthPatient, make_ct_bulk, make_patient


def ct_bulk(work: Path, count: int, size: int) -> list[Path]:
    """``count`` CT slices of ``size``² pixels, generated once per (count, size) and reused by later runs."""
    folder = work / f"ct-{count}x{size}"
    done = folder / ".complete"
    if done.exists():
        return sorted(folder.glob("CT.*.dcm"))
    files = make_ct_bulk(folder, count, rows=size, cols=size, patient_id="BENCH", seed=f"bench-{count}-{size}")
    done.write_text("ok\n")
    return files


def rt_patient(work: Path, slices: int, size: int, label: str = "BENCH") -> SynthPatient:
    """One complete synthetic patient (CT series, RTSTRUCT, RTPLAN, RTDOSE) in a fresh folder."""
    folder = work / f"patient-{slices}x{size}-{time.monotonic_ns()}"
    return make_patient(folder, f"BENCH{slices}", slices=slices, rows=size, cols=size, label=label)


def size_mb(files: list[Path]) -> float:
    return sum(f.stat().st_size for f in files) / 1e6


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as fh:
        parts = [int(x) for x in fh.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return sum(parts), idle


def machine_load(window: float = 2.0) -> dict[str, float]:
    """CPU busy fraction over ``window`` seconds (before we start anything) and the load averages."""
    total0, idle0 = _cpu_times()
    time.sleep(window)
    total1, idle1 = _cpu_times()
    busy = 1.0 - (idle1 - idle0) / max(1, total1 - total0)
    one, five, fifteen = os.getloadavg()
    return {"cpus": float(os.cpu_count() or 0), "busy_pct": round(100 * busy, 1), "loadavg_1m": round(one, 2),
            "loadavg_5m": round(five, 2), "loadavg_15m": round(fifteen, 2)}


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)
