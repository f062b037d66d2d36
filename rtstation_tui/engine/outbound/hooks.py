"""Site hooks (entry points of group ``rtstation.hooks``): ``on_ready`` when a plan bundle is ready and the rules
have been evaluated, ``on_sent`` when a send job ends (done or failed). An entry point named ``on_ready`` or
``on_ready.SOMETHING`` (several packages, several hooks) is called as ``fn(event: dict)`` with JSON-able facts.

Why in-process functions and not commands: no shell, a traceback in the log when one fails, and nothing to quote.
A hook that raises is logged with its traceback and audited; it changes nothing else (the job's state, the other
hooks, the rules). Hooks run in the worker thread that produced the event: a slow hook slows that worker only.
"""

from __future__ import annotations

import logging
from typing import Any

from ..audit import audit
from ..config.transforms import decode_chain
from ..transforms.plugins import HOOKS_GROUP, installed
from .queue import JobRow

log = logging.getLogger("rtstation.plugins")
EVENTS = ("on_ready", "on_sent")


def hooks_for(event: str) -> list[Any]:
    return [ep for name, ep in sorted(installed(HOOKS_GROUP).items())
            if name == event or name.startswith(event + ".")]


def run_hooks(event: str, facts: dict[str, Any]) -> list[str]:
    """Call every hook of ``event``; returns the names of those that failed."""
    failed = []
    for ep in hooks_for(event):
        try:
            ep.load()(dict(facts, event=event))
        except Exception as exc:
            log.exception("hook %s (%s) failed on %s; nothing else is affected", ep.name, ep.value, event)
            audit("hook_failed", hook=ep.name, target=ep.value, event_name=event, error=f"{type(exc).__name__}: {exc}",
                  plan_uid=facts.get("plan_uid"), job=facts.get("job"))
            failed.append(ep.name)
    return failed


def sent_facts(job: JobRow) -> dict[str, Any]:
    """What an ``on_sent`` hook is told about a job that ended."""
    return {"job": job.id, "node": job.node, "plan_uid": job.plan_uid, "label": job.label,
            "patient_id": job.patient_id, "state": job.state, "done": job.done, "failed": job.failed,
            "total": job.total, "error": job.error, "transforms": decode_chain(job.transform)}
