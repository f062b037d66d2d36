"""Sending: plan bundles (or instance sets) to nodes, through the persistent queue, with retry and resume.

One worker per node with its own threads (up to the node's ``max_associations``), so a dead or slow node never
delays the others: a plan to three nodes takes about as long as to the slowest one. A scheduler polls the queue
twice a second, so jobs added by another process (``rtstation send`` in another shell) start within a second;
the same poll notices jobs another process changed (``queuewatch``) and announces them like its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable

from ..audit import audit
from ..plans.bundle import INCLUDE_TO_PART, PARTS, Member, bundle_for, members_by_sop
from ..config.model import Config
from ..events import EventBus, JobChanged, JobProgress
from ..store.index import Index
from ..loops import Ticker
from ..config.nodes import NodeConfig, resolve_node
from ..config.groups import resolve_targets
from ..store.lock import pid_alive
from .queuewatch import QueueWatch
from .queue import CANCELLED, DONE, FAILED, QUEUED, SENDING, WAITING, ItemRow, JobQueue, JobRow, NewItem
from ..config.retry import parse_schedule
from .scu import (AssociationFailed, EchoResult, StoreOutcome, accepted_pairs, associate, close, contexts_for, echo,
                  store)
from .verify import damage
from ..store.files import Store
from ..dimse.tls import client_context
from ..transforms.base import TransformError
from ..transforms.registry import build_chain
from ..config.transforms import decode_chain, describe_chain, join_chains, reads_bundle
from . import commitment, priority
from .ratelimit import Pacing
from .hooks import run_hooks, sent_facts
from . import outgoing

log = logging.getLogger("rtstation.sender")
POLL_SECONDS = 0.5
PROGRESS_EVERY = 0.1
CANCEL_CHECK = 0.25  # s between looks at the job's state while sending


LEVEL_KEYS = {"series": "Series Instance UID", "study": "Study Instance UID", "patient": "PatientID"}


@dataclass(frozen=True)
class Enqueued:
    node: str
    job_id: int | None  # None: nothing left to send to this node
    items: int
    already_delivered: int
    already_queued: int


def send_report(queue: JobQueue, results: Iterable[Enqueued]) -> list[dict[str, Any]]:
    """What ``rtstation send --json`` prints and ``POST /api/v1/send`` answers: per node, the job and its state."""
    out = []
    for r in results:
        job = queue.job(r.job_id) if r.job_id is not None else None
        out.append({"node": r.node, "job_id": r.job_id, "instances": r.items,
                    "already_delivered": r.already_delivered, "already_queued": r.already_queued,
                    "state": job.state if job else "nothing to send", "error": job.error if job else "",
                    "done": job.done if job else 0, "failed": job.failed if job else 0,
                    "attempts": job.attempts if job else 0, "transform": job.transform if job else "",
                    "derived": job.derived if job else 0, "objects": job.objects if job else "",
                    "commitment": commitment.state_of(queue, r.job_id)})
    return out


def parts_for(include: Iterable[str] | None) -> tuple[str, ...]:
    """Rule/CLI include names (images, structures, plan, doses, registrations) → bundle parts."""
    return PARTS if include is None else tuple(INCLUDE_TO_PART[i] for i in include)


class Sender:
    """The Station's sending service; also usable alone (``rtstation send --wait`` without a server)."""

    def __init__(self, config: Config, index: Index, store_: Store, bus: EventBus) -> None:
        self.config = config
        self.index = index
        self.store = store_
        self.bus = bus
        self.queue = JobQueue(config.data_dir)
        self.watch = QueueWatch(self.queue.path)
        self._pools: dict[str, concurrent.futures.ThreadPoolExecutor] = {}
        self._running: dict[int, str] = {}  # job id -> node name
        self._per_node: dict[str, int] = {}
        self._lock = threading.Lock()
        self._ticker = Ticker("sender", self._poll, lambda: POLL_SECONDS)
        self._next_expiry = 0.0
        self._stopping = threading.Event()
        self._crashed: dict[int, str] = {}  # job id -> why it crashed, until its retry is recorded in the queue
        self.pacing = Pacing()  # per-node rate limits (max_instances_per_s, max_mb_per_s)
        self._yielded: set[int] = set()  # running jobs giving their node up to a manual send (outbound/priority)
        # nodes with tls = true: the peer's certificate must chain to [tls] ca; ours is shown when configured
        self.tls_client: Any = lambda node: client_context(self.config.tls, node)

    # -- service ---------------------------------------------------------------------------------------------
    async def start(self, station: Any = None) -> None:
        resumed = await asyncio.to_thread(self.queue.recover, pid_alive)
        if resumed:
            log.warning("resuming %d send jobs interrupted by a restart (acknowledged instances are not resent)",
                        len(resumed))
        for job_id, doubt in resumed:
            for item in doubt:
                log.warning("job %d: %s %s was in flight when the sender died; sending it again (the peer may get "
                            "it twice)", job_id, item.modality, item.sop_uid)
        self._ticker.start()

    async def stop(self) -> None:
        """Running jobs stop after their current instance and go back to the queue; acknowledged ones stay done."""
        self._stopping.set()
        await self._ticker.stop()
        pools = list(self._pools.values())
        await asyncio.to_thread(lambda: [p.shutdown(wait=True) for p in pools])
        self.watch.close()

    def kick(self) -> None:
        """Look at the queue now (safe from any thread)."""
        self._ticker.kick()

    async def _poll(self) -> None:
        if self._stopping.is_set():
            return
        for changed in await asyncio.to_thread(self.watch.changed):
            self._announce(changed)
        await asyncio.to_thread(self._reschedule_crashed)
        if time.monotonic() >= self._next_expiry:  # commitments past their deadline: now and then, not per poll
            self._next_expiry = time.monotonic() + 30.0
            await asyncio.to_thread(commitment.expire, self.queue, None, self.announce)
        for job in await asyncio.to_thread(self.queue.due, time.time()):
            self._maybe_run(job)

    def _reschedule_crashed(self) -> None:
        """Jobs whose crash could not be recorded when it happened (the disk was full then): record it now, so
        they are retried on their schedule instead of sitting in "sending" until a restart."""
        for job_id, why in list(self._crashed.items()):
            with self._lock:
                if job_id in self._running:
                    continue
            job = self.queue.job(job_id)
            if job is None:
                self._crashed.pop(job_id, None)
                continue
            try:
                self._schedule_retry(job_id, self._node_for(job), why)
            except Exception as exc:  # still cannot write (disk still full): next poll
                log.debug("job %d: retry not recorded yet: %s", job_id, exc)
                continue
            self._crashed.pop(job_id, None)
            self._post_changed(job_id)

    def _maybe_run(self, job: JobRow) -> None:
        node = self._node_for(job)
        with self._lock:
            if job.id in self._running or self._per_node.get(node.name, 0) >= node.max_associations:
                return
            self._running[job.id] = node.name
            self._per_node[node.name] = self._per_node.get(node.name, 0) + 1
        pool = self._pools.get(node.name)
        if pool is None:
            pool = self._pools[node.name] = concurrent.futures.ThreadPoolExecutor(
                max_workers=node.max_associations, thread_name_prefix=f"send-{node.name}")
        pool.submit(self._run_job, job.id, node)

    def _node_for(self, job: JobRow) -> NodeConfig:
        """The node as configured now (edits apply to the next attempt), else the job's own snapshot."""
        return self.config.node(job.node) or job.node_config()

    # -- enqueueing ------------------------------------------------------------------------------------------
    def enqueue_plan(self, plan_uid: str, nodes: Iterable[str], *, include: Iterable[str] | None = None,
                     origin: str = "manual", force: bool = False, transform: str = "") -> list[Enqueued]:
        """A job per node for the plan's bundle, minus what each node already got or is about to get.
        ``transform`` (e.g. ``anonymize:rt-research``): the node gets transformed copies, the store keeps all."""
        self._check_transform(transform)
        bundle = bundle_for(self.index.conn, plan_uid)
        if bundle is None:
            raise ValueError(f"no plan with SOP Instance UID {plan_uid} in the index")
        members = bundle.ordered(parts_for(include))
        return [self._enqueue(node, members, bundle.plan_uid, bundle.patient_id, bundle.label, origin, force,
                              transform) for node in self._targets(nodes)]

    def enqueue_level(self, level: str, uid: str, nodes: Iterable[str], *, origin: str = "manual",
                      force: bool = False, transform: str = "") -> list[Enqueued]:
        """A job per node for everything stored under one series, study or patient: plan objects and unconnected
        ones alike (900 loose CT slices are one ``--series``, not 900 ``--sop``)."""
        sops = self.index.sop_uids_of(level, uid)
        if not sops:
            raise ValueError(f"no {level} {uid!r} in the index (give its {LEVEL_KEYS[level]})")
        return self.enqueue_instances(sops, nodes, origin=origin, force=force, label=f"{level} {uid}",
                                      transform=transform)

    def enqueue_instances(self, sop_uids: list[str], nodes: Iterable[str], *, origin: str = "manual",
                          force: bool = False, label: str = "", transform: str = "") -> list[Enqueued]:
        """A job per node for a set of instances (e.g. unconnected objects an operator picked)."""
        self._check_transform(transform)
        members = members_by_sop(self.index.conn, sop_uids)
        missing = set(sop_uids) - {m.sop_uid for m in members}
        if missing:
            raise ValueError(f"not in the index: {', '.join(sorted(missing))}")
        patients = sorted({self._patient_of(m) for m in members})
        label = f"{label + ': ' if label else ''}{len(members)} instances"
        return [self._enqueue(node, members, "", ", ".join(patients), label, origin, force, transform)
                for node in self._targets(nodes)]

    def _targets(self, specs: Iterable[str]) -> list[NodeConfig]:
        """Node names, group names (expanded to their enabled nodes) and ``AET@host:port`` specs."""
        return resolve_targets(list(specs), self.config.nodes, self.config.groups)

    def _check_transform(self, spec: str) -> None:
        """An unknown transform or profile is refused when queueing, not at 3 a.m. when the job runs."""
        if spec:
            try:
                build_chain(spec, self.config)
            except TransformError as exc:
                raise ValueError(str(exc)) from None

    def _patient_of(self, m: Member) -> str:
        row = self.index.conn.execute("SELECT patient_id FROM instances WHERE id=?", (m.id,)).fetchone()
        return row[0] if row else ""

    def send_plan(self, plan_uid: str, nodes: list[str], *, parts: Iterable[str] | None = None,
                  origin: str = "manual", force: bool = False, transform: str = "") -> list[int]:
        """The console's call: job ids created (nodes that already have everything get none)."""
        return [e.job_id for e in self.enqueue_plan(plan_uid, nodes, include=parts, origin=origin, force=force,
                                                    transform=transform) if e.job_id is not None]

    def _enqueue(self, node: NodeConfig, members: list[Member], plan_uid: str, patient_id: str, label: str,
                 origin: str, force: bool, transform: str = "") -> Enqueued:
        if not node.enabled:
            raise ValueError(f"node {node.name} is disabled ([[nodes]] enabled = false)")
        transform = join_chains(transform, node.chain())  # the node's own transforms apply to all it gets
        self._check_transform(transform)
        paths = [str(self.store.abspath(m.path)) for m in members]
        delivered = set() if force else self.queue.delivered(node.name, paths, transform)
        pending = self.queue.pending(node.name, paths, transform)
        have = delivered | pending
        everything = [NewItem(m.sop_uid, m.sop_class, m.modality, p, m.size, m.transfer_syntax)
                      for m, p in zip(members, paths)]
        items = [i for i in everything if i.path not in have]
        job_id = None
        if items:
            # a bundle-wide chain (seg: the RTSTRUCT and its images) reads what the node has too, without sending it
            whole = reads_bundle(transform) and len(items) < len(everything)
            job_id = self.queue.add_job(node, everything if whole else items, plan_uid=plan_uid,
                                        patient_id=patient_id, label=label, origin=origin, transform=transform,
                                        inputs=have if whole else ())
            log.info("queued job %d: %s (%s) to %s, %d instances (%s)%s", job_id, label, plan_uid or "instances",
                     node.name, len(items), origin, f", sent as {describe_chain(transform)}" if transform else "")
            self._post_changed(job_id)
            self.kick()
        return Enqueued(node.name, job_id, len(items), len(delivered & set(paths)), len(pending))

    # -- by hand ---------------------------------------------------------------------------------------------
    def retry(self, job_id: int) -> bool:
        ok = self.queue.retry(job_id)
        if ok:
            log.info("job %d queued again by hand", job_id)
            self._post_changed(job_id)
            self.kick()
        return ok

    def cancel(self, job_id: int) -> bool:
        ok = self.queue.cancel(job_id)
        if ok:
            log.info("job %d cancelled by hand", job_id)
            self._post_changed(job_id)
        return ok

    def echo(self, node: str) -> EchoResult:
        cfg = resolve_node(node, self.config.nodes)
        return echo(cfg, self.config.station.ae_title, self._ssl(cfg), self.config.network.fast_paths)

    def _ssl(self, node: NodeConfig) -> Any:
        return self.tls_client(node) if (node.tls and self.tls_client is not None) else None

    # -- one job, in a node's thread -------------------------------------------------------------------------
    def _run_job(self, job_id: int, node: NodeConfig) -> None:
        try:
            if self.queue.claim(job_id, os.getpid()):
                self._post_changed(job_id)
                self._attempt(job_id, node)
        except Exception as exc:
            why = f"the send stopped on an internal error: {type(exc).__name__}: {exc}"
            log.exception("send job %d crashed; it will be retried on its schedule (%s)", job_id, node.retry)
            self._crashed[job_id] = why
            try:
                self._schedule_retry(job_id, node, why)
                self._crashed.pop(job_id, None)
            except Exception as again:  # e.g. the disk is full: the queue cannot record it; the poll tries again
                log.error("job %d: cannot record the retry now (%s); trying again every %.1f s", job_id, again,
                          POLL_SECONDS)
        finally:
            with self._lock:
                self._yielded.discard(job_id)
                self._running.pop(job_id, None)
                self._per_node[node.name] = max(0, self._per_node.get(node.name, 1) - 1)
            self._post_changed(job_id)
            self.kick()

    def _attempt(self, job_id: int, node: NodeConfig) -> None:
        job = self.queue.job(job_id)
        assert job is not None
        if not job.transform:
            items = self.queue.items(job_id, [QUEUED, SENDING])
            self._send(job, node, items, {i.seq: i.path for i in items})
            return
        try:
            copies = outgoing.prepare(self.config, self.queue, job)
        except (TransformError, ValueError, OSError) as exc:
            named = isinstance(exc, TransformError) and str(exc).startswith(tuple(decode_chain(job.transform)))
            self._refuse(job, str(exc) if named else f"{describe_chain(job.transform)}: {exc}")
            return
        try:  # the rows as the copies settled them (a chain that derives objects added rows of its own)
            settled = self.queue.job(job_id)
            assert settled is not None
            self._send(settled, node, self.queue.items(job_id, [QUEUED, SENDING]), copies)
        finally:
            outgoing.discard(outgoing.outgoing_dir(self.config.data_dir, job_id))

    def _refuse(self, job: JobRow, reason: str) -> None:
        """The transform cannot apply: nothing of the bundle goes out, the job fails with the reason."""
        for item in self.queue.items(job.id, [QUEUED, SENDING]):
            self.queue.mark_item(job.id, item.seq, FAILED, error=reason, permanent=True)
        self.queue.set_state(job.id, FAILED, error=reason)
        log.error("job %d to %s: nothing sent: %s", job.id, job.node, reason)
        self._audit(job.id)

    def _send(self, job: JobRow, node: NodeConfig, items: list[ItemRow], sources: dict[int, str]) -> None:
        """One association for the job's remaining items; ``sources`` names the file to send for each."""
        job_id = job.id
        try:
            assoc = associate(node, self.config.station.ae_title,
                              contexts_for({(i.sop_class, i.transfer_syntax) for i in items}), self._ssl(node),
                              self.config.network.fast_paths)
        except AssociationFailed as exc:
            log.warning("job %d to %s (%s): %s", job_id, node.name, node.describe(), exc)
            if exc.permanent:
                self._give_up(job_id, node, f"{exc} (final: not retried; fix the node, then `rtstation queue "
                              f"retry {job_id}`)")
            else:
                self._schedule_retry(job_id, node, str(exc))
            return
        except ValueError as exc:  # more presentation contexts than one association carries: never better
            log.warning("job %d to %s (%s): %s", job_id, node.name, node.describe(), exc)
            self._give_up(job_id, node, str(exc))
            return
        accepted = accepted_pairs(assoc)
        started, done, sent_bytes, last = time.monotonic(), job.done, job.bytes_done, 0.0
        lost = ""
        try:
            checked = 0.0
            for item in items:
                if self._stopping.is_set():
                    break
                if time.monotonic() - checked > CANCEL_CHECK:  # a cancel from the console or another shell
                    checked = time.monotonic()
                    if self.queue.state_of(job_id) == CANCELLED or self._yield_to(job, node, done):
                        break
                if not self._pace(job, node, item, done):
                    break
                broken = None if item.derived else damage(item.path, item.size, item.transfer_syntax)
                out = StoreOutcome(False, None, broken, permanent=True) if broken else \
                    store(assoc, sources[item.seq], item.sop_class, item.transfer_syntax, item.size, node.timeout_s, accepted)
                if out.ok:
                    self.queue.mark_item(job_id, item.seq, DONE, status=out.status, error=out.error, size=item.size)
                    done, sent_bytes = done + 1, sent_bytes + item.size
                    if out.error:
                        log.warning("job %d: %s %s to %s: %s", job_id, item.modality, item.sop_uid, node.name, out.error)
                elif out.status is None and not out.permanent:
                    lost = out.error  # the association is gone: stop here, retry later
                    break
                else:
                    self.queue.mark_item(job_id, item.seq, FAILED, status=out.status, error=out.error,
                                         permanent=out.permanent)
                    log.error("job %d: %s %s to %s failed: %s", job_id, item.modality, item.sop_uid, node.name,
                              out.error)
                now = time.monotonic()
                if now - last >= PROGRESS_EVERY:
                    last = now
                    self._progress(job, done, sent_bytes, (done - job.done) / max(now - started, 1e-6))
        finally:
            close(assoc)
        self._progress(job, done, sent_bytes, (done - job.done) / max(time.monotonic() - started, 1e-6))
        self._finish(job_id, node, lost)

    def _pace(self, job: JobRow, node: NodeConfig, item: ItemRow, done: int) -> bool:
        """The node's rate limit (ratelimit.py), before each C-STORE; False: stop, cancel or yield meanwhile."""
        return self.pacing.wait(node, item.size, self._stopping, lambda: self.queue.state_of(job.id) == CANCELLED
                                or self._yield_to(job, node, done))

    def _yield_to(self, job: JobRow, node: NodeConfig, done: int) -> bool:
        """True when a higher-priority job waits for this node and every slot is taken: this job gives it up after
        the instance just acknowledged, and goes back to the queue behind it (see outbound/priority.py)."""
        with self._lock:
            full = self._slots_full(node)
        other = priority.should_yield(self.queue, job.id, node.name, job.priority, full, time.time())
        if other is None:
            return False
        with self._lock:
            if not self._slots_full(node):  # another job of this node gave its slot up meanwhile
                return False
            self._yielded.add(job.id)
        log.info("job %d to %s: paused after %d of %d instances for job %d (a manual send); it resumes after it",
                 job.id, node.name, done, job.total, other)
        return True

    def _slots_full(self, node: NodeConfig) -> bool:
        """Every association the node allows is in use (slots being given up count as free). Under ``_lock``."""
        leaving = sum(1 for j in self._yielded if self._running.get(j) == node.name)
        return self._per_node.get(node.name, 0) - leaving >= node.max_associations

    def _finish(self, job_id: int, node: NodeConfig, lost: str) -> None:
        state = self.queue.state_of(job_id)
        if state == CANCELLED:
            self.queue.cancel_items(job_id)
            return
        yielded = job_id in self._yielded
        if (self._stopping.is_set() or yielded) and not lost:
            self.queue.requeue_items(job_id, include_failed=False)
            self.queue.set_state(job_id, QUEUED, next_try=0.0, error=priority.YIELDED if yielded else None)
            return
        left = self.queue.items(job_id, [QUEUED, SENDING])
        retryable = [i for i in self.queue.items(job_id, [FAILED]) if not i.permanent]
        if lost or left or retryable:
            self._schedule_retry(job_id, node, lost or f"{len(retryable)} instances refused by the peer")
            return
        job = self.queue.job(job_id)
        assert job is not None
        if job.failed:
            self.queue.set_state(job_id, FAILED, error=f"{job.failed} of {job.total} instances cannot be sent "
                                 f"to this node (see the instance errors)")
        else:
            self.queue.set_state(job_id, DONE, error="")
            log.info("job %d: %s%s delivered to %s (%s)", job_id, "plan " if job.plan_uid else "", job.label,
                     node.name, job.objects)
            commitment.after_delivery(self.queue, node, self.config, job, self._ssl(node))
        self._audit(job_id)

    def _schedule_retry(self, job_id: int, node: NodeConfig, error: str) -> None:
        job = self.queue.job(job_id)
        if job is None or job.state == CANCELLED:
            return
        delays = parse_schedule(node.retry)
        if job.attempts >= len(delays):
            self._give_up(job_id, node, f"gave up after {job.attempts + 1} attempts ({node.retry}): {error}")
            return
        self.queue.requeue_items(job_id, include_failed=True)
        delay = delays[job.attempts]
        self.queue.set_state(job_id, WAITING, error=error, next_try=time.time() + delay, attempts=job.attempts + 1)
        log.info("job %d to %s: retry %d of %d in %.0f s (%s)", job_id, node.name, job.attempts + 1, len(delays),
                 delay, error)
        self._audit(job_id)

    def _give_up(self, job_id: int, node: NodeConfig, msg: str) -> None:
        """The job is over without every instance delivered: what was not delivered is ``failed`` (with the
        reason) and counted, never left ``queued`` in a job nobody will run."""
        self.queue.fail_remaining(job_id, msg)
        self.queue.set_state(job_id, FAILED, error=msg)
        log.error("job %d to %s failed: %s", job_id, node.name, msg)
        self._audit(job_id)

    def _audit(self, job_id: int) -> None:
        """Every attempt's outcome, for the audit trail (who got which plan, when, and what failed)."""
        job = self.queue.job(job_id)
        if job is not None:
            audit("send_result", job=job.id, node=job.node, plan_uid=job.plan_uid, label=job.label,
                  patient_id=job.patient_id, origin=job.origin, state=job.state, attempt=job.attempts,
                  done=job.done, failed=job.failed, total=job.total, error=job.error)
            if job.state in (DONE, FAILED):  # the job ended: site hooks (plug-ins) hear of it
                run_hooks("on_sent", sent_facts(job))

    # -- events ----------------------------------------------------------------------------------------------
    def _post_changed(self, job_id: int) -> None:
        job = self.queue.job(job_id)
        if job is not None:
            self.watch.note(job)
            self._announce(job)

    def announce(self, job_id: int) -> None:
        """Tell the world a job changed (its storage commitment was settled by a report, from any thread)."""
        self._post_changed(job_id)

    def _announce(self, job: JobRow) -> None:
        settled = commitment.state_of(self.queue, job.id) if job.state == DONE else ""
        self.bus.post(JobChanged(job.id, job.node, job.plan_uid, job.label, job.state, job.done, job.total,
                                 job.failed, job.error, settled))

    def _progress(self, job: JobRow, done: int, nbytes: int, rate: float) -> None:
        self.bus.post(JobProgress(job.id, job.node, job.plan_uid, job.label, done, job.total, nbytes,
                                  job.bytes_total, rate))


