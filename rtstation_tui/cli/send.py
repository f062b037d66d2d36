"""``rtstation send --plan UID|LABEL --to NODE[,NODE...]``: queue a plan bundle for one or many nodes; ``--sop``,
``--series``, ``--study`` or ``--patient`` (alone) send what is stored there instead, plan objects or not.

With a station serving the data_dir's API socket, it queues the jobs (``POST /api/v1/send``: its log says who asked)
and starts them at once. Without one, ``--wait`` runs the sender in this process until every job ends; otherwise the
jobs wait for the next ``serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any, Callable

from ..engine.plans.bundle import Bundle, bundle_for, resolve_plan as bundle_resolve_plan
from ..engine.audit import configure as configure_audit
from ..engine.config.model import Config
from ..engine.events import EventBus
from ..engine.store.index import Index
from ..engine.logsetup import setup_logging
from ..engine.store.lock import DataDirLock, StationLocked
from ..engine.outbound.queue import ACTIVE, DONE, JobQueue
from ..engine.config.rules import INCLUDE_PARTS
from ..engine.config.transforms import describe_chain, encode_chain
from ..engine.outbound.sender import Sender, send_report
from ..engine.store.files import Store
from .output import fail, print_json
from .remote import ApiCallError, ApiClient, api_fail, connect


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("send", parents=[common], help="send a plan bundle, instances, a series, a study or a "
                       "patient to one or more nodes")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--plan", metavar="UID|LABEL", help="plan SOP Instance UID or RTPlanLabel")
    what.add_argument("--sop", action="append", metavar="UID", help="send these instances (repeatable)")
    what.add_argument("--series", metavar="UID", help="every stored instance of this Series Instance UID")
    what.add_argument("--study", metavar="UID", help="every stored instance of this Study Instance UID")
    p.add_argument("--patient", metavar="ID", help="alone: every stored instance of this PatientID; with --plan: "
                   "the patient whose plan label is meant, when several patients use it")
    p.add_argument("--to", required=True, metavar="NODE[,NODE...]", help="node names, [[groups]] names (each sends "
                   "to its enabled nodes) or AET@host:port")
    p.add_argument("--include", metavar="PARTS", help=f"comma-separated subset of {','.join(INCLUDE_PARTS)}")
    p.add_argument("--force", action="store_true", help="also send what the node already acknowledged")
    p.add_argument("--anonymize", metavar="PROFILE", help="send de-identified copies made with this [anonymize] "
                   "profile (the store keeps the originals); the same as --transform anonymize:PROFILE")
    p.add_argument("--transform", metavar="SPEC", action="append", default=[],
                   help="send copies changed by a transform; repeat for a chain, applied in order (then the "
                   "node's own): anonymize:PROFILE, overlay[:ROI,...], seg[:ROI,...] (adds a SEG), classic "
                   "(Enhanced images as classic ones), set:TAG=TEMPLATE, add:TAG=TEMPLATE, "
                   "remove:TAG, label:normalize, label:TEMPLATE")
    p.add_argument("--wait", action="store_true", help="wait until every job is done or failed")
    p.add_argument("--timeout", type=_seconds, metavar="SECONDS",
                   help="with --wait: stop waiting after SECONDS (the jobs stay queued; exit 1 if not all done)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of seconds above 0")
    return value


def _deadline(args: argparse.Namespace) -> float | None:
    return time.monotonic() + args.timeout if args.timeout is not None else None


def _timed_out(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    if any(r["state"] in ACTIVE for r in rows):
        print(f"rtstation: stopped waiting after {args.timeout:g} s; the unfinished jobs stay in the queue "
              f"(rtstation queue; rtstation queue cancel JOB to drop one)", file=sys.stderr)


def resolve_plan(index: Index, plan: str, patient: str | None) -> str:
    return bundle_resolve_plan(index.conn, plan, patient)


def resolve_bundle(index: Index, plan: str, patient: str | None) -> Bundle:
    """The bundle of a plan named by UID or label (ValueError with the candidates or what is missing)."""
    plan_uid = resolve_plan(index, plan, patient)
    bundle = bundle_for(index.conn, plan_uid)
    if bundle is None:
        raise ValueError(f"plan {plan_uid} is not in the index")
    return bundle


def run(args: argparse.Namespace, config: Config) -> int:
    setup_logging(config, stream=sys.stderr, level=args.log_level or "WARNING")
    include = args.include.split(",") if args.include else None
    if include and (bad := [i for i in include if i not in INCLUDE_PARTS]):
        return fail(f"--include: unknown part {bad[0]!r}; choose from {', '.join(INCLUDE_PARTS)}", 2)
    targets = [t.strip() for t in args.to.split(",") if t.strip()]
    level = next((k for k in ("series", "study") if getattr(args, k)), "patient" if not args.plan and not args.sop
                 and args.patient else None)
    if level is None and not args.plan and not args.sop:
        return fail("say what to send: --plan, --sop, --series, --study or --patient", 2)
    if args.include and not args.plan:
        return fail("--include selects parts of a plan bundle: use it with --plan", 2)
    # --anonymize P is --transform anonymize:P, first in the chain (de-identify, then edit the de-identified copy)
    transform = encode_chain([f"anonymize:{args.anonymize}"] * bool(args.anonymize) + args.transform)
    if args.timeout is not None and not args.wait:
        return fail("--timeout needs --wait", 2)
    remote = connect(config)
    if remote is not None:
        return _send_via_api(remote, args, include, targets, level, transform)
    configure_audit(config.log_dir, config.logging.retention_days)
    index = Index(config.data_dir)
    sender = Sender(config, index, Store(config.data_dir, config.receiver.durability), EventBus())
    try:
        if args.sop:
            results = sender.enqueue_instances(args.sop, targets, force=args.force, transform=transform,
                                               origin="cli")
        elif level is not None:
            uid = args.patient if level == "patient" else getattr(args, level)
            results = sender.enqueue_level(level, uid, targets, force=args.force, transform=transform,
                                           origin="cli")
        else:
            plan_uid = resolve_plan(index, args.plan, args.patient)
            results = sender.enqueue_plan(plan_uid, targets, include=include, force=args.force, transform=transform,
                                          origin="cli")
    except ValueError as exc:
        return fail(str(exc), 2)
    jobs = [r.job_id for r in results if r.job_id is not None]
    lock = DataDirLock(config.data_dir)
    server = _server_running(lock)
    if args.wait and jobs:
        deadline = _deadline(args)
        if server:
            rows = _wait_polling(_local_job(sender.queue), jobs, args.json, deadline)
        else:
            rows = asyncio.run(_run_here(sender, jobs, args.json, deadline))
            lock.release()
        _timed_out(args, rows)
    elif not server and jobs and not args.json:
        print("no server is running on this data_dir: the jobs start with the next `rtstation serve` (or use --wait)")
    return _report(sender.queue, results, args.json, waited=args.wait)


def _server_running(lock: DataDirLock) -> bool:
    """True when a serve process holds the data_dir; otherwise we now hold it (released by the caller)."""
    try:
        lock.acquire()
    except StationLocked:
        return True
    return False


def _send_via_api(remote: ApiClient, args: argparse.Namespace, include: list[str] | None,
                  targets: list[str], level: str | None, transform: str) -> int:
    """The running station queues the jobs (and logs who asked), with the same level and transform as a send
    from this process; --wait follows them through the API."""
    body: dict[str, Any] = {"to": targets, "include": include, "force": args.force, "transform": transform}
    if args.sop:
        body["sop"] = args.sop
    elif level is not None:
        body[level] = args.patient if level == "patient" else getattr(args, level)
    else:
        body.update(plan=args.plan, patient=args.patient)
    try:
        rows = remote.call_sync("POST", "/api/v1/send", body)
        jobs = [r["job_id"] for r in rows if r["job_id"] is not None]
        if args.wait and jobs:
            def fetch(job_id: int) -> dict[str, Any] | None:
                return remote.call_sync("GET", f"/api/v1/jobs/{job_id}")  # type: ignore[no-any-return]

            waited = _wait_polling(fetch, jobs, args.json, _deadline(args))
            _timed_out(args, waited)
            final = {r["id"]: r for r in waited}
            rows = [{**r, **{k: final[r["job_id"]][k] for k in ("state", "error", "done", "failed", "attempts",
                                                                "derived", "objects") if k in final[r["job_id"]]}}
                    if r["job_id"] in final else r for r in rows]
    except ApiCallError as exc:
        return api_fail(exc)
    return print_report(rows, args.json, waited=args.wait)


def _local_job(queue: JobQueue) -> Callable[[int], dict[str, Any] | None]:
    def fetch(job_id: int) -> dict[str, Any] | None:
        job = queue.job(job_id)
        return job.as_json() if job is not None else None
    return fetch


def _wait_polling(fetch: Callable[[int], dict[str, Any] | None], jobs: list[int],
                  quiet: bool, deadline: float | None = None) -> list[dict[str, Any]]:
    """Print each job's changes until none is active or the deadline passed; returns the jobs' last rows."""
    last: dict[int, str] = {}
    while True:
        rows = [r for r in (fetch(j) for j in jobs) if r is not None]
        for r in rows:
            if not quiet and last.get(r["id"]) != f"{r['state']}{r['done']}":
                last[r["id"]] = f"{r['state']}{r['done']}"
                print(f"job {r['id']} {r['node']}: {r['state']} {r['done']}/{r['total']}"
                      + (f" ({r['error']})" if r["error"] else ""), file=sys.stderr)
        if all(r["state"] not in ACTIVE for r in rows) or (deadline is not None and time.monotonic() >= deadline):
            return rows
        time.sleep(0.2)  # polling another process's queue: nothing to wait on but the database


async def _run_here(sender: Sender, jobs: list[int], quiet: bool, deadline: float | None) -> list[dict[str, Any]]:
    sender.bus.start()
    await sender.start()
    try:
        return await asyncio.to_thread(_wait_polling, _local_job(sender.queue), jobs, quiet, deadline)
    finally:
        await sender.stop()
        await sender.bus.stop()


def _report(queue: JobQueue, results: list, as_json: bool, waited: bool) -> int:  # type: ignore[type-arg]
    return print_report(send_report(queue, results), as_json, waited)


def print_report(out: list[dict[str, Any]], as_json: bool, waited: bool) -> int:
    """Print what was queued (the same rows whether this process or the station's API queued it)."""
    if as_json:
        print_json(out)
    else:
        for o in out:
            extra = f", {o['already_delivered']} already delivered" if o["already_delivered"] else ""
            extra += f", {o['already_queued']} already queued" if o["already_queued"] else ""
            job = f"job {o['job_id']}" if o["job_id"] is not None else "no job"
            sent_as = f" as {describe_chain(o['transform'])}" if o["transform"] else ""
            made = f" → {o['objects']}" if o.get("derived") else ""  # seg, classic: what the peer got
            print(f"{o['node']}: {job}, {o['instances']} instances{sent_as}{made}{extra}: {o['state']}"
                  + (f" ({o['error']})" if o["error"] else ""))
    if waited and any(o["job_id"] is not None and o["state"] != DONE for o in out):
        return 1
    return 0
