"""Scale: an index of 100,000 instances, opened the way the console opens it.

Why direct SQL: receiving 100k real files would take the benchmark half an hour; the question here is what the
*index* costs, so rows shaped like real ones (planning CTs of ~400 slices, each with its RTSTRUCT, RTPLAN and
RTDOSE, their references and a ``bundles`` summary row per plan) are inserted straight into the project's schema.
The opening is timed in a fresh process, so its peak RSS (VmHWM) is the console's, not the builder's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from rtstation_tui.engine.store.index import Index

CT, RS, RP, RD = ("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.481.3", "1.2.840.10008.5.1.4.1.1.481.5",
                  "1.2.840.10008.5.1.4.1.1.481.2")
SLICES = 396  # + RTSTRUCT, RTPLAN, RTDOSE: 399 objects per patient


def build(data_dir: Path, instances: int) -> dict[str, Any]:
    """Fill a fresh index with about ``instances`` rows; returns what was built and how long it took."""
    shutil.rmtree(data_dir, ignore_errors=True)
    t0 = time.perf_counter()
    index = Index(data_dir)
    conn = index.conn
    per_patient = SLICES + 3
    patients = max(1, round(instances / per_patient))
    inst_rows: list[tuple[Any, ...]] = []
    ref_rows: list[tuple[Any, ...]] = []
    plan_rows: list[tuple[Any, ...]] = []
    bundle_rows: list[tuple[Any, ...]] = []
    iid = 0
    now = time.time()
    for p in range(patients):
        pid, study = f"PAT{p:06d}", f"1.2.826.0.1.3680043.10.1.{p}"
        ct_series, other = f"{study}.1", f"{study}.2"

        def inst(sop: str, cls: str, mod: str, series: str, number: int | None) -> int:
            nonlocal iid
            iid += 1
            inst_rows.append((iid, sop, 1, cls, mod, "1.2.840.10008.1.2", pid, study, series, f"{study}.9", number,
                              "", f"{pid}/{study}/{mod}.{sop}.dcm", 525_000 if mod == "CT" else 40_000, "network",
                              "TPS", now, 1, 0))
            return iid

        cts = [f"{ct_series}.{i}" for i in range(SLICES)]
        for i, sop in enumerate(cts):
            inst(sop, CT, "CT", ct_series, i + 1)
        rs = inst(f"{other}.1", RS, "RTSTRUCT", other, None)
        ref_rows += [(rs, "image", sop, CT) for sop in cts] + [(rs, "series", ct_series, "")]
        rp = inst(f"{other}.2", RP, "RTPLAN", other, None)
        ref_rows.append((rp, "struct", f"{other}.1", RS))
        rd = inst(f"{other}.3", RD, "RTDOSE", other, None)
        ref_rows.append((rd, "plan", f"{other}.2", RP))
        beams = json.dumps([{"number": n, "name": f"G{n}", "radiation": "PHOTON", "energy": "6", "mu": 100.0,
                             "machine": "TrueBeam1"} for n in range(1, 5)])
        plan_rows.append((rp, f"{other}.2", pid, f"PL{p}", f"plan {p}", "APPROVED", "TrueBeam1", beams, 4, 25, 0,
                          "CURATIVE"))
        summary = {"label": f"PL{p}", "name": f"plan {p}", "machines": ["TrueBeam1"], "approval": "APPROVED",
                   "counts": {"CT": SLICES, "RTDOSE": 1, "RTPLAN": 1, "RTSTRUCT": 1}, "missing": "", "conflicts": 0,
                   "fractions": 25, "beams": 4}
        bundle_rows.append((f"{other}.2", pid, "ready", 1, f"sig{p}", 0, json.dumps(summary), now))
    conn.execute("BEGIN")
    conn.executemany(f"INSERT INTO instances VALUES ({','.join('?' * 19)})", inst_rows)
    conn.executemany("INSERT INTO refs VALUES (?,?,?,?)", ref_rows)
    conn.executemany(f"INSERT INTO plans VALUES ({','.join('?' * 12)})", plan_rows)
    conn.executemany("INSERT INTO bundles VALUES (?,?,?,?,?,?,?,?)", bundle_rows)
    conn.executemany("INSERT INTO patients VALUES (?,?,?)", [(f"PAT{p:06d}", f"SYN^{p}", now) for p in range(patients)])
    conn.execute("INSERT INTO sessions (id, kind, source, started, ended, evaluated) VALUES (1,'association',"
                 "'network',?,?,1)", (now, now))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    index.close()
    return {"instances": len(inst_rows), "patients": patients, "plans": len(plan_rows), "refs": len(ref_rows),
            "build_s": round(time.perf_counter() - t0, 2),
            "index_mb": round((data_dir / "index.sqlite").stat().st_size / 1e6, 1)}


def peak_rss_mb() -> float:
    """This process's high-water mark (VmHWM). Not ru_maxrss: Linux carries the parent's peak across fork+exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_top(data_dir: Path) -> dict[str, Any]:
    """What the console does on start: open the index, list patients, read every plan's bundle summary.

    Also what ``Station`` does before it receives (the store's duplicate map of every SOP Instance UID), timed
    separately since the console gets its tree first."""
    from rtstation_tui.engine.plans.bundle import patient_view
    from rtstation_tui.engine.store.files import Store

    base_rss = peak_rss_mb()
    t0 = time.perf_counter()
    index = Index(data_dir)
    patients = index.conn.execute("SELECT patient_id, patient_name FROM patients ORDER BY patient_id").fetchall()
    bundles = {uid: json.loads(r["summary"] or "{}") for uid, r in index.bundle_states().items()}
    top_s = time.perf_counter() - t0
    top_rss = peak_rss_mb()
    t1 = time.perf_counter()
    view = patient_view(index.conn, patients[len(patients) // 2][0])
    expand_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    store = Store(data_dir / "known-probe", "os")
    store.load_known(index.known_pairs())
    known_s = time.perf_counter() - t2
    return {"patients": len(patients), "bundles": len(bundles), "top_s": round(top_s, 4),
            "rss_after_imports_mb": round(base_rss, 1), "rss_after_top_mb": round(top_rss, 1),
            "expand_one_patient_s": round(expand_s, 4), "expand_members": sum(len(b.members) for b in view.bundles),
            "station_known_map_s": round(known_s, 3),
            "peak_rss_mb": round(peak_rss_mb(), 1)}


def run(work: Path, instances: int, say: Callable[[str], None] = print) -> dict[str, Any]:
    data_dir = work / "scale"
    built = build(data_dir, instances)
    say(f"  built an index of {built['instances']} instances ({built['patients']} patients) in {built['build_s']} s")
    opens = []
    for _ in range(3):  # first open pays the page cache; report the median of three fresh processes
        proc = subprocess.run([sys.executable, "-m", "bench.scale", str(data_dir)], capture_output=True, text=True,
                              timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"bench: opening the index failed:\n{proc.stderr[-2000:]}")
        opens.append(json.loads(proc.stdout))
    opens.sort(key=lambda o: o["top_s"])
    result = {**built, **opens[1], "top_s_all": [o["top_s"] for o in opens]}
    say(f"  opened: top of the tree in {result['top_s'] * 1000:.0f} ms, peak RSS {result['peak_rss_mb']} MB")
    shutil.rmtree(data_dir, ignore_errors=True)
    return result


if __name__ == "__main__":
    print(json.dumps(open_top(Path(sys.argv[1]))))
