"""Routing rules: when a plan bundle becomes *ready*, the ``[[rules]]`` are evaluated in order and the matching ones
queue the bundle for their targets. Never per instance: a plan is forwarded as a whole, once it is ready.

Why this shape:
- ``decide()`` is pure (rules + facts of one bundle → one decision per rule), so ``rtstation rules test`` shows
  exactly what the service would do, without sending anything.
- Sending goes through ``Sender.enqueue_plan``, which leaves out what each node acknowledged before or has pending:
  a bundle that becomes ready again (its CT arrived later) sends only the new objects, and nothing is sent twice.
- What was evaluated is remembered per plan (signature and state of the announced bundle, in the index). Events are
  the normal path; at start the service also evaluates ready bundles announced after it was first installed whose
  evaluation a crash interrupted. A restart never re-evaluates, and installing rules never forwards old plans.
- Every evaluation is written to the audit log (plan, rule, matched or the first condition that failed and why,
  jobs created) and logged as a readable line on ``rtstation.rules``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ..audit import audit
from ..plans.bundle import Bundle, bundle_for
from ..plans.readywork import READY_STATES, ReadyWork
from ..config.model import Config
from ..events import BundleReady, Event, EventBus, RulesEvaluated
from ..store.index import Index
from ..loops import Ticker
from ..config.groups import GroupConfig, expand, left_out
from ..config.rules import RuleConfig
from ..config.transforms import encode_chain
from ..store.tags import add_tag
from ..transforms.base import TransformError
from .export import export_bundle, export_fields, export_path
from .hooks import run_hooks
from .sender import parts_for

log = logging.getLogger("rtstation.rules")
RETRY_SECONDS = 30.0  # an evaluation that failed (database busy, ...) is tried again this much later


@dataclass(frozen=True)
class PlanFacts:
    """What rules look at: the facts of one plan bundle."""

    plan_uid: str
    patient_id: str
    label: str
    machines: tuple[str, ...]
    approval: str
    sources: tuple[str, ...]  # calling AE titles the RTPLAN came from (IMPORT_FOLDER for the watched folder)
    modalities: tuple[str, ...]  # of every object in the bundle
    complete: bool
    missing: int

    @classmethod
    def of(cls, b: Bundle) -> PlanFacts:
        return cls(b.plan_uid, b.patient_id, b.label, tuple(b.machines), (b.approval or "").upper(),
                   tuple(s.strip() for s in b.sources), tuple(sorted(b.counts())), b.complete, len(b.missing))


@dataclass(frozen=True)
class JobMade:
    node: str
    job_id: int | None  # None: the node already has (or is about to get) everything
    instances: int
    already_delivered: int
    already_queued: int


@dataclass
class Decision:
    """One rule's verdict on one bundle. ``outcome``: send, hold, no-match, disabled, not-evaluated, error."""

    rule: str
    outcome: str
    matched: bool = False
    condition: str = ""  # the first condition that failed
    reason: str = ""  # why, in words
    targets: tuple[str, ...] = ()  # node names: the rule's [[groups]] expanded
    include: tuple[str, ...] = ()
    transforms: tuple[str, ...] = ()  # the rule's chain (each target node adds its own after it)
    export: str = ""  # the rule's export template; after an export, the folder or ZIP written
    tag: str = ""
    jobs: list[JobMade] = field(default_factory=list)
    named: tuple[str, ...] = ()  # the targets as the rule names them (groups not expanded)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        if self.outcome == "send":
            made = [f"job {j.job_id} to {j.node} ({j.instances} instances)" if j.job_id is not None
                    else f"nothing new for {j.node}" for j in self.jobs]
            text = (f"matched: send to {self.where()}" + (f": {'; '.join(made)}" if made else "")
                    if self.targets else "matched")
            return text + (f"; export to {self.export}" if self.export else "") + (
                f"; tagged {self.tag!r}" if self.tag else "")
        if self.outcome == "hold":
            return f"matched, held: {self.reason}"
        if self.outcome == "error":
            made = [f"job {j.job_id} to {j.node}" for j in self.jobs if j.job_id is not None]
            return f"matched, but queueing failed: {self.reason}" + (f" ({', '.join(made)} queued)" if made else "")
        return f"{self.outcome}: {self.condition + ': ' if self.condition else ''}{self.reason}"

    def where(self) -> str:
        """``QA, PHYS`` or, for a rule naming a group, ``QA-ALL = QA, PHYS``."""
        nodes = ", ".join(self.targets)
        return nodes if not self.named or self.named == self.targets else f"{', '.join(self.named)} = {nodes}"


