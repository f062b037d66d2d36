"""``rtstation import PATH...``: one-shot ingest through the same path as the network (source IMPORT).

Safe while ``rtstation serve`` runs on the same data_dir: files and index rows are written here, and the server
evaluates the bundles within a second (it polls for import sessions that ended).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..engine.audit import configure as configure_audit
from ..engine.config.model import Config
from ..engine.intake.importer import BatchWriter, Importer
from ..engine.store.index import Index
from ..engine.logsetup import setup_logging
from ..engine.store.files import Store
from .output import fail, print_json


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("import", parents=[common], help="ingest files, folders or ZIP archives")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    import sys

    setup_logging(config, stream=sys.stderr, level=args.log_level or "WARNING")
    paths = [Path(p) for p in args.paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        return fail(f"no such file or folder: {', '.join(missing)}", 2)
    configure_audit(config.log_dir, config.logging.retention_days)
    store, index = Store(config.data_dir, config.receiver.durability), Index(config.data_dir)
    store.load_known(index.known_pairs())
    writer = BatchWriter(index)
    report = Importer(store, index, writer).run(paths, "import", "IMPORT")
    if args.json:
        print_json(report.as_json())
    else:
        print(f"stored {report.stored}, duplicates {report.duplicates}, conflicts {report.conflicts}, "
              f"quarantined {len(report.quarantined)}, errors {len(report.errors)}")
        for f, reason in report.quarantined:
            print(f"  quarantined {f}: {reason}")
        for f, reason in report.errors:
            print(f"  error {f}: {reason}")
    return 1 if report.quarantined or report.errors else 0
