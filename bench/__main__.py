"""``python -m bench`` (``make bench``): receive, plan-ready latency, scale and memory, against DCMTK and Orthanc.

Prints a table with the targets of issue 8 and writes ``bench/results.json``. Every peer runs on loopback with
``TCP_NODELAY=1``; data comes from ``rtstation_tui.synthetic``; nothing outside this repository is needed except
the Debian packages ``make test`` installs.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pydicom
import pynetdicom

from . import latency, memory, metrics, receive, scale, send
from .data import ct_bulk, machine_load, rt_patient

RESULTS = Path(__file__).parent / "results.json"
TARGETS = {"receive_ratio": 0.9, "receive_fsync_ratio": 0.6, "receive_streams_ratio": 0.9, "send_ratio": 0.8,
           "three_targets": 1.3, "ready_s": 1.0, "open_s": 1.0,
           "rss_mb": 200.0, "filter_s": 0.2, "metrics_s": 5.0, "metrics_receive_ratio": 0.9}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--n", default="300,500", help="CT files per receive round, comma-separated sizes (default 300,500)")
    p.add_argument("--streams", type=int, default=4,
                   help="concurrent storescu associations of the aggregate receive row (default 4; 0 = skip)")
    p.add_argument("--size", type=int, default=512, help="CT rows = columns (default 512: 0.53 MB per file)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds per receive row (default 5)")
    p.add_argument("--bundle-slices", type=int, default=100,
                   help="CT slices of the RT bundle receive rows (default 100; 0 = skip)")
    p.add_argument("--latency-slices", type=int, default=200, help="CT slices of the plan-ready patient (default 200)")
    p.add_argument("--latency-rounds", type=int, default=3)
    p.add_argument("--send-slices", type=int, default=300, help="CT slices of the sent patient (default 300; 0 = skip)")
    p.add_argument("--scale", type=int, default=100_000, help="instances in the scale index (default 100000; 0 = skip)")
    p.add_argument("--memory-mb", type=int, default=1000, help="MB received for the memory row (default 1000; 0 = skip)")
    p.add_argument("--metrics-plans", type=int, default=10_000, help="plans in the metrics filter table (0 = skip)")
    p.add_argument("--metrics-slices", type=int, default=200,
                   help="CT slices of the metrics patients (default 200; 0 = skip)")
    p.add_argument("--only", default="receive,latency,scale,memory,send,metrics",
                   help="comma-separated sections to run (default: all)")
    p.add_argument("--receivers", default="", help="comma-separated receive rows (dcmtk,orthanc,pynetdicom,rts-os,"
                   "rts-fsync; DCMTK always runs as the reference)")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "rtstation-bench",
                   help="scratch folder (generated data is kept there between runs)")
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


def say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    only = set(args.only.split(","))
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    say("measuring the machine's load before starting (2 s)...")
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "args": {k: str(v) for k, v in vars(args).items()},
        "machine": {**machine_load(), "python": platform.python_version(), "pynetdicom": pynetdicom.__version__,
                    "pydicom": pydicom.__version__},
    }
    say(f"machine: {results['machine']}")
    keys = [k for k in args.receivers.split(",") if k] or None
    if "receive" in only:
        sizes = [int(n) for n in str(args.n).split(",") if n]
        say(f"receive: {sizes} CT files of {args.size}², {args.rounds} interleaved rounds")
        rows = []
        for n in sizes:
            rows += receive.run(f"CT x{n}", ct_bulk(work, n, args.size), work, args.rounds, keys, say)
        if args.streams:
            rows += receive.run(f"CT x{sizes[-1]} /{args.streams}", ct_bulk(work, sizes[-1], args.size), work,
                                args.rounds, (keys or ["rts-os", "rts-fsync"]) + ["dcmtk-fork"], say,
                                streams=args.streams)
        if args.bundle_slices:
            patient = rt_patient(work, args.bundle_slices, args.size)
            rows += receive.run(f"RT bundle ({len(patient.files)} obj)", patient.files, work, args.rounds, keys, say)
            shutil.rmtree(patient.ct[0].parent.parent, ignore_errors=True)
        results["receive"] = [r.as_json() for r in rows]
    if "latency" in only and args.latency_slices:
        say(f"plan-ready latency: {args.latency_slices}-slice patient, {args.latency_rounds} rounds")
        results["latency"] = [r.as_json() for r in latency.run(work / "latency", args.latency_slices, args.size,
                                                                 args.latency_rounds, say=say)]
    if "scale" in only and args.scale:
        say(f"scale: index of {args.scale} instances")
        results["scale"] = scale.run(work, args.scale, say)
    if "memory" in only and args.memory_mb:
        per_file = (args.size * args.size * 2 + 2000) / 1e6
        count = max(1, int(args.memory_mb / per_file))
        say(f"memory: {count} CT files (~{count * per_file:.0f} MB) to rtstation serve")
        results["memory"] = memory.run(work, ct_bulk(work, count, args.size), say=say)
    if "send" in only and args.send_slices:
        say(f"send: {args.send_slices}-slice patient, {args.rounds} rounds")
        results["send"] = send.run(work / "send", args.send_slices, args.size, args.rounds, say)
    if "metrics" in only:
        results["metrics"] = metrics.run(work / "metrics", args.metrics_plans, args.metrics_slices,
                                         args.latency_rounds, int(str(args.n).split(",")[-1]), args.size, say)
    results["machine"]["loadavg_1m_end"] = round(__import__("os").getloadavg()[0], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=str))
    say("")
    say(report(results))
    say(f"\nresults: {args.out}")
    return 0


def report(results: dict[str, Any]) -> str:
    """The table, with each target of issue 8 and whether this run met it."""
    m = results["machine"]
    lines = [f"machine: {int(m['cpus'])} CPUs, {m['busy_pct']}% busy before the run, load average "
             f"{m['loadavg_1m']} (1 min) at start, {m.get('loadavg_1m_end', '?')} at end", ""]
    if results.get("receive"):
        lines.append(f"{'receive (storescu, TCP_NODELAY=1)':44s} {'inst/s':>8s} {'MB/s':>7s} {'× DCMTK':>8s}  "
                     f"{'CPU/inst user+sys':>17s}  {'peak RSS':>8s}  rounds")
    for r in results.get("receive", []):
        rss = statistics.median(r["peak_rss_mb"]) if r["peak_rss_mb"] else float("nan")
        lines.append(f"{r['dataset'][:16]:16s} {r['label'][:27]:27s} {r['inst_per_s']:8.0f} {r['mb_per_s']:7.1f} "
                     f"{r['ratio_to_dcmtk']:8.2f}  {r['cpu_user_ms']:6.3f}+{r['cpu_sys_ms']:.3f} ms  {rss:6.0f} MB  "
                     f"{len(r['seconds'])}{receive_mark(r)}")
    for r in results.get("latency", []):
        med = r["median_ready_after_close_s"]
        lines.append(f"plan ready, {r['instances']} objects, durability {r['durability']!r}: {med * 1000:.0f} ms after "
                     f"the last response (median of {len(r['ready_after_close_s'])}; target ≤ 1 s: "
                     f"{'met' if med <= TARGETS['ready_s'] else 'NOT met'})")
    s = results.get("scale")
    if s:
        lines.append(f"scale: {s['instances']} instances, {s['patients']} patients: top of the tree in "
                     f"{s['top_s'] * 1000:.0f} ms (target < 1 s: {'met' if s['top_s'] < TARGETS['open_s'] else 'NOT met'}),"
                     f" RSS {s['rss_after_top_mb']} MB ({s['rss_after_imports_mb']} MB of it imports); one patient expanded in "
                     f"{s['expand_one_patient_s'] * 1000:.0f} ms; serve's duplicate map of all {s['instances']} in "
                     f"{s['station_known_map_s'] * 1000:.0f} ms (peak RSS {s['peak_rss_mb']} MB)")
    mem = results.get("memory")
    if mem:
        lines.append(f"memory: serve received {mem['megabytes']:.0f} MB ({mem['instances']} files) with peak RSS "
                     f"{mem['peak_rss_mb']:.0f} MB (target < 200 MB: "
                     f"{'met' if mem['peak_rss_mb'] < TARGETS['rss_mb'] else 'NOT met'}), {mem['inst_per_s']:.0f} inst/s")
    for row in results.get("send", []):
        what = "x one target" if "3 x" in row["label"] else "x storescu"
        target = ""
        if row["label"].startswith("3 x storescu"):
            target = "  (DCMTK's own 3-node ratio: the machine's ceiling)"
        elif "3 x" in row["label"]:
            target = f"  target ≤ 1.3: {'met' if row['ratio'] <= TARGETS['three_targets'] else 'NOT met'}"
            if row.get("median_to_dcmtk3"):
                target += f"; {row['median_to_dcmtk3']:.2f}x the time of DCMTK's three storescu"
        elif row["label"].startswith("rtstation"):
            target = f"  target ≥ 0.8: {'met' if row['ratio'] >= TARGETS['send_ratio'] else 'NOT met'}"
        lines.append(f"send {row['instances']} obj: {row['label']:31s} transfer {row['median_transfer_s']:5.2f} s "
                     f"({row['instances'] / row['median_transfer_s']:4.0f} inst/s), wall {row['median_wall_s']:5.2f} s, "
                     f"{row['ratio']:.2f} {what}, CPU {row['median_cpu_ms_per_instance']:.2f} ms/inst{target}")
    lines += metrics_report(results.get("metrics") or {})
    return "\n".join(lines)


def receive_mark(row: dict[str, Any]) -> str:
    """The issue's target for this receive row, and whether it was met (CT rows of rtstation only)."""
    if not row["dataset"].startswith("CT") or row["key"] not in ("rts-os", "rts-fsync"):
        return ""
    target = TARGETS["receive_fsync_ratio"] if row["key"] == "rts-fsync" else TARGETS["receive_ratio"]
    if row.get("streams", 1) > 1:
        if row["key"] != "rts-os":
            return ""
        target = TARGETS["receive_streams_ratio"]
    return f"  target ≥ {target}: " + ("met" if row["ratio_to_dcmtk"] >= target else "NOT met")