# -- matching ------------------------------------------------------------------------------------------------
def _pattern(pattern: str, value: str, *, substring: bool, ignore_case: bool) -> bool:
    """Plain text, ``glob:`` or ``re:`` (searched: anchor it yourself). Plain text is a substring for labels (as
    the seed did) and exact for AE titles, machines and modalities, where ``*?[`` make it a glob."""
    flags = re.IGNORECASE if ignore_case else 0
    if pattern.startswith("re:"):
        return re.search(pattern[3:], value, flags) is not None
    glob = pattern[5:] if pattern.startswith("glob:") else pattern
    if pattern.startswith("glob:") or (not substring and any(c in glob for c in "*?[")):
        return re.fullmatch(fnmatch.translate(glob), value, flags) is not None
    if ignore_case:
        pattern, value = pattern.casefold(), value.casefold()
    return pattern in value if substring else pattern == value


def _any(pattern: str, values: tuple[str, ...], **kw: bool) -> bool:
    return any(_pattern(pattern, v, **kw) for v in values)


def _shown(values: tuple[str, ...]) -> str:
    return ", ".join(repr(v) for v in values) if values else "none"


def first_failure(rule: RuleConfig, f: PlanFacts) -> tuple[str, str] | None:
    """(condition, why) of the first match field that does not hold, in the order of the issue; None: all hold."""
    if rule.source_ae is not None and not _any(rule.source_ae, f.sources, substring=False, ignore_case=False):
        return "source_ae", f"{rule.source_ae!r} does not match the plan's source AE {_shown(f.sources)}"
    if rule.plan_label is not None and not _pattern(rule.plan_label, f.label, substring=True, ignore_case=True):
        how = "match" if rule.plan_label.startswith(("re:", "glob:")) else "contain"
        return "plan_label", f"the label {f.label!r} does not {how} {rule.plan_label!r}"
    if rule.machine is not None and not _any(rule.machine, f.machines, substring=False, ignore_case=True):
        return "machine", f"{rule.machine!r} does not match the plan's machine {_shown(f.machines)}"
    if rule.approval != "ANY" and f.approval != rule.approval:
        return "approval", f"the plan is {f.approval or 'without approval status'}, the rule wants {rule.approval}"
    if rule.patient_id is not None and re.search(rule.patient_id, f.patient_id) is None:
        return "patient_id", f"the patient ID {f.patient_id!r} does not match {rule.patient_id!r}"
    if rule.modality is not None and not _any(rule.modality, f.modalities, substring=False, ignore_case=True):
        return "modality", f"no object of modality {rule.modality!r} in the bundle (it has {_shown(f.modalities)})"
    return None


def decide(rules: tuple[RuleConfig, ...], f: PlanFacts, groups: tuple[GroupConfig, ...] = ()) -> list[Decision]:
    """What the rules would do with this bundle, rule by rule, in order (nothing is sent here). Targets naming
    a group are its nodes (``Decision.named`` keeps the names as written)."""
    out: list[Decision] = []
    stopped_by = ""
    for rule in rules:
        d = Decision(rule.name, "", targets=expand(rule.targets, groups), include=tuple(rule.include),
                     transforms=tuple(rule.transforms), export=rule.export or "", tag=rule.tag or "",
                     named=tuple(rule.targets))
        if stopped_by:
            d.outcome, d.reason = "not-evaluated", f"rule {stopped_by!r} matched and has stop = true"
        elif not rule.enabled:
            d.outcome, d.condition, d.reason = "disabled", "enabled", "the rule is disabled (enabled = false)"
        elif (failure := first_failure(rule, f)) is not None:
            d.outcome, (d.condition, d.reason) = "no-match", failure
        else:
            d.matched = True
            if f.complete or rule.when_incomplete == "send":
                d.outcome = "send"
                d.reason = "complete" if f.complete else f"incomplete ({f.missing} missing), when_incomplete = send"
            else:
                d.outcome = "hold"
                d.reason = (f"{f.missing} referenced objects missing; when_incomplete = hold: sent when the bundle "
                            f"is complete")
            if rule.stop:
                stopped_by = rule.name
        out.append(d)
    return out


