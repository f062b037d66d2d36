"""``rtstation delete --patient ID | --plan LABEL|UID [--patient ID] [--yes] [--dry-run]``: remove a patient or a
plan bundle from the store (see engine/outbound/deletion.py for what stays and when it is refused).

Asks before deleting unless ``--yes`` (and refuses without ``--yes`` when it cannot ask: no terminal). A running
station does the delete through its API (its consoles see it at once); with none, the data_dir is locked while
the command deletes offline. Exit 0 deleted (or dry run), 1 refused (active jobs) or not confirmed, 2 unknown.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from ..engine.audit import configure as configure_audit
from ..engine.config.model import Config
from ..engine.logsetup import setup_logging
from ..engine.outbound.deletion import DeletePreview, DeleteRefused, NothingToDelete, delete, select
from ..engine.outbound.queue import JobQueue
from ..engine.plans.bundle import PlanNotFound, resolve_plan
from ..engine.service.jsonable import from_json, to_json
from ..engine.store.files import Store
from ..engine.store.index import Index
from ..engine.store.lock import DataDirLock, StationLocked
from ..engine.store.removal import finish_interrupted
from .output import fail, print_json
from .remote import ApiCallError, ApiClient, api_fail, connect


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("delete", parents=[common], help="remove a patient or a plan bundle from the store")
    p.add_argument("--patient", help="the patient (alone: every object of the patient)")
    p.add_argument("--plan", help="a plan's label or SOP Instance UID: its bundle (objects other plans use stay)")
    p.add_argument("--yes", action="store_true", help="do not ask")
    p.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    if args.patient is None and args.plan is None:
        return fail("say what to delete: --patient ID, or --plan LABEL|UID (with --patient when ambiguous)", 2)
    setup_logging(config, stream=sys.stderr, level=args.log_level or "WARNING")
    who = f"cli:{getpass.getuser()}"
    remote = connect(config)
    if remote is not None:
        return _via_api(remote, args, who)
    try:
        lock = DataDirLock(config.data_dir)
        lock.acquire()
    except StationLocked as exc:
        return fail(f"{exc}, and its API does not answer: delete from that station's console", 1)
    try:
        configure_audit(config.log_dir, config.logging.retention_days)
        return _offline(config, args, who)
    finally:
        lock.release()


def _offline(config: Config, args: argparse.Namespace, who: str) -> int:
    index, store, queue = Index(config.data_dir), Store(config.data_dir, config.receiver.durability), \
        JobQueue(config.data_dir)
    finish_interrupted(index, store)
    try:
        pid, uids = _target(index, args)
        preview, _ = select(index, queue, store, pid, uids)
    except (NothingToDelete, PlanNotFound) as exc:
        return fail(str(exc), 2)
    except ValueError as exc:  # an ambiguous label
        return fail(str(exc), 2)
    if not _confirmed(preview, args):
        return 1 if not args.dry_run else 0
    try:
        done = delete(index, queue, store, pid, uids, who=who)
    except DeleteRefused as exc:
        return fail(str(exc), 1)
    return _report(done, args)


def _target(index: Index, args: argparse.Namespace) -> tuple[str, list[str]]:
    if args.plan is None:
        return args.patient, []
    uid = resolve_plan(index.conn, args.plan, args.patient)
    row = index.conn.execute("SELECT patient_id FROM plans WHERE sop_uid=? LIMIT 1", (uid,)).fetchone()
    return str(row[0]), [uid]


def _via_api(remote: ApiClient, args: argparse.Namespace, who: str) -> int:
    body: dict[str, Any] = {"patient": args.patient, "plan": args.plan, "who": who}
    try:
        preview = from_json(DeletePreview, remote.call_sync("POST", "/api/v1/delete", {**body, "dry_run": True}))
        if not _confirmed(preview, args):
            return 1 if not args.dry_run else 0
        done = from_json(DeletePreview, remote.call_sync("POST", "/api/v1/delete", body))
    except ApiCallError as exc:
        return api_fail(exc)
    return _report(done, args)


def _confirmed(preview: DeletePreview, args: argparse.Namespace) -> bool:
    """Dry run: print and stop. Blocked: say by which jobs (the delete is then refused). Else ask, unless --yes."""
    if args.dry_run:
        if args.json:
            print_json(to_json(preview))
        else:
            print(f"would delete {preview.describe()}")
            for job in preview.blocked_by:
                print(f"  refused now: {job} is active")
        return False
    if preview.blocked_by or args.yes:
        return True  # the delete itself refuses, naming the jobs
    if not sys.stdin.isatty():
        print(f"rtstation: would delete {preview.describe()}; not a terminal, so not asked: pass --yes",
              file=sys.stderr)
        return False
    answer = input(f"Delete {preview.describe()}? This cannot be undone [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _report(done: DeletePreview, args: argparse.Namespace) -> int:
    if args.json:
        print_json(to_json(done))
    else:
        print(f"deleted {done.describe()}" + (f"; patient {done.patient_id} has nothing left in the store"
                                              if done.patient_gone and done.what == "plan" else ""))
    return 0

