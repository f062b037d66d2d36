"""Retry schedules in the style of dcm4chee: ``"5x30s,10x5m,24x1h"`` = 5 tries 30 s apart, then 10 five minutes
apart, then 24 an hour apart; once used up, the job fails and says so."""

from __future__ import annotations

import re

_PART = re.compile(r"^(?:(\d+)\s*x\s*)?(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_schedule(text: str) -> tuple[float, ...]:
    """Delays in seconds before each retry. An empty string means no retry at all."""
    delays: list[float] = []
    for raw in filter(None, (p.strip() for p in text.split(","))):
        m = _PART.match(raw.lower())
        if not m:
            raise ValueError(f"bad retry step {raw!r}: write COUNTxDELAY with a unit, e.g. 5x30s,10x5m,24x1h")
        count = int(m.group(1) or 1)
        if count < 1 or count > 10_000:
            raise ValueError(f"bad retry step {raw!r}: the count must be from 1 to 10000")
        delays.extend([float(m.group(2)) * _UNIT[m.group(3)]] * count)
    return tuple(delays)


def describe(delays: tuple[float, ...]) -> str:
    total = sum(delays)
    return f"{len(delays)} retries over {total / 3600:.1f} h" if total >= 3600 else f"{len(delays)} retries over {total:.0f} s"
