"""``rtstation find --from NODE [--level patient|study|series|image] [--patient ID] [--name N] [--modality M]
[--study-date RANGE] [--tag "(gggg,eeee)=value"]... [--json]``: C-FIND on a node (Patient Root, or Study Root where
the peer offers only that), answers as a table or JSON rows."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from ..engine.config.model import Config
from ..engine.config.nodes import resolve_node
from ..engine.dimse.tls import TlsError, client_context
from ..engine.logsetup import setup_logging
from ..engine.outbound.scu import AssociationFailed
from ..engine.qr.query import LEVELS, RETURN_KEYS, QueryError, Terms, build_identifier, row
from ..engine.qr.scu import find
from .output import fail, print_json


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("find", parents=[common], help="query a node (C-FIND)")
    p.add_argument("--from", dest="node", required=True, metavar="NODE", help="node name or AET@host:port")
    p.add_argument("--level", default="study", choices=LEVELS)
    p.add_argument("--patient", metavar="ID", help="PatientID (wildcards * and ? allowed)")
    p.add_argument("--name", metavar="N", help="PatientName, e.g. 'DOE^*'")
    p.add_argument("--modality", metavar="M", help="Modality (ModalitiesInStudy at study level)")
    p.add_argument("--study-date", metavar="RANGE", help="YYYYMMDD, YYYYMMDD-, -YYYYMMDD or YYYYMMDD-YYYYMMDD")
    p.add_argument("--tag", action="append", default=[], metavar='"(gggg,eeee)=value"',
                   help="extra matching key (empty value: also return it); repeatable")
    p.add_argument("--tls", action="store_true", help="DICOM TLS ([tls] client settings; also when the node has "
                   "tls = true)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    setup_logging(config, stream=sys.stderr, level=args.log_level or "WARNING")
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)  # its connection errors: ours say them better
    try:
        node = resolve_node(args.node, config.nodes)
        terms = Terms(args.level, args.patient, args.name, args.modality, args.study_date, tuple(args.tag))
        tls = client_context(config.tls, node) if args.tls or node.tls else None
        answers = find(node, config.station.ae_title, build_identifier(terms), args.level, tls,
                       config.network.fast_paths)
    except (ValueError, QueryError) as exc:
        return fail(str(exc), 2)
    except TlsError as exc:
        return fail(f"--tls: {exc}", 2)
    except AssociationFailed as exc:
        return fail(f"{args.node}: {exc}")
    rows = [row(a) for a in answers]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, args.level)
    return 0


def print_table(rows: list[dict[str, Any]], level: str = "study") -> None:
    if not rows:
        print("no matches")
        return
    cols: list[str] = [k for k in RETURN_KEYS[level] if any(k in r for r in rows)]  # the level's keys first
    for r in rows:
        cols += [k for k, v in r.items() if k not in cols and not isinstance(v, list)]
    width = {c: min(64, max(len(c), *(len(str(r.get(c, ""))) for r in rows))) for c in cols}
    print("  ".join(c.ljust(width[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c, ""))[:64].ljust(width[c]) for c in cols))
    print(f"{len(rows)} match{'es' if len(rows) != 1 else ''}")
