"""What a node holds of one patient, learnt by C-FIND only: studies, series, and the RT objects' instances with the
references their answers carry (Orthanc and most archives return sequences at IMAGE level).

Why a separate step: the selective retrieve decides what to pull from these answers, so nothing outside a plan's
chain ever crosses the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from pydicom.dataset import Dataset

from ..config.nodes import NodeConfig
from .query import Terms, build_identifier
from .scu import find

RT_MODALITIES = ("RTPLAN", "RTSTRUCT", "RTDOSE", "RTIMAGE", "REG", "RTRECORD")
Finder = Callable[[Dataset, str], list[Dataset]]


@dataclass(frozen=True)
class RemoteInstance:
    sop_uid: str
    sop_class: str
    series_uid: str
    study_uid: str
    modality: str
    plan_refs: tuple[str, ...] = ()  # ReferencedRTPlanSequence (doses, RT images)
    series_refs: tuple[str, ...] = ()  # ReferencedSeriesSequence (registrations)
    instance_refs: tuple[str, ...] = ()  # ReferencedImageSequence / ReferencedInstanceSequence
    label: str | None = None  # RTPlanLabel as the C-FIND answered it (None: not answered)
    approval: str | None = None  # ApprovalStatus, likewise


@dataclass(frozen=True)
class RemoteSeries:
    study_uid: str
    series_uid: str
    modality: str
    instances: tuple[RemoteInstance, ...] = ()


@dataclass
class RemotePatient:
    patient_id: str
    series: list[RemoteSeries] = field(default_factory=list)

    def of_modality(self, *modalities: str) -> list[RemoteSeries]:
        return [s for s in self.series if s.modality in modalities]

    def instance(self, sop_uid: str) -> RemoteInstance | None:
        for s in self.series:
            for i in s.instances:
                if i.sop_uid == sop_uid:
                    return i
        return None


def finder(node: NodeConfig, station_ae: str, tls: Any = None, fast_paths: bool = True) -> Finder:
    return lambda identifier, level: find(node, station_ae, identifier, level, tls, fast_paths)


def survey(find_: Finder, patient_id: str, instance_modalities: tuple[str, ...] | None = RT_MODALITIES
           ) -> RemotePatient:
    """Studies, series, and the instances of the series whose modality is in ``instance_modalities`` (None:
    of every series)."""
    out = RemotePatient(patient_id)
    studies = find_(build_identifier(Terms(level="study", patient=patient_id)), "study")
    for study in studies:
        ident = build_identifier(Terms(level="series", patient=patient_id))
        ident.StudyInstanceUID = study.StudyInstanceUID
        for s in find_(ident, "series"):
            modality = str(getattr(s, "Modality", "") or "")
            instances = instances_of(find_, patient_id, str(study.StudyInstanceUID), str(s.SeriesInstanceUID),
                                     modality) if instance_modalities is None or modality in instance_modalities else ()
            out.series.append(RemoteSeries(str(study.StudyInstanceUID), str(s.SeriesInstanceUID), modality,
                                           instances))
    return out


def instances_of(find_: Finder, patient_id: str, study_uid: str, series_uid: str, modality: str
                 ) -> tuple[RemoteInstance, ...]:
    ident = build_identifier(Terms(level="image", patient=patient_id))
    ident.StudyInstanceUID, ident.SeriesInstanceUID = study_uid, series_uid
    if modality in RT_MODALITIES:
        for kw in ("ReferencedRTPlanSequence", "ReferencedSeriesSequence", "ReferencedImageSequence"):
            setattr(ident, kw, [])
    if modality == "RTPLAN":
        ident.RTPlanLabel, ident.ApprovalStatus = None, None
    return tuple(_instance(a, study_uid, series_uid, modality) for a in find_(ident, "image"))


def _uids(ds: Dataset, seq: str, kw: str) -> tuple[str, ...]:
    return tuple(str(getattr(item, kw, "")) for item in (getattr(ds, seq, None) or []) if getattr(item, kw, ""))


def _instance(a: Dataset, study_uid: str, series_uid: str, modality: str) -> RemoteInstance:
    return RemoteInstance(str(a.SOPInstanceUID), str(getattr(a, "SOPClassUID", "") or ""), series_uid, study_uid,
                          str(getattr(a, "Modality", "") or modality),
                          _uids(a, "ReferencedRTPlanSequence", "ReferencedSOPInstanceUID"),
                          _uids(a, "ReferencedSeriesSequence", "SeriesInstanceUID"),
                          _uids(a, "ReferencedImageSequence", "ReferencedSOPInstanceUID"),
                          _answered(a, "RTPlanLabel"), _answered(a, "ApprovalStatus"))


def _answered(a: Dataset, kw: str) -> str | None:
    """A return key's value; None when the peer left it out or empty (it may not support the key)."""
    value = str(getattr(a, kw, "") or "").strip()
    return value or None
