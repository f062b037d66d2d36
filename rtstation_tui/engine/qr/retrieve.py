"""``rtstation retrieve``: pull a patient, or only the chains of chosen plans, from a node by C-MOVE or C-GET.

Selective retrieve, in the order that keeps everything else off the wire: survey the patient by C-FIND
(``remote.survey``), pull only the RTPLAN instances, read their labels and approval from our own index, then pull
exactly the chain of the plans that match: their RTSTRUCT, the image series it references, the RTDOSE and RT
images that reference the plans, the registrations that reference those image series. Each unit is one series
(SERIES level) or the instances still missing from it (IMAGE level, a UID list).

Resume: before each unit, the instances the index already holds (by SOP Instance UID) are left out and counted as
skipped, so an interrupted retrieve run again transfers the rest only. Every retrieved object goes through
``ingest()`` with a ``RetrieveOrigin`` and is indexed at once (one transaction per object), so a kill loses nothing
that was acknowledged.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from pydicom.dataset import Dataset

from ..config.acl import check_calling, parse_acl_entry
from ..config.model import Config
from ..config.nodes import NodeConfig
from ..dicom.sopclass import sop_classes_for_modality
from ..intake.ingest import DUPLICATE, FAILED, QUARANTINED, Announced, Destination, RetrieveOrigin, ingest
from ..store.files import Store
from ..store.index import Index, IndexRecord
from ..store.lock import DataDirLock, StationLocked
from .rename import NewPatient, Renamer, SameUids
from .remote import RT_MODALITIES, RemoteInstance, RemotePatient, RemoteSeries, finder, survey
from .scu import Progress, RetrieveFailed, get, move, storage_scp

log = logging.getLogger("rtstation.retrieve")
STATUS_SUCCESS, STATUS_OUT_OF_RESOURCES, STATUS_CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xC000


@dataclass(frozen=True)
class Request:
    patient_id: str
    plans: tuple[str, ...] = ()  # RTPlanLabel values (or plan SOP Instance UIDs); empty: the whole patient
    approved_only: bool = False
    method: str = "move"  # "move" or "get"
    new_patient: NewPatient | None = None  # store under this identity, UIDs remapped (``rename.py``)


@dataclass(frozen=True)
class Unit:
    """One C-MOVE/C-GET: a series, or the listed instances of it."""

    series: RemoteSeries
    sop_uids: tuple[str, ...]  # empty: the whole series
    sop_classes: tuple[str, ...]
    count: int
    why: str


@dataclass
class Report:
    patient_id: str
    method: str
    plans: list[dict[str, str]] = field(default_factory=list)  # the plans chosen (uid, label, approval)
    stored: int = 0
    duplicates: int = 0
    failed: int = 0
    skipped: int = 0  # already in the index before the unit started
    warnings: int = 0
    pulled_to_read: int = 0  # objects outside the chains, pulled only because the peer answered no references
    units: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"patient_id": self.patient_id, "method": self.method, "plans": self.plans, "stored": self.stored,
                "duplicates": self.duplicates, "failed": self.failed, "skipped": self.skipped,
                "warnings": self.warnings, "pulled_to_read": self.pulled_to_read, "units": self.units}


class Intake:
    """The C-STORE sub-operations' handler: spool → ``ingest`` → index, from pynetdicom's threads."""

    def __init__(self, store: Store, index: Index, origin: RetrieveOrigin, report: Report,
                 renamer: Renamer | None = None) -> None:
        self.store, self.index, self.origin, self.report = store, index, origin, report
        self.renamer = renamer
        self.into = Destination(store, self._index_now)
        self.received: set[str] = set()  # SOP Instance UIDs as stored here

    def _index_now(self, record: IndexRecord) -> None:
        """One transaction per object: a retrieve killed half-way has indexed everything it acknowledged."""
        self.index.add([record])

    def on_store(self, event: Any) -> int:
        announced = Announced(str(event.request.AffectedSOPInstanceUID or ""),
                              str(event.request.AffectedSOPClassUID or ""))
        try:
            spooled = event.dataset_path  # the receive setting of a Station in this process: already spooled
        except AttributeError:
            spooled = None
        if spooled is not None:
            path = Path(spooled)
        else:
            path = self.store.temp_path(".dcm")
            try:
                path.write_bytes(event.encoded_dataset(include_meta=True))
            except OSError as exc:
                log.error("cannot spool %s from %s: %s", announced.sop_uid, self.origin.node, exc)
                self.report.failed += 1
                return STATUS_OUT_OF_RESOURCES
        if self.renamer is not None:
            try:
                announced = Announced(self.renamer.rewrite(path), announced.sop_class)
            except Exception as exc:  # pydicom cannot read or write it: never store it under the old identity
                log.error("retrieve: %s from %s not stored: cannot give it the new patient identity: %s",
                          announced.sop_uid, self.origin.node, exc)
                path.unlink(missing_ok=True)
                self.report.failed += 1
                return STATUS_CANNOT_UNDERSTAND
        result = ingest(path, self.origin, self.into, announced)
        if result.outcome in (QUARANTINED, FAILED):
            self.report.failed += 1
            log.warning("retrieve: %s from %s not stored: %s", announced.sop_uid, self.origin.node, result.reason)
            return STATUS_CANNOT_UNDERSTAND if result.outcome == QUARANTINED else STATUS_OUT_OF_RESOURCES
        if result.outcome == DUPLICATE:
            self.report.duplicates += 1
        else:
            self.report.stored += 1
        self.received.add(announced.sop_uid)
        return STATUS_SUCCESS


def stored_uids(index: Index, uids: Iterable[str]) -> set[str]:
    out: set[str] = set()
    batch = list(uids)
    for i in range(0, len(batch), 500):
        part = batch[i:i + 500]
        q = f"SELECT sop_uid FROM instances WHERE sop_uid IN ({','.join('?' * len(part))})"
        out |= {r[0] for r in index.conn.execute(q, part)}
    return out


def plan_facts(index: Index, uids: Iterable[str]) -> list[dict[str, str]]:
    uids = list(uids)
    if not uids:
        return []
    q = ("SELECT i.sop_uid, p.label, p.approval FROM plans p JOIN instances i ON i.id = p.instance_id "
         f"WHERE i.sop_uid IN ({','.join('?' * len(uids))}) ORDER BY p.label")
    return [{"sop_uid": r[0], "label": r[1] or "", "approval": r[2] or ""} for r in index.conn.execute(q, uids)]


def answered_facts(plans: list[RemoteInstance], approval_needed: bool) -> list[dict[str, str]] | None:
    """Labels and approval as the C-FIND answered them, or None if any plan's answer lacks them (then the plans
    are retrieved and read locally). Why first: a peer that answers them (Orthanc does) lets the other plans stay
    on the peer."""
    if any(p.label is None or (approval_needed and p.approval is None) for p in plans):
        return None
    return sorted(({"sop_uid": p.sop_uid, "label": p.label or "", "approval": p.approval or ""} for p in plans),
                  key=lambda f: f["label"])


def refs_of(index: Index, uids: Iterable[str], kind: str) -> set[str]:
    uids = list(uids)
    if not uids:
        return set()
    q = ("SELECT DISTINCT r.uid FROM refs r JOIN instances i ON i.id = r.instance_id "
         f"WHERE r.kind = ? AND i.sop_uid IN ({','.join('?' * len(uids))})")
    return {r[0] for r in index.conn.execute(q, [kind, *uids])}


def choose(facts: list[dict[str, str]], wanted: tuple[str, ...], approved_only: bool) -> list[dict[str, str]]:
    """The plans whose label (or UID) is wanted, and APPROVED when asked."""
    chosen = [f for f in facts if not wanted or f["label"] in wanted or f["sop_uid"] in wanted]
    return [f for f in chosen if not approved_only or f["approval"].upper() == "APPROVED"]


class Retriever:
    """One retrieve run from ``node`` into this station's store."""

    def __init__(self, config: Config, node: NodeConfig, store: Store, index: Index,
                 on_progress: Callable[[Unit, Progress], None], say: Callable[[str], None], tls: Any = None,
                 station_receives: bool = False) -> None:
        """``tls``: the SSL context for the node (``dimse.tls.client_context``), or None. ``station_receives``:
        this runs inside a Station whose receiver takes the C-MOVE sub-operations (the console, the API)."""
        self.config, self.node, self.store, self.index = config, node, store, index
        self.station_ae = config.station.ae_title.strip()
        self.on_progress, self.say, self.tls = on_progress, say, tls
        self.station_receives = station_receives
        # a running station's receiver takes the C-MOVE sub-operations (it records them as retrieved: the open
        # session of this retrieve tells it, Index.retrieve_in_progress)
        self.serve_receives = False
        self.uids: Renamer | SameUids = SameUids()
        self.refusals: list[str] = []  # associations our C-MOVE storage SCP refused (the receiver's allowlist)

    def run(self, req: Request) -> Report:
        report = Report(req.patient_id, "C-GET" if req.method == "get" else "C-MOVE")
        renamer = Renamer(req.new_patient) if req.new_patient is not None else None
        self.uids = renamer or SameUids()
        lock = DataDirLock(self.config.data_dir)
        if self.station_receives:
            self.serve_receives = True
        else:
            try:
                lock.acquire()
            except StationLocked:  # `rtstation serve` holds the data_dir: its receiver takes the sub-operations
                self.serve_receives = True
        if renamer is not None and req.method == "move" and self.serve_receives:
            if not self.station_receives:
                lock.release()
            raise RetrieveFailed("a new patient identity needs the objects to arrive here, but the station running on "
                                 "this data_dir receives the C-MOVE sub-operations and stores them as sent: use --get")
        session = self.index.open_session("retrieve", "retrieve", self.node.ae_title.strip(), self.node.name,
                                          os.getpid())
        origin = RetrieveOrigin(calling_ae=self.node.ae_title.strip(), node=self.node.name, method=report.method,
                                session_id=session)
        intake = Intake(self.store, self.index, origin, report, renamer)
        server = None
        if req.method == "move" and not self.serve_receives:
            st = self.config.station
            acl = tuple(parse_acl_entry(e) for e in self.config.receiver.allowed_calling_aes)
            server = storage_scp(self.station_ae, st.bind, st.port, intake.on_store,
                                 lambda calling, ip: self._refused(check_calling(acl, calling, ip), calling))
        try:
            self._run(req, report, intake)
        finally:
            if server is not None:
                server.shutdown()
            if not self.station_receives:
                lock.release()
            self.index.end_session(session, report.stored, 0, report.failed)
        return report

    def _run(self, req: Request, report: Report, intake: Intake) -> None:
        find_ = finder(self.node, self.station_ae, self.tls, self.config.network.fast_paths)
        remote = survey(find_, req.patient_id, None if not (req.plans or req.approved_only) else
                        ("RTPLAN", "RTSTRUCT", "RTDOSE", "RTIMAGE", "REG"))
        if not remote.series:
            raise RetrieveFailed(f"{self.node.describe()} has no series of patient {req.patient_id!r}")
        if not (req.plans or req.approved_only):
            for s in remote.series:
                self._pull(self._unit(s, None, "patient"), report, intake, req)
            return
        plans = [i for s in remote.of_modality("RTPLAN") for i in s.instances]
        if not plans:
            raise RetrieveFailed(f"{self.node.describe()} holds no RTPLAN of patient {req.patient_id!r}")
        local = self.uids.local
        wanted = (*req.plans, *(local(w) for w in req.plans)) if req.new_patient else req.plans
        facts = answered_facts(plans, req.approved_only)
        if facts is not None:
            facts = [{**f, "sop_uid": local(f["sop_uid"])} for f in facts]
        else:  # the peer does not answer RTPlanLabel/ApprovalStatus: pull the plans, read them here
            for s in remote.of_modality("RTPLAN"):
                self._pull(self._unit(s, {local(i.sop_uid) for i in s.instances}, "plans (to read their labels)"),
                           report, intake, req)
            facts = plan_facts(self.index, [local(p.sop_uid) for p in plans])
            report.pulled_to_read += len(facts) - len(choose(facts, wanted, req.approved_only))
        chosen = choose(facts, wanted, req.approved_only)
        if not chosen:
            found = ", ".join(f"{f['label']} ({f['approval'] or 'no approval'})" for f in facts) or "none readable"
            raise RetrieveFailed(f"no plan of patient {req.patient_id!r} on {self.node.describe()} matches "
                                 f"{', '.join(req.plans) or 'any label'}{' and APPROVED' if req.approved_only else ''}"
                                 f": it holds {found}")
        report.plans = chosen
        self._pull_chain(remote, {c["sop_uid"] for c in chosen}, report, intake, req)

    def _pull_chain(self, remote: RemotePatient, plan_uids: set[str], report: Report, intake: Intake,
                    req: Request) -> None:
        for s in remote.of_modality("RTPLAN"):
            self._pull(self._unit(s, plan_uids, "the plan"), report, intake, req)
        struct_uids = refs_of(self.index, plan_uids, "struct")
        for s in remote.of_modality("RTSTRUCT"):
            self._pull(self._unit(s, struct_uids, "structure set"), report, intake, req)
        image_series = refs_of(self.index, struct_uids, "series") or self._series_holding(
            remote, refs_of(self.index, struct_uids, "image"))
        for s in remote.series:
            if self.uids.local(s.series_uid) in image_series:
                fresh = survey_series(self, remote, s)
                self._pull(self._unit(fresh, None, "images of the structure set"), report, intake, req)
        self._pull_referencing(remote, ("RTDOSE", "RTIMAGE"), "plan_refs", plan_uids, "plan", "references the plan",
                               report, intake, req)
        self._pull_referencing(remote, ("REG",), "series_refs", image_series, "series", "registers the images",
                               report, intake, req)

    def _series_holding(self, remote: RemotePatient, images: set[str]) -> set[str]:
        """A structure set that names only its contour images (no RTReferencedSeriesSequence): the image series
        that hold them, from their instance lists."""
        if not images:
            return set()
        found = set()
        for s in remote.series:
            if s.modality in RT_MODALITIES:
                continue
            if images & {self.uids.local(i.sop_uid) for i in survey_series(self, remote, s).instances}:
                found.add(self.uids.local(s.series_uid))
        return found

    def _pull_referencing(self, remote: RemotePatient, modalities: tuple[str, ...], field_: str, targets: set[str],
                          kind: str, why: str, report: Report, intake: Intake, req: Request) -> None:
        """The objects that reference ``targets``, as the C-FIND answers say. A peer that answers no reference
        sequences at all (DCMTK dcmqrscp) cannot tell: those objects are pulled to read their references here,
        and the report says so (``pulled_to_read``)."""
        series = remote.of_modality(*modalities)
        answered = any(getattr(i, field_) for s in series for i in s.instances)
        local = self.uids.local
        for s in series:
            if answered:
                refs = {local(i.sop_uid) for i in s.instances if targets & {local(u) for u in getattr(i, field_)}}
                self._pull(self._unit(s, refs, why), report, intake, req)
                continue
            self._pull(self._unit(s, None, f"to read its references (the peer answers no {kind} references)"),
                       report, intake, req)
            pulled = [local(i.sop_uid) for i in s.instances]
            matching = {u for u in pulled if refs_of(self.index, [u], kind) & targets}
            report.pulled_to_read += len(set(pulled) - matching)

    def _unit(self, s: RemoteSeries, only: set[str] | None, why: str) -> Unit | None:
        """``only``: the instances wanted, by their UIDs as stored here (None: the whole series)."""
        instances = [i for i in s.instances if only is None or self.uids.local(i.sop_uid) in only]
        if only is not None and not instances:
            return None
        uids = tuple(i.sop_uid for i in instances) if only is not None else ()
        classes = tuple(sorted({i.sop_class for i in instances if i.sop_class}))
        if len(classes) == 0 or any(not i.sop_class for i in instances):  # the peer did not answer SOPClassUID
            classes = tuple(sorted(set(classes) | set(sop_classes_for_modality(s.modality)))) or classes
        return Unit(s, uids, classes, len(instances), why)

    def _pull(self, unit: Unit | None, report: Report, intake: Intake, req: Request) -> None:
        if unit is None:
            return
        wanted = list(unit.sop_uids or (i.sop_uid for i in unit.series.instances))
        have = stored_uids(self.index, [self.uids.local(u) for u in wanted])  # as stored here
        missing = tuple(u for u in wanted if self.uids.local(u) not in have)
        report.skipped += len(have - intake.received)  # what this run pulled itself is not "already stored"
        entry = {"series_uid": unit.series.series_uid, "modality": unit.series.modality, "why": unit.why,
                 "instances": len(wanted), "already_stored": len(have), "transferred": 0}
        report.units.append(entry)
        if not missing:
            return
        ident = Dataset()
        ident.PatientID = report.patient_id
        ident.StudyInstanceUID, ident.SeriesInstanceUID = unit.series.study_uid, unit.series.series_uid
        if unit.sop_uids or have:  # part of a series (a chain's members, or what is still missing)
            ident.QueryRetrieveLevel = "IMAGE"
            ident.SOPInstanceUID = list(missing)
        else:
            ident.QueryRetrieveLevel = "SERIES"
        before = report.stored + report.duplicates
        self.say(f"{unit.series.modality} series {unit.series.series_uid}: {len(missing)} to transfer "
                 f"({unit.why}){f', {len(have)} already stored' if have else ''}")
        progress = lambda p: self.on_progress(unit, p)  # noqa: E731
        if req.method == "get":
            last = get(self.node, self.station_ae, ident, unit.sop_classes, intake.on_store, progress, self.tls)
        else:
            try:
                last = move(self.node, self.station_ae, ident, progress, self.station_ae, self.config.station.port,
                            self.tls, self.config.network.fast_paths)
            except RetrieveFailed:
                if self.refusals:
                    raise RetrieveFailed(f"the C-MOVE sub-operations were refused here ({self.refusals[-1]}): add "
                                         "the node's AE title to [receiver] allowed_calling_aes") from None
                raise
            if self.serve_receives:
                report.stored += self._indexed_by_server(tuple(self.uids.local(u) for u in missing), intake)
        report.warnings += last.warning
        entry["transferred"] = report.stored + report.duplicates - before
        if last.failed:
            report.failed += last.failed


    def _refused(self, why: str | None, calling: str) -> str | None:
        if why is not None:
            self.refusals.append(f"{calling}: {why}")
        return why

    def _indexed_by_server(self, uids: tuple[str, ...], intake: Intake) -> int:
        """With ``rtstation serve`` receiving, wait (up to the node's timeout) until its indexer has them all: the
        chain's next step reads their references from the index. Returns how many arrived."""
        deadline = time.monotonic() + self.node.timeout_s
        while True:
            arrived = stored_uids(self.index, uids)
            if len(arrived) == len(uids) or time.monotonic() > deadline:
                intake.received |= arrived
                return len(arrived)
            time.sleep(0.1)


def survey_series(r: Retriever, remote: RemotePatient, s: RemoteSeries) -> RemoteSeries:
    """An image series' instance list (the survey lists only RT series' instances): needed for resume."""
    from .remote import instances_of

    if s.instances:
        return s
    return RemoteSeries(s.study_uid, s.series_uid, s.modality,
                        instances_of(finder(r.node, r.station_ae, r.tls, r.config.network.fast_paths),
                                     remote.patient_id, s.study_uid, s.series_uid, s.modality))

