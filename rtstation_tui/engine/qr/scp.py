"""The station as a Query/Retrieve SCP: C-FIND from the index, C-GET and C-MOVE from the store (stored bytes).

The receiver registers ``QRService`` (contexts and handlers) when the Station hands it over; the receiver's own
checks (called AE, calling-AE allowlist, association limit) apply to these associations as to any. Who may pull
is a per-node decision: the calling AE must be the AE title of a ``[[nodes]]`` entry with ``allow_retrieve =
true`` (C-GET and C-MOVE; C-FIND is answered to every allowed caller), and a C-MOVE goes only to a ``[[nodes]]``
entry (any other destination: 0xA801).

Matching: the index's columns first (PatientID, UIDs, Modality, SOP Class), in SQL where a key is one value or a UID
list; every other key from one stored file's header per answered entity (the first instance of that patient,
study or series), so a TPS's usual keys (StudyDate, AccessionNumber, RTPlanLabel at IMAGE level) work too.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pydicom
from pydicom.dataset import Dataset
from pynetdicom import evt

from ..config.model import Config
from ..config.nodes import NodeConfig
from ..dimse.stored_send import move_destination_kwargs, send_stored_files, stand_in
from ..dimse.tls import TlsError, client_context
from ..outbound.scu import contexts_for
from ..store.files import Store
from ..store.index import Index
from .matching import is_universal, matches
from .query import FIND_MODELS, GET_MODELS, MOVE_MODELS, STUDY_ROOT_FIND

log = logging.getLogger("rtstation.qr")

PENDING, CANCEL, UNABLE = 0xFF00, 0xFE00, 0xC000
IDENTIFIER_MISMATCH = 0xA900
LEVEL_KEY = {"PATIENT": "patient_id", "STUDY": "study_uid", "SERIES": "series_uid", "IMAGE": "sop_uid"}
INDEXED = {"PatientID": "patient_id", "StudyInstanceUID": "study_uid", "SeriesInstanceUID": "series_uid",
           "SOPInstanceUID": "sop_uid", "SOPClassUID": "sop_class", "Modality": "modality"}
TEXT_VRS = {"SH", "LO", "ST", "LT", "UT", "UC"}
UIDS = {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"}


def status(code: int, comment: str = "") -> Dataset:
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = comment[:64]
    return ds


class Catalogue:
    """The index and the store seen as a Q/R information model (one per association thread: cheap)."""

    def __init__(self, index: Index, store: Store) -> None:
        self.index, self.store = index, store

    def rows(self, ident: Dataset) -> list[Any]:
        """Instances whose indexed columns match ``ident`` (one row per SOP Instance UID: its first version)."""
        where = ["NOT EXISTS (SELECT 1 FROM instances j WHERE j.sop_uid = i.sop_uid AND j.id < i.id)"]
        params: list[str] = []
        for kw, col in INDEXED.items():
            value = ident[kw] if kw in ident else None
            if value is None or is_universal(value.value):
                continue
            text = "\\".join(str(v) for v in value.value) if value.VM > 1 else str(value.value)
            if kw in UIDS or "\\" in text:
                uids = [u.strip() for u in text.split("\\") if u.strip()]
                where.append(f"i.{col} IN ({','.join('?' * len(uids))})")
                params += uids
            elif "*" not in text and "?" not in text:
                where.append(f"i.{col} = ?")
                params.append(text)
            else:  # GLOB has DICOM's * and ?; a literal [ is written [[]
                where.append(f"i.{col} GLOB ?")
                params.append(text.replace("[", "[[]"))
        q = ("SELECT i.*, p.patient_name FROM instances i LEFT JOIN patients p ON p.patient_id = i.patient_id "
             f"WHERE {' AND '.join(where)} ORDER BY i.patient_id, i.study_uid, i.series_uid, i.instance_number, i.id")
        rows = self.index.conn.execute(q, params).fetchall()
        return [r for r in rows if all(matches(ident[kw].value, "LO", r[col]) for kw, col in INDEXED.items()
                                       if kw in ident and kw not in UIDS and not is_universal(ident[kw].value))]

    def header(self, row: Any) -> Dataset:
        try:
            return pydicom.dcmread(self.store.abspath(row["path"]), stop_before_pixels=True, force=True)
        except (OSError, pydicom.errors.InvalidDicomError) as exc:
            log.warning("C-FIND: cannot read %s: %s", row["path"], exc)
            return Dataset()

    def answers(self, ident: Dataset, station_ae: str) -> Iterator[Dataset]:
        level = str(ident.get("QueryRetrieveLevel", "") and ident.QueryRetrieveLevel).upper()
        key = LEVEL_KEY[level]
        groups: dict[str, list[Any]] = {}
        for r in self.rows(ident):
            groups.setdefault(r[key], []).append(r)
        for members in groups.values():
            answer = self._answer(ident, level, members, station_ae)
            if answer is not None:
                yield answer

    def _answer(self, ident: Dataset, level: str, members: list[Any], station_ae: str) -> Dataset | None:
        first, header = members[0], None
        out = Dataset()
        for elem in ident:
            kw = elem.keyword
            if kw in ("QueryRetrieveLevel", "SpecificCharacterSet") or elem.tag.group == 0x0002:
                continue
            value: Any
            if kw in INDEXED:
                value = first[INDEXED[kw]]
            elif kw == "PatientName" and first["patient_name"] is not None:
                value = first["patient_name"]
            elif (computed := _computed(kw, members, self.index)) is not None:
                value = computed
            else:
                header = header if header is not None else self.header(first)
                value = header[elem.tag].value if elem.tag in header else None
            if elem.VR != "SQ" and not matches(elem.value, elem.VR, value):
                return None
            out.add_new(elem.tag, elem.VR, value if value not in (None, "") else None)
        out.QueryRetrieveLevel = level
        out.RetrieveAETitle = station_ae
        if any(isinstance(e.value, str) and not e.value.isascii() for e in out if e.VR in TEXT_VRS) or \
                any(e.VR == "PN" and e.value is not None and not str(e.value).isascii() for e in out):
            out.SpecificCharacterSet = "ISO_IR 192"  # names decoded from any stored character set, sent as UTF-8
        return out


def _computed(kw: str, members: list[Any], index: Index) -> Any:
    """The counts and lists of Part 4 C.3.4 (over what this answer's entity holds)."""
    if kw in ("NumberOfPatientRelatedStudies", "NumberOfStudyRelatedSeries", "NumberOfPatientRelatedSeries",
              "NumberOfStudyRelatedInstances", "NumberOfSeriesRelatedInstances", "NumberOfPatientRelatedInstances",
              "ModalitiesInStudy", "SOPClassesInStudy"):
        level_col = "patient_id" if "Patient" in kw else "study_uid" if "Study" in kw else "series_uid"
        rows = index.conn.execute(f"SELECT DISTINCT sop_uid, series_uid, study_uid, modality, sop_class FROM instances "
                                  f"WHERE {level_col} = ?", (members[0][level_col],)).fetchall()
        if kw == "ModalitiesInStudy":
            return sorted({r["modality"] for r in rows if r["modality"]})
        if kw == "SOPClassesInStudy":
            return sorted({r["sop_class"] for r in rows})
        what = "study_uid" if kw.endswith("Studies") else "series_uid" if kw.endswith("Series") else "sop_uid"
        return str(len({r[what] for r in rows}))
    return None


class QRService:
    """The contexts and event handlers the receiver adds for Query/Retrieve."""

    def __init__(self, config: Callable[[], Config], index: Index, store: Store) -> None:
        self.config, self.index, self.store = config, index, store

    def abstract_syntaxes(self) -> list[str]:
        return [*FIND_MODELS.values(), *MOVE_MODELS.values(), *GET_MODELS.values()]

    def handlers(self) -> list[tuple[Any, Callable[..., Any]]]:
        return [(evt.EVT_C_FIND, self.on_find), (evt.EVT_C_GET, self.on_get), (evt.EVT_C_MOVE, self.on_move)]

    # -- C-FIND ------------------------------------------------------------------------------------------------
    def on_find(self, event: Any) -> Iterator[tuple[Any, Dataset | None]]:
        ident = event.identifier
        if (bad := self._bad_level(ident, str(event.request.AffectedSOPClassUID))) is not None:
            yield status(IDENTIFIER_MISMATCH, bad), None
            return
        n = 0
        for answer in Catalogue(self.index, self.store).answers(ident, self.config().station.ae_title):
            if event.is_cancelled:
                yield CANCEL, None
                return
            n += 1
            yield PENDING, answer
        log.info("C-FIND %s from %s: %d answers", ident.QueryRetrieveLevel, _calling(event), n)

    @staticmethod
    def _bad_level(ident: Dataset, model: str) -> str | None:
        level = str(getattr(ident, "QueryRetrieveLevel", "") or "").upper()
        if level not in LEVEL_KEY:
            return f"QueryRetrieveLevel {level!r}: PATIENT, STUDY, SERIES or IMAGE"
        if level == "PATIENT" and model in (STUDY_ROOT_FIND, MOVE_MODELS["study"], GET_MODELS["study"]):
            return "Study Root has no PATIENT level"
        return None

    # -- C-GET / C-MOVE ------------------------------------------------------------------------------------------
    def _instances(self, ident: Dataset) -> list[Any]:
        return Catalogue(self.index, self.store).rows(ident)

    def _refusal(self, event: Any) -> str | None:
        calling = _calling(event)
        node = next((n for n in self.config().nodes if n.ae_title.strip() == calling), None)
        if node is None or not node.allow_retrieve:
            log.warning("refused a retrieve by %s: %s", calling, "not a [[nodes]] entry" if node is None else
                        f"node {node.name!r} has allow_retrieve = false")
            return f"{calling} may not retrieve: allow_retrieve"
        return None

    def _paths(self, rows: Iterable[Any]) -> dict[str, Path]:
        return {r["sop_uid"]: self.store.abspath(r["path"]) for r in rows}

    def on_get(self, event: Any) -> Iterator[Any]:
        if (why := self._refusal(event)) is not None:
            yield 1
            yield status(UNABLE, why), None
            return
        ident = event.identifier
        if (bad := self._bad_level(ident, str(event.request.AffectedSOPClassUID))) is not None:
            yield 1
            yield status(IDENTIFIER_MISMATCH, bad), None
            return
        rows = self._instances(ident)
        send_stored_files(event.assoc, self._paths(rows))
        yield len(rows)
        yield from self._suboperations(event, rows)
        log.info("C-GET by %s: %d instances", _calling(event), len(rows))

    def on_move(self, event: Any) -> Iterator[Any]:
        dest = str(event.move_destination or "").strip()
        node: NodeConfig | None = next((n for n in self.config().nodes if n.ae_title.strip() == dest), None)
        if node is None:
            log.warning("C-MOVE by %s to unknown destination %r (not a [[nodes]] AE title): 0xA801", _calling(event),
                        dest)
            yield None, None
            return
        refusal = self._refusal(event)
        tls, tls_problem = self._destination_tls(node)
        refusal = refusal or tls_problem
        rows = [] if refusal else self._instances(event.identifier)
        pairs = [(r["sop_class"], r["transfer_syntax"]) for r in rows]
        fast = self.config().network.fast_paths
        yield node.host, node.port, move_destination_kwargs(self._paths(rows), contexts_for(pairs), fast, tls,
                                                            node.host, _calling(event))
        if refusal is not None:
            yield 1
            yield status(UNABLE, refusal), None
            return
        yield len(rows)
        yield from self._suboperations(event, rows)
        log.info("C-MOVE by %s to %s: %d instances", _calling(event), node.name, len(rows))

    def _destination_tls(self, node: NodeConfig) -> tuple[Any, str | None]:
        """The C-STORE sub-association to a node with ``tls = true`` is made over TLS with the ``[tls]`` client
        settings, as the sender's associations to it are: a destination that accepts TLS only must get the
        objects, and nothing may go to it in clear. A setting that cannot work refuses the C-MOVE, naming it."""
        if not node.tls:
            return None, None
        try:
            return client_context(self.config().tls, node), None
        except TlsError as exc:
            log.error("C-MOVE to %s refused: TLS to the destination: %s", node.name, exc)
            return None, f"TLS to {node.name}: {exc}"

    @staticmethod
    def _suboperations(event: Any, rows: list[Any]) -> Iterator[tuple[int, Dataset | None]]:
        for r in rows:
            if event.is_cancelled:
                yield CANCEL, None
                return
            yield PENDING, stand_in(r["sop_class"], r["sop_uid"])


def _calling(event: Any) -> str:
    return str(event.assoc.requestor.ae_title).strip()
