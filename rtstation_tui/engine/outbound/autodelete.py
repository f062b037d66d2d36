"""``delete_after_send = true`` on a rule: once every target of the rule has the plan's bundle *committed*
(storage commitment: the node vouches for keeping it), the bundle leaves the store — never before.

Only what nothing else references goes (``deletion.py``: a CT another plan uses stays), never while an active job
still sends one of its objects (the plan is then looked at again until it can go or no longer qualifies), and
every removal is audited as ``rule:NAME``. A failed or timed-out commitment, a failed send, or a target without a
commitment keeps the bundle (the configuration refuses such a rule: ``config/rules.py``). Why a poll of the
commitments table and not a hook in the report handler: reports arrive in pynetdicom's threads, on this station's
listener or (after a restart) long ago; the table is the one place that knows, and a sweep at start catches up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from ..config.groups import expand
from ..config.model import Config
from ..config.rules import RuleConfig
from ..events import EventBus
from ..loops import Ticker
from ..store.files import Store
from ..store.index import Index
from .commitment import state_of
from .deletion import DeleteRefused, NothingToDelete, announce, delete
from .queue import DONE, JobQueue

log = logging.getLogger("rtstation.delete")
POLL_S = 2.0  # how soon after a commitment report the bundle goes


def committed_rule(config: Config, queue: JobQueue, plan_uid: str) -> tuple[RuleConfig | None, str]:
    """The ``delete_after_send`` rule that sent this plan and whose every target committed it, or why none."""
    jobs = queue.history(plan_uid)
    names = {j.origin[5:] for j in jobs if (j.origin or "").startswith("rule:")}
    latest = {j.node: j for j in jobs}  # ordered by id: the last job per node decides
    why = "no delete_after_send rule sent it"
    for rule in config.rules:
        if rule.name not in names or not rule.delete_after_send:
            continue
        # a group stands for its every node, a disabled one too: it never got the bundle, so it stays
        waiting = [t for t in expand(rule.targets, config.groups) if t not in latest or latest[t].state != DONE
                   or state_of(queue, latest[t].id) != "committed"]
        if not waiting:
            return rule, ""
        why = f"rule {rule.name}: not committed by {', '.join(waiting)} yet"
    return None, why


class AfterSendDeleter:
    """Watches settled commitments; removes the bundles ``committed_rule`` allows."""

    def __init__(self, config: Callable[[], Config], index: Index, queue: JobQueue, store: Store,
                 bus: EventBus | None = None) -> None:
        self.config, self.index, self.queue, self.store, self.bus = config, index, queue, store, bus
        self._seen = 0.0  # commitments settled up to this time were looked at
        self._pending: set[str] = set()  # plans that qualified but an active job held
        self._ticker = Ticker("delete-after-send", self._step, lambda: POLL_S)

    async def start(self, station: object = None) -> None:
        self._ticker.start()

    async def stop(self) -> None:
        await self._ticker.stop()

    async def _step(self) -> None:
        if any(r.delete_after_send for r in self.config().rules):
            await asyncio.to_thread(self.sweep)

    def sweep(self) -> list[str]:
        """Look at the plans whose commitments settled since the last sweep; returns the plan UIDs removed."""
        rows = self.queue.conn.execute(
            "SELECT c.updated, j.plan_uid FROM commitments c JOIN jobs j ON j.id = c.job_id WHERE c.state="
            "'committed' AND c.updated > ? AND j.plan_uid != '' ORDER BY c.updated", (self._seen,)).fetchall()
        for updated, plan_uid in rows:
            self._seen = max(self._seen, float(updated))
            self._pending.add(plan_uid)
        removed = []
        for plan_uid in sorted(self._pending):
            if self._consider(plan_uid):
                removed.append(plan_uid)
        return removed

    def _consider(self, plan_uid: str) -> bool:
        """True when the plan went; it stays pending only while an active job holds it."""
        config = self.config()
        rule, why = committed_rule(config, self.queue, plan_uid)
        if rule is None:
            self._pending.discard(plan_uid)
            (log.info if why.startswith("rule ") else log.debug)("delete_after_send: plan %s stays in the store: %s",
                                                                 plan_uid, why)
            return False
        row = self.index.conn.execute("SELECT patient_id FROM plans WHERE sop_uid=? LIMIT 1", (plan_uid,)).fetchone()
        if row is None:  # deleted meanwhile
            self._pending.discard(plan_uid)
            return False
        who = f"rule:{rule.name}"
        try:
            done = delete(self.index, self.queue, self.store, row[0], [plan_uid], who=who,
                          reason=f"delete_after_send: committed by {', '.join(expand(rule.targets, config.groups))}")
        except DeleteRefused as exc:
            log.info("delete_after_send of rule %s waits: %s", rule.name, exc)
            return False
        except NothingToDelete:
            self._pending.discard(plan_uid)
            return False
        self._pending.discard(plan_uid)
        announce(self.bus, done.patient_id, done.plans, done.instances, done.nbytes, done.patient_gone, who)
        return True
