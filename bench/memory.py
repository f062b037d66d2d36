"""Memory: peak resident set of ``rtstation serve`` while it receives about 1 GB over one association.

Why VmHWM: the kernel keeps the process's high-water mark, so no sampling can miss a short peak.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

from . import peers
from .data import loadavg, size_mb


def run(work: Path, files: list[Path], durability: str = "os", say: Callable[[str], None] = print) -> dict[str, Any]:
    out = work / "rx-memory"
    shutil.rmtree(out, ignore_errors=True)
    running = peers.rtstation_serve(out, durability)
    try:
        idle_mb = running.peak_rss_mb()
        load = loadavg()
        seconds = peers.storescu(running.port, running.aet, files)
        stored = running.count()
        peak_mb = running.peak_rss_mb()
    finally:
        running.stop()
        shutil.rmtree(out, ignore_errors=True)
    mb = size_mb(files)
    result = {"durability": durability, "instances": len(files), "megabytes": round(mb, 1), "stored": stored,
              "seconds": round(seconds, 2), "inst_per_s": round(len(files) / seconds, 1),
              "peak_rss_idle_mb": round(idle_mb, 1), "peak_rss_mb": round(peak_mb, 1), "load": load}
    say(f"  {mb:.0f} MB received in {seconds:.1f} s; serve's peak RSS {peak_mb:.0f} MB (idle {idle_mb:.0f} MB)")
    return result
