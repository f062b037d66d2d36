"""Metrics benchmarks ([METRICS]): a filter over 10,000 plans, metrics of a 200-slice patient after it is ready,
and the receive rate while the metrics worker computes, against the same station with metrics off.

Why in-process for the last two: the Station's events carry wall-clock stamps (``Event.at``), so BundleReady →
MetricsComputed is measured exactly; the sender is DCMTK storescu in its own process, as a TPS export would be.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import statistics
import time
from pathlib import Path
from typing import Any, Callable

from rtstation_tui.engine.config.model import load_config
from rtstation_tui.engine.events import BundleReady, MetricsComputed
from rtstation_tui.engine.metrics import tables
from rtstation_tui.engine.metrics.query import parse_sort, parse_where
from rtstation_tui.engine.station import Station
from rtstation_tui.engine.store.index import Index

from . import peers
from .data import ct_bulk, loadavg
from .metricsdata import treatment_patient

FILTERS = (["label~ADP"], ["max_dose>60Gy"], ["machine=TrueBeam*"], ["received>2026-01-01"],
           ["approval=APPROVED", "max_dose>6000cGy", "machine=TrueBeam*"])


def fill(data_dir: Path, plans: int) -> None:
    """``plans`` metric rows shaped like real ones (facts JSON with 4 beams) in a fresh index."""
    shutil.rmtree(data_dir, ignore_errors=True)
    index = Index(data_dir)
    rnd = random.Random(7)
    beams = [{"name": f"G{g}", "number": n, "radiation_type": "PHOTON", "energy": 6.0, "mu": 100.0 + n}
             for n, g in enumerate((0, 90, 180, 270), start=1)]
    facts = json.dumps({"machines": ["TrueBeam1"], "beams": beams})
    rows = []
    t0 = time.mktime((2025, 1, 1, 0, 0, 0, 0, 0, -1))
    for i in range(plans):
        label = rnd.choice(["ADP_", "PROST_", "HN_", "LUNG_", "BRST_"]) + str(i)
        rows.append({"plan_uid": f"1.2.826.0.1.3680043.10.9.{i}", "patient_id": f"P{i // 3:05d}", "label": label,
                     "machine": rnd.choice(["TrueBeam1", "TrueBeam2", "Halcyon", "VersaHD"]),
                     "approval": rnd.choice(["APPROVED", "UNAPPROVED"]), "fractions": rnd.choice([5, 25, 30, 35]),
                     "num_beams": 4, "total_mu": 400.0 + i % 300, "prescription_gy": 60.0,
                     "max_dose_gy": 40 + 40 * rnd.random(), "received": t0 + i * 3600.0, "status": "ok",
                     "facts": facts})
    conn = index.conn
    cols = tables.PLAN_COLUMNS
    conn.execute("BEGIN")
    conn.executemany(f"INSERT INTO metric_plans ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                     [[r.get(c) for c in cols] for r in rows])
    conn.execute("COMMIT")
    index.close()


def filter_bench(work: Path, plans: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Median time of each filter, as ``rtstation metrics --json`` answers it: parse, query, build the JSON."""
    data_dir = work / "metrics-filter"
    fill(data_dir, plans)
    index = Index(data_dir)
    out = []
    for where in FILTERS:
        query, full, n = [], [], 0
        for _ in range(5):
            t0 = time.perf_counter()
            w = parse_where(list(where))
            rows = index.conn.execute(f"SELECT * FROM metric_plans WHERE {w.sql} ORDER BY {parse_sort('-received')}",
                                      w.params).fetchall()
            t1 = time.perf_counter()
            n = len(json.dumps([tables.plan_json(r) for r in rows]))
            query.append(t1 - t0)
            full.append(time.perf_counter() - t0)
        q, f = statistics.median(query), statistics.median(full)
        out.append({"where": where, "matched": len(rows), "json_bytes": n, "query_s": q, "with_json_s": f})
        say(f"  filter {' and '.join(where)}: {len(rows)} of {plans} plans in {q * 1000:.0f} ms "
            f"({f * 1000:.0f} ms with the --json list of {n / 1e6:.1f} MB)")
    index.close()
    shutil.rmtree(data_dir, ignore_errors=True)
    return {"plans": plans, "filters": out, "worst_s": max(f["query_s"] for f in out)}


def _toml(data_dir: Path, port: int, metrics: bool) -> str:
    return peers.rtstation_toml(data_dir, port, "os", settle=60) + f"\n[metrics]\nenabled = {str(metrics).lower()}\n"


async def _events_until(events: list[Any], pred: Callable[[Any], bool], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in events if pred(e)]
        if found:
            return found[-1]
        await asyncio.sleep(0.01)
    raise SystemExit(f"bench: no matching event within {timeout} s")


