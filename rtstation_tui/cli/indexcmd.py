"""``rtstation index --rebuild``: recreate the SQLite index from the files (the files are the truth)."""

from __future__ import annotations

import argparse

from ..engine.config.model import Config
from ..engine.store.index import Index
from ..engine.intake.rebuild import rebuild
from ..engine.metrics.update import update_all
from ..engine.store.lock import DataDirLock, StationLocked
from .output import fail, print_json


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("index", parents=[common], help="index maintenance (--rebuild)")
    p.add_argument("--rebuild", action="store_true", help="recreate the index from the stored files")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    if not args.rebuild:
        index = Index(config.data_dir)
        info = {"instances": index.count_instances(), "patients": len(index.patient_ids()), "path": str(index.path),
                "schema_version": index.schema.version}
        print_json(info) if args.json else print(f"{info['instances']} instances, {info['patients']} patients "
                                                 f"in {info['path']}")
        return 0
    lock = DataDirLock(config.data_dir)
    try:
        lock.acquire()
    except StationLocked as exc:
        return fail(f"{exc}: stop it before rebuilding the index")
    try:
        result = rebuild(config.data_dir)
        result["metrics"] = update_all(Index(config.data_dir), config)  # derived data like the rest of the index
    finally:
        lock.release()
    if args.json:
        print_json(result)
    else:
        print(f"indexed {result['indexed']} files; {len(result['unreadable'])} unreadable; "  # type: ignore[arg-type]
              f"metrics of {result['metrics']} plans computed")
    return 0
