"""Plan facts from an RTPLAN or RT Ion Plan: what a physicist checks before a plan goes to the machine.

Why a separate read from ``dicom/header.py``: the receive path keeps only what bundles and rules need (label,
machines, MU, fractions); metrics read the whole plan once, in the metrics worker, for technique, angles, control
points and the prescription.

Technique, per treatment beam: ``ion`` for ion beams; ``VMAT`` when the gantry turns while the MLC moves, ``arc``
when it turns with fixed leaves; ``IMRT`` for a fixed gantry with more than two control points whose leaves move
(sliding window or step-and-shoot); otherwise ``static``. The plan's technique lists the distinct ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset

# the header reader's tolerant value readers: one definition of "a malformed value reads as missing"
from ..dicom.header import _float, _int, _s, _seq

PLAN_CLASSES = ("1.2.840.10008.5.1.4.1.1.481.5", "1.2.840.10008.5.1.4.1.1.481.8")  # RT Plan, RT Ion Plan
ENERGY_UNIT = {"PHOTON": "MV", "ELECTRON": "MeV", "PROTON": "MeV", "NEUTRON": "MeV", "ION": "MeV/u"}


@dataclass(frozen=True)
class BeamFacts:
    number: int | None
    name: str
    machine: str
    radiation_type: str
    energy: float | None  # nominal, of the first control point
    energy_unit: str
    fluence: str  # "FFF", "SRS"... for non-standard fluence modes, else ""
    mu: float | None  # BeamMeterset of the first fraction group
    beam_dose_gy: float | None  # per fraction, at the beam dose specification point
    delivery: str  # TREATMENT, SETUP, ...
    technique: str
    control_points: int
    gantry_start: float | None
    gantry_stop: float | None
    gantry_direction: str
    collimator: float | None
    couch: float | None


@dataclass(frozen=True)
class DoseRef:
    number: int | None
    description: str
    structure_type: str  # SITE, VOLUME, POINT, COORDINATES
    kind: str  # TARGET, ORGAN_AT_RISK
    roi_number: int | None
    prescription_gy: float | None  # TargetPrescriptionDose: whole course


@dataclass(frozen=True)
class PlanFacts:
    plan_uid: str
    patient_id: str
    label: str
    name: str
    intent: str
    approval: str
    review_date: str
    reviewer: str
    ion: bool
    machines: tuple[str, ...]
    technique: str
    fractions: int | None
    beams: tuple[BeamFacts, ...]
    dose_refs: tuple[DoseRef, ...]
    struct_uid: str

    @property
    def treatment_beams(self) -> tuple[BeamFacts, ...]:
        return tuple(b for b in self.beams if b.delivery in ("", "TREATMENT", "CONTINUATION"))

    @property
    def total_mu(self) -> float | None:
        mus = [b.mu for b in self.treatment_beams if b.mu is not None]
        return round(sum(mus), 3) if mus else None

    @property
    def prescription(self) -> DoseRef | None:
        """The target dose reference with the highest prescription; volumes and sites before points."""
        targets = [d for d in self.dose_refs if d.kind == "TARGET" and d.prescription_gy is not None]
        if not targets:
            return None
        return max(targets, key=lambda d: (d.structure_type in ("SITE", "VOLUME"), d.prescription_gy or 0.0))

    @property
    def dose_per_fraction_gy(self) -> float | None:
        """Sum of the treatment beams' doses per fraction at their specification points."""
        doses = [b.beam_dose_gy for b in self.treatment_beams if b.beam_dose_gy is not None]
        return round(sum(doses), 6) if doses else None

    def as_json(self) -> dict[str, Any]:
        rx = self.prescription
        out = asdict(self)
        out.update(machines=list(self.machines), total_mu=self.total_mu, dose_per_fraction_gy=self.dose_per_fraction_gy,
                   prescription_gy=rx.prescription_gy if rx else None,
                   prescription_per_fraction_gy=(rx.prescription_gy / self.fractions
                                                 if rx and rx.prescription_gy and self.fractions else None),
                   prescription_target=rx.description if rx else None, ranges=angle_ranges(self.treatment_beams))
        return out


