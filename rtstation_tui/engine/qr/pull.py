"""What the console's Remote screen asks of the station: a node's plans of one patient, and retrieves that run in
the station as background threads with their progress on the event bus.

Why in the station and not in the console: an attached console may go away while a retrieve runs, and the C-MOVE
sub-operations arrive at the station's own receiver (which records them as retrieved, ``Index.retrieve_in_progress``)
anyway. The console only starts a retrieve and reads ``RetrieveProgress``/``RetrieveFinished`` events.

The plan list is learnt by C-FIND only (nothing is pulled to show it): per plan its label, approval, date, machine
(``BeamSequence`` items as Orthanc and most archives answer them) and the number of objects of its chain that the
answers name — the plan, its structure set, the image series that structure set references (their instance
counts), the doses and RT images that reference the plan. A node that answers no references gives a count that is
a lower bound (``counted`` False), shown as such.
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from pydicom.dataset import Dataset

from ..config.model import Config
from ..config.nodes import NodeConfig
from ..dimse.tls import TlsError, client_context
from ..events import EventBus, RetrieveFinished, RetrieveProgress
from ..outbound.scu import AssociationFailed
from ..store.files import Store
from ..store.index import Index
from .query import QueryError, Terms, build_identifier
from .remote import Finder, finder
from .retrieve import Request, Retriever, Unit, stored_uids
from .scu import Progress, RetrieveFailed

log = logging.getLogger("rtstation.retrieve")


class RemoteUnavailable(Exception):
    """The node cannot be asked or pulled from now; the message says why (unknown node, refused, unreachable,
    a retrieve of the same patient already running)."""


@dataclass(frozen=True)
class RemotePlan:
    """One plan on a node, as its C-FIND answers describe it."""

    sop_uid: str
    label: str
    approval: str
    date: str  # RTPlanDate as answered (YYYYMMDD) or ""
    machine: str  # the beams' TreatmentMachineName values, comma-separated, or ""
    objects: int  # the chain's objects the answers name (plan, structure set, its images, doses, RT images)
    counted: bool  # False: the node answered no references for part of the chain: at least ``objects``
    stored_here: bool  # this station holds the plan already


def _text(ds: Dataset, kw: str) -> str:
    return str(getattr(ds, kw, "") or "").strip()


def _image_level(patient_id: str, study_uid: str, series_uid: str, **keys: Any) -> Dataset:
    ident = build_identifier(Terms(level="image", patient=patient_id))
    ident.StudyInstanceUID, ident.SeriesInstanceUID = study_uid, series_uid
    for kw, value in keys.items():
        setattr(ident, kw, value)
    return ident


def _machine_item() -> list[Dataset]:
    item = Dataset()
    item.TreatmentMachineName = None
    return [item]


def list_plans(find_: Finder, patient_id: str) -> list[tuple[Dataset, int, bool]]:
    """(the plan's C-FIND answer, objects, counted) for every RTPLAN of the patient on the node."""
    series: list[tuple[str, str, str, int | None]] = []  # study, series, modality, instances
    for study in find_(build_identifier(Terms(level="study", patient=patient_id)), "study"):
        ident = build_identifier(Terms(level="series", patient=patient_id))
        ident.StudyInstanceUID, ident.NumberOfSeriesRelatedInstances = study.StudyInstanceUID, None
        for s in find_(ident, "series"):
            n = _text(s, "NumberOfSeriesRelatedInstances")
            series.append((str(study.StudyInstanceUID), str(s.SeriesInstanceUID), _text(s, "Modality"),
                           int(n) if n.isdigit() else None))

    def answers(modality: str, **keys: Any) -> list[Dataset]:
        return [a for st, se, mod, _ in series if mod == modality
                for a in find_(_image_level(patient_id, st, se, **keys), "image")]

    plans = answers("RTPLAN", RTPlanLabel=None, ApprovalStatus=None, RTPlanDate=None,
                    ReferencedStructureSetSequence=[], BeamSequence=_machine_item(), IonBeamSequence=_machine_item())
    structs = {str(a.SOPInstanceUID): a for a in answers("RTSTRUCT", ReferencedFrameOfReferenceSequence=[])}
    referencing = [a for mod in ("RTDOSE", "RTIMAGE") for a in answers(mod, ReferencedRTPlanSequence=[])]
    counts = {se: n for _, se, _, n in series}
    out = []
    for plan in plans:
        uid = str(plan.SOPInstanceUID)
        objects, counted = 1, True
        struct_uids = [_text(i, "ReferencedSOPInstanceUID") for i in plan.get("ReferencedStructureSetSequence", [])]
        struct = next((structs[u] for u in struct_uids if u in structs), None)
        if struct is None:
            counted = False
        else:
            objects += 1
            image_series = {_text(se, "SeriesInstanceUID") for fr in struct.get("ReferencedFrameOfReferenceSequence", [])
                            for st in fr.get("RTReferencedStudySequence", [])
                            for se in st.get("RTReferencedSeriesSequence", [])}
            known = [counts.get(se) for se in image_series]
            objects += sum(n for n in known if n is not None)
            counted = counted and bool(image_series) and None not in known
        objects += sum(1 for a in referencing if uid in {_text(i, "ReferencedSOPInstanceUID")
                                                         for i in a.get("ReferencedRTPlanSequence", [])})
        out.append((plan, objects, counted))
    return out


def machines(plan: Dataset) -> str:
    names = [_text(b, "TreatmentMachineName") for seq in ("BeamSequence", "IonBeamSequence")
             for b in (plan.get(seq) or [])]
    return ", ".join(dict.fromkeys(n for n in names if n))


class RetrieveRuns:
    """The station's retrieves: the plan list of a node, and pulls in background threads."""

    def __init__(self, config: Callable[[], Config], store: Store, bus: EventBus,
                 receives: Callable[[], bool]) -> None:
        """``receives()``: the station's receiver listens now (C-MOVE to it; else C-GET)."""
        self.config, self.store, self.bus, self.receives = config, store, bus, receives
        self._ids = itertools.count(1)
        self._running: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def node(self, name: str) -> NodeConfig:
        node = next((n for n in self.config().nodes if n.name == name), None)
        if node is None:
            raise RemoteUnavailable(f"no node named {name!r} in [[nodes]]")
        return node

    def _tls(self, node: NodeConfig) -> Any:
        try:
            return client_context(self.config().tls, node) if node.tls else None
        except TlsError as exc:
            raise RemoteUnavailable(f"{node.name}: TLS: {exc}") from None

    def remote_plans(self, node_name: str, patient_id: str) -> list[RemotePlan]:
        node = self.node(node_name)
        if not patient_id.strip() or any(c in patient_id for c in "*?\\"):
            raise RemoteUnavailable(f"patient ID {patient_id!r}: one exact PatientID, no wildcards")
        config = self.config()
        find_ = finder(node, config.station.ae_title.strip(), self._tls(node), config.network.fast_paths)
        try:
            found = list_plans(find_, patient_id.strip())
        except (QueryError, AssociationFailed, RetrieveFailed, OSError) as exc:
            raise RemoteUnavailable(f"{node.name}: {exc}") from None
        index = Index(config.data_dir)
        try:
            here = stored_uids(index, [str(p.SOPInstanceUID) for p, _, _ in found])
        finally:
            index.close()
        rows = [RemotePlan(str(p.SOPInstanceUID), _text(p, "RTPlanLabel"), _text(p, "ApprovalStatus"),
                           _text(p, "RTPlanDate"), machines(p), n, counted, str(p.SOPInstanceUID) in here)
                for p, n, counted in found]
        return sorted(rows, key=lambda r: (r.label, r.sop_uid))

    def start(self, node_name: str, patient_id: str, plan_uids: Sequence[str]) -> int:
        """Start pulling the chains of ``plan_uids`` (all the patient's data if empty); returns the retrieve id."""
        node = self.node(node_name)
        tls = self._tls(node)
        key = (node.name, patient_id)
        with self._lock:
            if key in self._running:
                raise RemoteUnavailable(f"patient {patient_id} is being retrieved from {node.name} already "
                                        f"(retrieve {self._running[key]})")
            rid = self._running[key] = next(self._ids)
        method = "move" if self.receives() else "get"
        req = Request(patient_id, tuple(plan_uids), False, method)
        threading.Thread(target=self._run, args=(rid, node, req, tls), name=f"rtstation-retrieve-{rid}",
                         daemon=True).start()
        return rid

    def _run(self, rid: int, node: NodeConfig, req: Request, tls: Any) -> None:
        config = self.config()
        index = Index(config.data_dir)

        def progress(unit: Unit, p: Progress) -> None:
            self.bus.post(RetrieveProgress(rid, node.name, req.patient_id, f"{unit.series.modality}: {unit.why}",
                                           p.remaining, p.completed, p.failed, p.warning))

        try:
            retriever = Retriever(config, node, self.store, index, progress, lambda text: log.info("%s", text), tls,
                                  station_receives=True)  # never the data_dir lock: this process holds it
            report = retriever.run(req)
        except (RetrieveFailed, QueryError, AssociationFailed, OSError) as exc:
            log.error("retrieve %d of %s from %s failed: %s", rid, req.patient_id, node.name, exc)
            self.bus.post(RetrieveFinished(rid, node.name, req.patient_id, False, str(exc)))
        except Exception as exc:  # a bug must not leave the console waiting for ever
            log.exception("retrieve %d of %s from %s failed", rid, req.patient_id, node.name)
            self.bus.post(RetrieveFinished(rid, node.name, req.patient_id, False, f"internal error: {exc}"))
        else:
            labels = tuple(p["label"] for p in report.plans)
            message = (f"retrieved {report.stored} ({report.method}), skipped {report.skipped} already stored, "
                       f"failed {report.failed}")
            log.info("retrieve %d of %s from %s: %s", rid, req.patient_id, node.name, message)
            self.bus.post(RetrieveFinished(rid, node.name, req.patient_id, report.failed == 0, message,
                                           report.stored, report.skipped, report.failed, labels))
        finally:
            index.close()
            with self._lock:
                self._running.pop((node.name, req.patient_id), None)


__all__ = ["RemotePlan", "RemoteUnavailable", "RetrieveRuns", "list_plans"]