def metrics_report(m: dict[str, Any]) -> list[str]:
    lines = []
    if m.get("filter"):
        f = m["filter"]
        lines.append(f"metrics filter over {f['plans']} plans: slowest {f['worst_s'] * 1000:.0f} ms (target < 200 ms: "
                     f"{'met' if f['worst_s'] < TARGETS['filter_s'] else 'NOT met'})")
    if m.get("ready"):
        r = m["ready"]
        lines.append(f"metrics of a {r['slices']}-slice patient: {r['median_s']:.2f} s after ready (median of "
                     f"{len(r['seconds'])}; target ≤ 5 s: {'met' if r['median_s'] <= TARGETS['metrics_s'] else 'NOT met'})")
    if m.get("receive"):
        r = m["receive"]
        lines.append(f"receive {r['ct']} CT while metrics compute: {statistics.median(r['on_inst_per_s']):.0f} inst/s "
                     f"vs {statistics.median(r['off_inst_per_s']):.0f} with metrics off, ratio {r['ratio']:.2f} "
                     f"(target ≥ {TARGETS['metrics_receive_ratio']}: "
                     f"{'met' if r['ratio'] >= TARGETS['metrics_receive_ratio'] else 'NOT met'})")
    return lines


if __name__ == "__main__":
    sys.exit(main())
