"""SEND ROWS — HOOK, NOT MEASURED YET: ``rtstation send`` vs DCMTK storescu, and one plan to 1 vs 3 targets.

Issue 8 asks for (targets: send ≥ 0.5× storescu; 3 targets ≤ 1.3× one target):
  2. send: ``rtstation send`` of the same files to DCMTK ``storescp``, against ``storescu`` doing the same;
  4. multi-target: one plan to 1 and to 3 ``storescp`` nodes; ratio of the times.

The sender is being written on ``main``. When it lands, implement ``run()`` here (the receivers in ``peers.py``
already give DCMTK storescp processes with a fresh folder and a port; time ``rtstation send`` with a config whose
``[[nodes]]`` point at them) and return rows shaped like ``SendRow``; ``__main__`` prints and saves whatever
``run()`` returns, and prints the reason below while it returns ``None``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

PENDING = "not measured: `rtstation send` is not in this tree yet (hook in bench/send.py)"


@dataclass
class SendRow:
    label: str  # e.g. "rtstation send → storescp", "storescu → storescp", "1 plan → 3 targets"
    instances: int
    seconds: float
    ratio: float  # to storescu (send rows) or to one target (multi-target row)


def available() -> bool:
    return importlib.util.find_spec("rtstation_tui.cli.send") is not None


def run(work: Path, files: list[Path], rounds: int, say: Callable[[str], None] = print) -> list[dict[str, Any]] | None:
    """Send rows, or None while the sender does not exist."""
    if not available():
        say(f"  {PENDING}")
        return None
    say("  `rtstation send` exists but its rows are not written yet: fill in bench/send.py")  # HOOK
    return None