def read_plan(source: str | Path | Dataset) -> PlanFacts:
    ds = source if isinstance(source, Dataset) else pydicom.dcmread(source, force=True)
    if _s(ds.get("SOPClassUID")) not in PLAN_CLASSES and "RTPlanLabel" not in ds:
        raise ValueError(f"not an RTPLAN or RT Ion Plan (SOP Class {_s(ds.get('SOPClassUID')) or 'missing'})")
    ion = "IonBeamSequence" in ds
    groups = _seq(ds, "FractionGroupSequence")
    per_beam: dict[int, tuple[float | None, float | None]] = {}
    fractions = None
    if groups:
        fractions = _int(groups[0].get("NumberOfFractionsPlanned"))
        for ref in _seq(groups[0], "ReferencedBeamSequence"):
            num = _int(ref.get("ReferencedBeamNumber"))
            if num is not None:
                per_beam[num] = (_float(ref.get("BeamMeterset")), _float(ref.get("BeamDose")))
    beams = tuple(_beam(b, ion, per_beam) for b in _seq(ds, "IonBeamSequence" if ion else "BeamSequence"))
    treatment = [b for b in beams if b.delivery in ("", "TREATMENT", "CONTINUATION")]
    technique = "+".join(dict.fromkeys(b.technique for b in treatment)) or ""
    structs = _seq(ds, "ReferencedStructureSetSequence")
    return PlanFacts(
        plan_uid=_s(ds.get("SOPInstanceUID")), patient_id=_s(ds.get("PatientID")), label=_s(ds.get("RTPlanLabel")),
        name=_s(ds.get("RTPlanName")), intent=_s(ds.get("PlanIntent")), approval=_s(ds.get("ApprovalStatus")),
        review_date=_s(ds.get("ReviewDate")), reviewer=_s(ds.get("ReviewerName")), ion=ion,
        machines=tuple(dict.fromkeys(b.machine for b in beams if b.machine)), technique=technique,
        fractions=fractions, beams=beams, dose_refs=tuple(_dose_ref(d) for d in _seq(ds, "DoseReferenceSequence")),
        struct_uid=_s(structs[0].get("ReferencedSOPInstanceUID")) if structs else "")


def _beam(b: Dataset, ion: bool, per_beam: dict[int, tuple[float | None, float | None]]) -> BeamFacts:
    number = _int(b.get("BeamNumber"))
    cps = _seq(b, "IonControlPointSequence" if ion else "ControlPointSequence")
    first = cps[0] if cps else Dataset()
    radiation = _s(b.get("RadiationType"))
    gantry = [round(g, 4) for g in (_float(cp.get("GantryAngle")) for cp in cps) if g is not None]
    direction = _s(first.get("GantryRotationDirection")) or "NONE"
    fluence = ""
    for mode in _seq(b, "PrimaryFluenceModeSequence"):
        if _s(mode.get("FluenceMode")) == "NON_STANDARD":
            fluence = _s(mode.get("FluenceModeID"))
    mu, dose = per_beam.get(number, (None, None)) if number is not None else (None, None)
    return BeamFacts(
        number=number, name=_s(b.get("BeamName")), machine=_s(b.get("TreatmentMachineName")),
        radiation_type=radiation, energy=_float(first.get("NominalBeamEnergy")),
        energy_unit=ENERGY_UNIT.get(radiation, ""), fluence=fluence, mu=mu, beam_dose_gy=dose,
        delivery=_s(b.get("TreatmentDeliveryType")) or "TREATMENT",
        technique=_technique(ion, direction, cps), control_points=len(cps),
        gantry_start=gantry[0] if gantry else None, gantry_stop=gantry[-1] if gantry else None,
        gantry_direction=direction, collimator=_angle(first.get("BeamLimitingDeviceAngle")),
        couch=_angle(first.get("PatientSupportAngle")))


def _angle(value: Any) -> float | None:
    v = _float(value)
    return None if v is None else round(v, 4) + 0.0  # + 0.0: no "-0.0" from a tiny negative angle


def _technique(ion: bool, direction: str, cps: list[Dataset]) -> str:
    if ion:
        return "ion"
    leaves = {tuple(_s(p.get("LeafJawPositions")) for p in _seq(cp, "BeamLimitingDevicePositionSequence")
                    if "MLC" in _s(p.get("RTBeamLimitingDeviceType"))) for cp in cps}
    leaves.discard(())
    moving = len(leaves) > 1
    if direction in ("CW", "CC"):
        return "VMAT" if moving else "arc"
    return "IMRT" if moving and len(cps) > 2 else "static"


def _dose_ref(d: Dataset) -> DoseRef:
    return DoseRef(_int(d.get("DoseReferenceNumber")), _s(d.get("DoseReferenceDescription")),
                   _s(d.get("DoseReferenceStructureType")), _s(d.get("DoseReferenceType")),
                   _int(d.get("ReferencedROINumber")), _float(d.get("TargetPrescriptionDose")))


def angle_ranges(beams: tuple[BeamFacts, ...]) -> dict[str, list[float] | None]:
    """[min, max] of gantry (every start and stop), collimator and couch over the beams; None when unknown."""
    def span(values: list[float | None]) -> list[float] | None:
        known = [v for v in values if v is not None]
        return [round(min(known), 3), round(max(known), 3)] if known else None
    return {"gantry": span([a for b in beams for a in (b.gantry_start, b.gantry_stop)]),
            "collimator": span([b.collimator for b in beams]), "couch": span([b.couch for b in beams])}
