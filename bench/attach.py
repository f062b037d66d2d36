"""Attach: what an attached console waits for before its tree shows, against ``rtstation serve`` on an index of
100,000 instances (``scale.build``): connect (status + configuration), every patient row, one patient's plans,
one plan's details — each a call over the control API's socket, timed in a fresh process.

``python -m bench.attach [INSTANCES]`` prints JSON. Not part of ``make bench``'s table yet.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import scale


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _timed_attach(socket_path: Path) -> dict[str, Any]:
    from rtstation_tui.engine.service.remote import RemoteStation

    remote = RemoteStation(socket_path)
    t0 = time.perf_counter()
    remote.connect()
    connect_s = time.perf_counter() - t0
    patients = remote.patients()
    tree_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    plans = remote.plans_of(patients[len(patients) // 2].patient_id)
    expand_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    remote.plan_details(plans[0].plan_uid)
    details_s = time.perf_counter() - t2
    return {"patients": len(patients), "connect_s": round(connect_s, 4), "tree_s": round(tree_s, 4),
            "expand_one_patient_s": round(expand_s, 4), "plan_details_s": round(details_s, 4)}


def run(work: Path, instances: int) -> dict[str, Any]:
    data_dir = work / "attach"
    built = scale.build(data_dir, instances)
    config = work / "attach.toml"
    port = free_port()
    config.write_text(f'[station]\nbind = "127.0.0.1"\nport = {port}\ndata_dir = "{data_dir}"\n'
                      '[receiver]\nmin_free_mb = 0\n')
    log = open(work / "serve.log", "wb")
    serve = subprocess.Popen([sys.executable, "-m", "rtstation_tui", "serve", "--config", str(config)], stdout=log,
                             stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "serving" not in (work / "serve.log").read_text(errors="replace"):
            if serve.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"bench: serve did not start:\n{(work / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.1)  # a benchmark waiting for its subject, not a test
        proc = subprocess.run([sys.executable, "-m", "bench.attach", "--probe", str(data_dir / "api.sock")],
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise SystemExit(f"bench: attaching failed:\n{proc.stderr[-2000:]}")
        return {**built, **json.loads(proc.stdout)}
    finally:
        serve.terminate()
        serve.wait(60)
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--probe"]:
        print(json.dumps(_timed_attach(Path(sys.argv[2]))))
    else:
        with tempfile.TemporaryDirectory(prefix="rtst-bench-") as tmp:
            print(json.dumps(run(Path(tmp), int(sys.argv[1]) if len(sys.argv) > 1 else 100_000), indent=2))