async def _ready_round(work: Path, files: list[Path], plan_uid: str) -> tuple[float, str]:
    port, data_dir = peers.free_port(), work / "var"
    shutil.rmtree(data_dir, ignore_errors=True)
    cfg = work / "metrics.toml"
    cfg.write_text(_toml(data_dir, port, True))
    station = Station(load_config(cfg))
    events: list[Any] = []
    station.subscribe(events.extend)
    await station.start()
    try:
        await asyncio.to_thread(peers.storescu, port, "RTSTATION", files)
        ready = await _events_until(events, lambda e: isinstance(e, BundleReady) and e.plan_uid == plan_uid, 60)
        done = await _events_until(events, lambda e: isinstance(e, MetricsComputed) and e.plan_uid == plan_uid, 120)
        return done.at - ready.at, done.status
    finally:
        await station.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def ready_bench(work: Path, slices: int, rounds: int, say: Callable[[str], None]) -> dict[str, Any]:
    folder = work / f"metrics-patient-{slices}"
    shutil.rmtree(folder, ignore_errors=True)
    p = treatment_patient(folder, slices, f"MET{slices}", "MET")
    seconds = []
    for r in range(rounds):
        s, status = asyncio.run(_ready_round(work, p.files, p.plan_uid))
        seconds.append(s)
        say(f"  round {r + 1}/{rounds}: metrics {status} {s:.2f} s after the plan was ready (load {loadavg()})")
    shutil.rmtree(folder, ignore_errors=True)
    return {"slices": slices, "objects": len(p.files), "seconds": seconds, "median_s": statistics.median(seconds)}


async def _receive_round(work: Path, patients: list[Any], bulk: list[Path], metrics: bool) -> tuple[float, int]:
    """Send the RT patients (each becomes ready, its metrics start), then at once the bulk CT; seconds of the bulk
    and how many metrics computations ended after the bulk began (0 would mean the worker was idle: no test)."""
    port, data_dir = peers.free_port(), work / "var-rx"
    shutil.rmtree(data_dir, ignore_errors=True)
    cfg = work / "metrics-rx.toml"
    cfg.write_text(_toml(data_dir, port, metrics).replace("settle_seconds = 60", "settle_seconds = 0"))
    station = Station(load_config(cfg))
    events: list[Any] = []
    station.subscribe(events.extend)
    await station.start()
    try:
        for p in patients:
            await asyncio.to_thread(peers.storescu, port, "RTSTATION", p.files)
        await _events_until(events, lambda e: isinstance(e, BundleReady) and e.plan_uid == patients[-1].plan_uid, 60)
        start = time.time()
        bulk_s = await asyncio.to_thread(peers.storescu, port, "RTSTATION", bulk)
        if metrics:
            await _events_until(events, lambda e: isinstance(e, MetricsComputed)
                                and e.plan_uid == patients[-1].plan_uid, 300)
        overlapped = sum(1 for e in events if isinstance(e, MetricsComputed) and e.at > start)
        return bulk_s, overlapped
    finally:
        await station.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def receive_bench(work: Path, slices: int, n_ct: int, size: int, rounds: int,
                  say: Callable[[str], None]) -> dict[str, Any]:
    folder = work / "metrics-rx-patients"
    shutil.rmtree(folder, ignore_errors=True)
    patients = [treatment_patient(folder / f"p{i}", slices, f"MRX{i}", f"MRX{i}") for i in range(3)]
    bulk = ct_bulk(work, n_ct, size)
    on, off, overlap = [], [], []
    for r in range(rounds):
        for metrics in (True, False):
            s, n = asyncio.run(_receive_round(work, patients, bulk, metrics))
            (on if metrics else off).append(n_ct / s)
            if metrics:
                overlap.append(n)
            say(f"  round {r + 1}/{rounds} metrics {'on ' if metrics else 'off'}: {n_ct / s:.0f} inst/s"
                + (f" ({n} metrics computations ended during or after the bulk)" if metrics else "")
                + f" (load {loadavg()})")
    shutil.rmtree(folder, ignore_errors=True)
    return {"ct": n_ct, "on_inst_per_s": on, "off_inst_per_s": off, "overlapped": overlap,
            "ratio": statistics.median(on) / statistics.median(off)}


def run(work: Path, plans: int, slices: int, rounds: int, n_ct: int, size: int,
        say: Callable[[str], None] = print) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    if plans:
        say(f"metrics filter over {plans} plans")
        out["filter"] = filter_bench(work, plans, say)
    if slices:
        say(f"metrics of a {slices}-slice patient after it is ready, {rounds} rounds")
        out["ready"] = ready_bench(work, slices, rounds, say)
        say(f"receive {n_ct} CT while the metrics of 3 patients compute, metrics on vs off, {rounds} rounds")
        out["receive"] = receive_bench(work, slices, n_ct, size, rounds, say)
    return out
