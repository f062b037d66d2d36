"""``rtstation retrieve --from NODE --patient ID [--plan LABEL[,LABEL]] [--approved-only] [--get|--move] [--tree]
[--new-patient-id ID [--new-patient-name NAME]]``.

Without a plan filter: the patient's data. With one: only the matching plans' chains (``engine/qr/retrieve``).
C-MOVE (default) sends to this station's own AE title: the node must know it (AE title, this host, [station]
port); this command listens on that port while it runs, so no ``rtstation serve`` may hold the port (use --get
then). Re-running transfers only what is not stored yet. Sub-operation counts are printed as they arrive.
``--new-patient-id``: stored as that patient, every UID remapped (``engine/qr/rename.py`` says why and how).
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..engine.audit import configure as configure_audit
from ..engine.config.model import Config
from ..engine.config.nodes import resolve_node
from ..engine.dimse.tls import TlsError, client_context
from ..engine.logsetup import setup_logging
from ..engine.outbound.scu import AssociationFailed
from ..engine.plans.listing import patients_json
from ..engine.qr.query import QueryError
from ..engine.qr.rename import NewPatient
from ..engine.qr.retrieve import Report, Request, Retriever, Unit
from ..engine.qr.scu import Progress, RetrieveFailed
from ..engine.store.files import Store
from ..engine.store.index import Index
from .output import fail, print_json
from .show import print_patient


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("retrieve", parents=[common], help="pull a patient or chosen plans from a node")
    p.add_argument("--from", dest="node", required=True, metavar="NODE", help="node name or AET@host:port")
    p.add_argument("--patient", required=True, metavar="ID", help="PatientID")
    p.add_argument("--plan", metavar="LABEL[,LABEL]", help="only these plans (RTPlanLabel or SOP Instance UID) "
                   "and their chains")
    p.add_argument("--approved-only", action="store_true", help="only plans whose ApprovalStatus is APPROVED")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--move", dest="method", action="store_const", const="move", help="C-MOVE to us (default)")
    how.add_argument("--get", dest="method", action="store_const", const="get", help="C-GET")
    p.add_argument("--tls", action="store_true", help="DICOM TLS ([tls] client settings; also when the node has "
                   "tls = true); use with --get where the node refuses C-MOVE over TLS")
    p.add_argument("--new-patient-id", metavar="ID", help="store the objects as this patient (a QA or phantom copy): "
                   "PatientID set, every UID remapped so nothing collides with the original; re-running with the "
                   "same ID resumes")
    p.add_argument("--new-patient-name", metavar="NAME", help="PatientName for --new-patient-id (default: the new "
                   "ID), DICOM PN form such as Phantom^QA")
    p.add_argument("--tree", action="store_true", help="print the patient's plan tree afterwards")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run, method="move")


class LiveProgress:
    """Sub-operation counts on stderr: one rewritten line on a terminal, a line per response otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.tty = quiet, sys.stderr.isatty()

    def __call__(self, unit: Unit, p: Progress) -> None:
        if self.quiet:
            return
        remaining = "?" if p.remaining is None else str(p.remaining)
        line = (f"  {unit.series.modality}: remaining {remaining}, completed {p.completed}, failed {p.failed}, "
                f"warning {p.warning}")
        if self.tty:
            sys.stderr.write("\r" + line.ljust(78) + ("\n" if p.final else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)


def run(args: argparse.Namespace, config: Config) -> int:
    setup_logging(config, stream=sys.stderr, level=args.log_level or "WARNING")
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)  # its connection errors: ours say them better
    configure_audit(config.log_dir, config.logging.retention_days)
    if not args.patient.strip() or any(c in args.patient for c in "*?\\"):
        return fail(f"--patient {args.patient!r}: one exact PatientID (find it with `rtstation find --level patient "
                    "--patient 'PATTERN*'`)", 2)
    plans = tuple(p.strip() for p in (args.plan or "").split(",") if p.strip())
    try:
        new_patient = new_identity(args.new_patient_id, args.new_patient_name)
        if new_patient is not None and new_patient.patient_id == args.patient.strip():
            raise ValueError(f"--new-patient-id {new_patient.patient_id!r} is the patient's own ID: leave it out to "
                             "store the node's objects as they are")
    except ValueError as exc:
        return fail(str(exc), 2)
    try:
        node = resolve_node(args.node, config.nodes)
        tls = client_context(config.tls, node) if args.tls or node.tls else None
    except ValueError as exc:
        return fail(str(exc), 2)
    except TlsError as exc:
        return fail(f"--tls: {exc}", 2)
    store, index = Store(config.data_dir, config.receiver.durability), Index(config.data_dir)
    store.load_known(index.known_pairs())
    live = LiveProgress(args.json)
    try:
        report = Retriever(config, node, store, index, live, live.say, tls).run(
            Request(args.patient, plans, args.approved_only, args.method, new_patient))
    except (RetrieveFailed, QueryError) as exc:
        return fail(str(exc))
    except AssociationFailed as exc:
        return fail(f"{args.node}: {exc}")
    stored_as = new_patient.patient_id if new_patient is not None else args.patient
    if args.json:
        out = report.as_json()
        out["stored_as"] = stored_as
        if args.tree:
            out["tree"] = patients_json(index.conn, stored_as)
        print_json(out)
    else:
        print_report(report)
        if args.tree:
            for patient in patients_json(index.conn, stored_as):
                print_patient(patient)
    return 1 if report.failed else 0


def print_report(r: Report) -> None:
    for plan in r.plans:
        print(f"plan {plan['label'] or '(no label)'}  {plan['approval'] or '-'}  {plan['sop_uid']}")
    print(f"retrieved {r.stored} ({r.method}), duplicates {r.duplicates}, skipped {r.skipped} already stored, "
          f"failed {r.failed}, warnings {r.warnings}")
    if r.pulled_to_read:
        print(f"note: {r.pulled_to_read} objects outside the chosen chains were pulled to read their references "
              "(the node answers no reference sequences in C-FIND)")


def new_identity(patient_id: str | None, name: str | None) -> NewPatient | None:
    """``--new-patient-id``/``--new-patient-name`` checked as DICOM LO and PN values (ValueError names the flag)."""
    if patient_id is None:
        if name is not None:
            raise ValueError("--new-patient-name needs --new-patient-id (the new patient's ID)")
        return None
    patient_id = patient_id.strip()
    if not patient_id or len(patient_id) > 64 or any(c in patient_id for c in "\\*?") or not patient_id.isprintable():
        raise ValueError(f"--new-patient-id {patient_id!r}: 1 to 64 printable characters, no \\, * or ?")
    name = (name if name is not None else patient_id).strip()
    if any(len(group) > 64 for group in name.split("=")) or "\\" in name or not name.isprintable():
        raise ValueError(f"--new-patient-name {name!r}: a DICOM person name (Family^Given), at most 64 characters "
                         "per group, no \\")
    return NewPatient(patient_id, name)
