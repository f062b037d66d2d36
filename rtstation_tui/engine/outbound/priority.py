"""Queue priority: a send someone asked for (console, CLI, API) goes before a rule's bulk backlog to the same node.

Why two levels from the job's origin: the person at the console is waiting for *this* plan; the 900-slice backlog a
rule queued overnight is waiting for nobody in particular. ``jobs.priority`` (queue migration 4) keeps the level with
the job, so another process's ``rtstation send`` is ordered the same way.

Two mechanisms:
- ``JobQueue.due`` returns due jobs highest priority first, so a free association slot goes to the manual job.
- A running lower-priority job checks (with its cancel check, about every 0.25 s) whether a higher one waits for
  its node while every slot of the node is busy. If so it *yields*: the instance on the wire is finished and
  acknowledged, the association is released, the job goes back to ``queued`` (no retry attempt counted, nothing
  failed, acknowledged instances stay done) and resumes after the higher one, on a new association.
"""

from __future__ import annotations

from typing import Any

MANUAL = 1
RULE = 0
YIELDED = "yielded to a manual send"  # the job's note while it waits for the manual send to finish


def for_origin(origin: str) -> int:
    """``rule:NAME`` is bulk traffic; everything else (manual, cli, api) someone is waiting for."""
    return RULE if origin.startswith("rule:") else MANUAL


def should_yield(queue: Any, job_id: int, node: str, priority: int, slots_full: bool, now: float) -> int | None:
    """The id of a due job of a higher priority waiting for ``node`` while its slots are all taken (None: go on)."""
    if not slots_full or priority >= MANUAL:
        return None
    return queue.waiting_above(node, priority, now, exclude=job_id)  # type: ignore[no-any-return]
