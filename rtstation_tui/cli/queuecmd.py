"""``rtstation queue [--json]``, ``queue show JOB``, ``queue retry JOB``, ``queue cancel JOB``, ``queue commit JOB``
(ask for Storage Commitment again); ``queue repair`` and ``queue reset`` for a damaged queue.sqlite (stop the
server first)."""

from __future__ import annotations

import argparse
import datetime
from dataclasses import asdict

from ..engine.config.model import Config
from ..engine.config.transforms import describe_chain
from ..engine.outbound.commitment import request, unasked, state_of
from ..engine.outbound.queue import JobQueue, JobRow
from ..engine.outbound.queue_repair import repair, reset
from ..engine.store.lock import DataDirLock, StationLocked
from .output import fail, print_json
from .remote import ApiCallError, ApiClient, api_fail, connect


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("queue", parents=[common], help="list send jobs; show, retry or cancel one; repair or "
                       "reset a damaged queue")
    p.add_argument("action", nargs="?", choices=["list", "show", "retry", "cancel", "commit", "repair", "reset"],
                   default="list")
    p.add_argument("job", nargs="?", type=int)
    p.add_argument("--active", action="store_true", help="only queued, sending and waiting jobs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    if args.action in ("retry", "cancel") and args.job is not None and (remote := connect(config)) is not None:
        return _act_via_api(remote, args.action, args.job)
    if args.action in ("repair", "reset"):
        return _mend(args, config)
    queue = JobQueue(config.data_dir)
    if args.action == "list":
        jobs = queue.jobs(active_only=args.active)
        if args.json:
            print_json([{**j.as_json(), "commitment": state_of(queue, j.id)} for j in jobs])
        for j in [] if args.json else jobs:
            when = datetime.datetime.fromtimestamp(j.created).strftime("%Y-%m-%d %H:%M")
            retry = ""
            if j.state == "waiting-retry":
                retry = f", next try {datetime.datetime.fromtimestamp(j.next_try).strftime('%H:%M:%S')}"
            sent_as = f" as {describe_chain(j.transform)}" if j.transform else ""  # the peer gets transformed copies
            made = f" ({j.objects})" if j.derived else ""
            print(f"{j.id:>5} {when} {j.node:<12} {j.label or j.plan_uid:<16}{sent_as} {j.state:<13} {j.done}/{j.total}"
                  f"{made}"
                  f"{f' failed {j.failed}' if j.failed else ''} attempt {j.attempts + 1}{retry}"
                  f"{f'  {j.error}' if j.error else ''}"
                  + (f"  commitment: {c}" if (c := state_of(queue, j.id)) else ""))
        return 0
    if args.job is None:
        return fail(f"queue {args.action} needs a job number", 2)
    job = queue.job(args.job)
    if job is None:
        return fail(f"no job {args.job}", 2)
    if args.action == "show":
        items = queue.items(job.id)
        if args.json:
            print_json({**job.as_json(), "items": [{"sop_uid": i.sop_uid, "modality": i.modality, "state": i.state,
                                                     "status": i.status, "error": i.error,
                                                     **({"derived": True} if i.derived else {})} for i in items]})
        else:
            sent_as = f" as {describe_chain(job.transform)}" if job.transform else ""
            made = f" ({job.objects})" if job.derived else ""
            print(f"job {job.id}: {job.label} to {job.node}{sent_as}: {job.state} {job.done}/{job.total}{made} "
                  f"{job.error}")
            for i in items:
                print(f"  {i.seq:>4} {i.modality:<8} {i.sop_uid}  {i.state}{' (derived)' if i.derived else ''}"
                      f"{f' 0x{i.status:04X}' if i.status else ''} {i.error}")
        return 0
    if args.action == "commit":
        return _commit(config, queue, job)
    ok = queue.retry(job.id) if args.action == "retry" else queue.cancel(job.id)
    if not ok:
        return fail(f"job {job.id} is {job.state}: cannot {args.action} it now")
    print(f"job {job.id}: {'queued again' if args.action == 'retry' else 'cancelled'}")
    return 0


def _act_via_api(remote: ApiClient, action: str, job_id: int) -> int:
    """The running station retries or cancels (a cancel reaches its sending thread at once)."""
    try:
        remote.call_sync("POST", f"/api/v1/jobs/{job_id}/{action}")
    except ApiCallError as exc:
        return api_fail(exc)
    print(f"job {job_id}: {'queued again' if action == 'retry' else 'cancelled'}")
    return 0


def _commit(config: Config, queue: JobQueue, job: JobRow) -> int:
    """Ask the job's node (again) for Storage Commitment of what it acknowledged; the report settles it (a
    running ``serve`` receives it on the listener)."""
    if job.state != "done":
        return fail(f"job {job.id} is {job.state}: only a done job's instances can be committed", 2)
    node = config.node(job.node) or job.node_config()
    items = queue.items(job.id, ["done"])
    if why := unasked(job.transform, config, items):
        return fail(f"job {job.id}: no storage commitment can be asked: {why}", 1)
    row = request(queue, node, config.station.ae_title, job.id, items, fast_paths=config.network.fast_paths)
    print(f"job {job.id}: storage commitment of {row.instances} instances to {node.name}: {row.describe()}")
    return 0 if row.state == "waiting" else 1


def _mend(args: argparse.Namespace, config: Config) -> int:
    """Repair (keep what is readable) or reset the queue, with no server on the data_dir."""
    lock = DataDirLock(config.data_dir)
    try:
        lock.acquire()
    except StationLocked as exc:
        return fail(f"{exc}: stop it before the queue {args.action}")
    try:
        result = repair(config.data_dir) if args.action == "repair" else reset(config.data_dir)
    finally:
        lock.release()
    if args.json:
        print_json(asdict(result))
    else:
        lost = f"; {result.unreadable_jobs} jobs lost their instance list" if result.unreadable_jobs else ""
        print(f"queue {args.action}: kept {result.jobs} jobs and {result.items} instance records{lost}; the old "
              f"file is {result.damaged_copy}")
    return 0