# -- the service ---------------------------------------------------------------------------------------------
class RulesService:
    """Station service: evaluates rules on each BundleReady, in a worker thread (never on the loop)."""

    def __init__(self, config: Config | Callable[[], Config], index: Index, bus: EventBus, sender: Any) -> None:
        # A callable (the Station's current config): rules edited and reloaded apply to the next evaluation.
        self._config = config if callable(config) else (lambda: config)
        self.index = index
        self.bus = bus
        self.sender = sender
        self._pending = ReadyWork("evaluating the rules", log, RETRY_SECONDS, self.evaluate, self._catch_up)
        self._ticker = Ticker("rules", self._step, lambda: RETRY_SECONDS if self._pending else 3600.0)
        # Subscribed now, not in start(): readiness may announce bundles before the services start.
        bus.subscribe(self.on_events)

    async def start(self, station: Any = None) -> None:
        self._ticker.start()  # first step: create the marks table and catch up

    async def stop(self) -> None:
        await self._ticker.stop()

    def reload(self, config: Config) -> None:
        """``Station.reload`` (SIGHUP, the console's editors): the next evaluation uses the new rules and nodes.
        One attribute assignment, so an evaluation running in the worker thread sees the old or the new, whole."""
        self.config = config

    def on_events(self, batch: list[Event]) -> None:
        ready = [e for e in batch if isinstance(e, BundleReady)]
        if not ready:
            return
        for e in ready:
            self._pending.add(e.plan_uid, e.reason)
        self._ticker.kick()

    async def _step(self) -> None:
        events = await asyncio.to_thread(self.run_pending)
        for ev in events:
            self.bus.post(ev)

    # -- worker thread ---------------------------------------------------------------------------------------
    def run_pending(self) -> list[Event]:
        return list(self._pending.run())

    def _catch_up(self) -> list[tuple[str, str]]:
        conn = self.index.conn
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('rules_baseline', ?)", (repr(time.time()),))
        baseline = float(conn.execute("SELECT value FROM meta WHERE key='rules_baseline'").fetchone()[0])
        marks = self._marks()
        return [(uid, "announced while the rules were not running") for uid, row in self.index.bundle_states().items()
                if row["state"] in READY_STATES and (row["updated"] or 0) >= baseline
                and marks.get(uid) != (row["signature"], row["state"])]

    def _marks(self) -> dict[str, tuple[str, str]]:
        rows = self.index.conn.execute("SELECT plan_uid, signature, state FROM rule_marks")
        return {r[0]: (r[1], r[2]) for r in rows}

    def evaluate(self, plan_uid: str, why: str) -> RulesEvaluated | None:
        """Evaluate every rule for the bundle as announced now; send, hold, audit, remember. Idempotent."""
        row = self.index.conn.execute("SELECT state, signature FROM bundles WHERE plan_uid=?", (plan_uid,)).fetchone()
        if row is None or row["state"] not in READY_STATES:
            return None  # changed again since (waiting for more objects): a new BundleReady will come
        mark = self.index.conn.execute("SELECT signature, state FROM rule_marks WHERE plan_uid=?",
                                       (plan_uid,)).fetchone()
        if mark is not None and (mark[0], mark[1]) == (row["signature"], row["state"]):
            return None  # already evaluated (event and catch-up both saw it)
        bundle = bundle_for(self.index.conn, plan_uid)
        if bundle is None:
            return None
        facts = PlanFacts.of(bundle)
        config = self._config()
        rules = {r.name: r for r in config.rules}
        decisions = decide(tuple(rules.values()), facts, config.groups)
        for d in decisions:
            if d.outcome == "send":
                self._send(d, facts)
                self._other_actions(d, rules[d.rule], bundle)
            self._record(d, facts, why)
        run_hooks("on_ready", {"plan_uid": plan_uid, "patient_id": facts.patient_id, "label": facts.label,
                               "sources": list(facts.sources), "complete": facts.complete, "reason": why,
                               "rules": {d.rule: d.outcome for d in decisions}})
        held = "\n".join(d.rule for d in decisions if d.outcome == "hold")
        self.index.conn.execute("INSERT OR REPLACE INTO rule_marks VALUES (?,?,?,?,?)",
                                (plan_uid, row["signature"], row["state"], time.time(), held))
        if not decisions:
            return None
        return RulesEvaluated(plan_uid, facts.patient_id, facts.label,
                              tuple(d.rule for d in decisions if d.outcome == "send"),
                              tuple(d.rule for d in decisions if d.outcome == "hold"),
                              tuple(j.job_id for d in decisions for j in d.jobs if j.job_id is not None))

    def _send(self, d: Decision, f: PlanFacts) -> None:
        """One target at a time: a disabled node must not keep the plan from the others."""
        errors = []
        nodes = self._config().nodes if d.named and d.named != d.targets else ()  # only a group leaves one out
        for target in d.targets:
            if left_out(target, d.named, nodes):  # disabled, and named only through a group: the others go on
                continue
            try:
                [e] = self.sender.enqueue_plan(f.plan_uid, [target], include=d.include, origin=f"rule:{d.rule}",
                                               transform=encode_chain(d.transforms))
            except ValueError as exc:
                errors.append(f"{target}: {exc}")
                continue
            d.jobs.append(JobMade(e.node, e.job_id, e.items, e.already_delivered, e.already_queued))
        if errors:
            d.outcome, d.reason = "error", "; ".join(errors)

    def _other_actions(self, d: Decision, rule: RuleConfig, bundle: Bundle) -> None:
        """The rule's tag and export, after its sends were queued; a failed export makes the decision an error
        (audited, logged with its reason) and keeps the sends."""
        if rule.tag:
            add_tag(self.index.conn, bundle.plan_uid, rule.tag, f"rule:{rule.name}")
        if not rule.export:
            return
        store = self.sender.store
        files = [store.abspath(m.path) for m in bundle.ordered(parts_for(rule.include))]
        target = export_path(rule.export, export_fields(rule, bundle.plan_uid, bundle.patient_id,
                                                        bundle.patient_name, bundle.label, bundle.sources))
        try:
            done = export_bundle(self._config(), rule, files, target)
        except (OSError, TransformError, ValueError) as exc:
            log.exception("rule %r: exporting plan %s to %s failed", rule.name, bundle.plan_uid, target)
            prior = d.reason if d.outcome == "error" else ""  # a target that could not be queued says so too
            d.outcome, d.reason = "error", "; ".join(filter(None, [prior, f"export to {target} failed: {exc}"]))
            return
        d.export = f"{done.path} ({done.files} files)"

    def _record(self, d: Decision, f: PlanFacts, why: str) -> None:
        audit("rule_decision", plan_uid=f.plan_uid, patient_id=f.patient_id, label=f.label, rule=d.rule,
              matched=d.matched, outcome=d.outcome, failed_condition=d.condition or None, reason=d.reason,
              sources=list(f.sources), complete=f.complete, missing=f.missing, trigger=why,
              targets=list(d.targets) if d.matched else [], jobs=[asdict(j) for j in d.jobs],
              export=d.export or None if d.matched else None, tag=d.tag or None if d.matched else None)
        level = logging.ERROR if d.outcome == "error" else logging.INFO
        log.log(level, "plan %s (%s) of patient %s: rule %r %s", f.label, f.plan_uid, f.patient_id, d.rule,
                d.describe())
