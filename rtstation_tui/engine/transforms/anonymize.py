"""``anonymize:PROFILE``: de-identify a bundle so that every RT reference still resolves.

Built on dicognito 0.19.0 (MIT, pydicom only), which walks every element of every nested sequence, invents
consistent person names and shifts dates keeping their order. In front of its handlers go ours (``elements.py``):
UIDs as HMACs of the project key under the site's root — the same input and key give the same UIDs in every object
and on every run, so RTDOSE → RTPLAN → RTSTRUCT → images links and the frame of reference hold — and the profile's
Annex E choices. deid was not used: its stock recipe removes UIDs (RT references break, deid #259) and it pulls in
matplotlib. Pixel data is never decoded; objects with burned-in annotation are refused unless the profile allows.
"""

from __future__ import annotations

import base64
import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from dicognito.anonymizer import Anonymizer
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence

from ..config.anonymize import AnonymizeConfig, ProfileConfig
from ..config.model import Config
from . import annex_e
from .base import TransformError
from .elements import PatientContext, ProfilePolicy, UidRemapper, private_matches, tag_of
from .mapping import MappingTable, ProjectKey, load_key

log = logging.getLogger("rtstation.anonymize")
_META_REMOVED = ("SourceApplicationEntityTitle", "SendingApplicationEntityTitle", "ReceivingApplicationEntityTitle",
                 "PrivateInformationCreatorUID", "PrivateInformation")
_IDENTIFIERS = ("PatientName", "PatientID", "OtherPatientIDs", "PatientBirthDate", "AccessionNumber",
                "InstitutionName", "ReferringPhysicianName", "OperatorsName", "PhysiciansOfRecord",
                "PerformingPhysicianName", "PatientBirthName", "PatientMotherBirthName")
_LONGITUDINAL = {"remove": "REMOVED", "shift": "MODIFIED", "keep": "UNMODIFIED"}


@dataclass(frozen=True)
class NewPatient:
    """What the user asked for on the command line (None: from the rule in the config, else hashed)."""

    patient_id: str | None = None
    patient_name: str | None = None


class Anonymize:
    """The transform. ``mapping`` None: nothing is remembered (patient numbers then count within one call)."""

    changes_identity = True

    def __init__(self, profile: ProfileConfig, settings: AnonymizeConfig, key: ProjectKey,
                 mapping: MappingTable | None = None, new: NewPatient = NewPatient()) -> None:
        self.profile, self.settings, self.key, self.mapping, self.new = profile, settings, key, mapping, new
        self.name = f"anonymize:{profile.name}"

    @property
    def config(self) -> ProfileConfig:
        return self.profile

    def describe(self) -> str:
        root = self.settings.uid_root
        return f"{self.name}: {'; '.join(self.profile.options())}; new UIDs under {root} (key {self.key.key_id})"

    # -- the transform ---------------------------------------------------------------------------------------
    def apply(self, objects: Sequence[Dataset]) -> list[Dataset]:
        self._refuse_burned_in(objects)
        by_patient: dict[str, list[int]] = {}
        for i, ds in enumerate(objects):
            by_patient.setdefault(str(ds.get("PatientID", "") or ""), []).append(i)
        if self.new.patient_id and len(by_patient) > 1:
            raise TransformError(f"a new patient ID was given but the objects belong to {len(by_patient)} patients "
                                 f"({', '.join(sorted(by_patient))}): anonymize one patient at a time")
        uids = UidRemapper(self.key, self.settings.uid_root)
        out: list[Dataset | None] = [None] * len(objects)
        assigned = []
        next_n = self.mapping.next_number(self.key.key_id) if self.mapping else 1
        for pid in sorted(by_patient):
            members = [objects[i] for i in by_patient[pid]]
            n, new_id, new_name, fresh = self._patient(pid, next_n)
            next_n += int(fresh)
            assigned.append((pid, str(members[0].get("PatientName", "") or ""), n, new_id, new_name))
            context = PatientContext(new_id, new_name, self._day_offset(pid), _identifiers(members))
            anonymizer = self._anonymizer(pid, context, uids)
            for i in by_patient[pid]:
                out[i] = self._one(objects[i], anonymizer, context)
        if self.mapping is not None:
            self.mapping.record(self.key.key_id, uids.seen, assigned)
        return [ds for ds in out if ds is not None]

    def _refuse_burned_in(self, objects: Sequence[Dataset]) -> None:
        if self.profile.allow_burned_in:
            return
        for ds in objects:
            if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
                raise TransformError(f"{ds.get('Modality', '?')} {ds.get('SOPInstanceUID', '?')} has "
                                     "BurnedInAnnotation = YES: its pixels may show who the patient is. Profile "
                                     f"{self.profile.name!r} refuses it (allow_burned_in = true to accept)")

    def _patient(self, pid: str, next_n: int) -> tuple[int, str, str, bool]:
        """(number, new ID, new name, whether the number is new): the table's answer first, for ever the same."""
        row = self.mapping.patient(self.key.key_id, pid) if self.mapping else None
        n = int(row["n"]) if row else next_n
        id_rule = self.profile.patient_id or self.settings.patient_id
        name_rule = self.profile.patient_name or self.settings.patient_name
        if self.new.patient_id:
            new_id = self.new.patient_id
        elif row:
            new_id = row["new_id"]
        elif id_rule:
            new_id = id_rule.format(n=n, id="")
        else:
            new_id = "ANON" + base64.b32encode(self.key.digest("patient", pid)).decode()[:10]
        if self.new.patient_name:
            new_name = self.new.patient_name
        elif row and not self.new.patient_id:
            new_name = row["new_name"]
        else:
            new_name = name_rule.format(n=n, id=new_id) if name_rule else new_id
        return n, new_id, new_name, row is None

    def _day_offset(self, pid: str) -> int:
        """Per patient, 62 to 730 days back (dicognito's range), from the key: intervals within a patient hold."""
        return -(62 + int.from_bytes(self.key.digest("days", pid)[:8], "big") % (730 - 62))

    def _anonymizer(self, pid: str, context: PatientContext, uids: UidRemapper) -> Anonymizer:
        anonymizer = Anonymizer(seed=self.key.digest("dicognito", pid).hex())
        anonymizer.add_element_handler(ProfilePolicy(self.profile, self.key, context, uids))
        anonymizer.add_element_handler(uids)  # first of all: UIDs never reach the profile's dummies
        return anonymizer

    def _one(self, original: Dataset, anonymizer: Anonymizer, context: PatientContext) -> Dataset:
        ds = copy.deepcopy(original)
        _strip_private(ds, self.profile.retain_safe_private)
        meta = getattr(ds, "file_meta", None)
        if meta is None:
            meta = ds.file_meta = FileMetaDataset()  # dicognito walks it
        for keyword in _META_REMOVED:
            if keyword in meta:
                delattr(meta, keyword)
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID  # this writer made the file, not the original's
        meta.ImplementationVersionName = f"PYDICOM {pydicom.__version__}"[:16]
        anonymizer.anonymize(ds)
        kept = {tag_of(s) for s in self.profile.keep}
        if 0x00100020 not in kept:
            ds.PatientID = context.new_id  # also where the original had none
        if 0x00100010 not in kept:
            ds.PatientName = context.new_name
        self._record_method(ds)
        return ds

    def _record_method(self, ds: Dataset) -> None:
        options = self.profile.options()
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = [f"rtstation profile {self.profile.name}"[:64], *options]
        ds.DeidentificationMethodCodeSequence = DicomSequence([_code(o) for o in options])
        ds.LongitudinalTemporalInformationModified = _LONGITUDINAL[self.profile.dates]


def _code(option: str) -> Dataset:
    item = Dataset()
    item.CodeValue = annex_e.METHOD_CODES[option]
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = option
    return item


def _identifiers(members: Sequence[Dataset]) -> list[str]:
    """The patient's identifying strings (and name parts), longest first, for Clean Descriptors."""
    found: set[str] = set()
    for ds in members:
        for keyword in _IDENTIFIERS:
            value = ds.get(keyword)
            for v in (value if isinstance(value, MultiValue) else [value]):
                text = str(v or "").strip()
                found.update(p for p in [text, *text.replace("^", " ").split()] if len(p) >= 3)
    return sorted(found, key=len, reverse=True)


def _strip_private(ds: Dataset, safe: tuple[str, ...]) -> None:
    """Every private element goes, except the profile's safe list (and the creators of their blocks)."""
    for elem in list(ds):
        if elem.VR == "SQ":
            for item in elem.value or []:
                _strip_private(item, safe)
    private = [e.tag for e in ds if e.tag.is_private]
    kept = {t for t in private if t.element > 0xFF and safe and private_matches(t, safe)}
    creators = {(t.group << 16) | (t.element >> 8) for t in kept}
    for tag in private:
        if tag not in kept and int(tag) not in creators:
            del ds[tag]


def build(config: Config, profile_name: str, *, new: NewPatient = NewPatient(), remember: bool = True) -> Anonymize:
    """``anonymize:PROFILE`` as the engine builds it (CLI, sender, rules): key, mapping table, profile."""
    settings = config.anonymize
    try:
        profile = settings.profile(profile_name)
    except ValueError as exc:
        raise TransformError(str(exc)) from None
    try:
        key = load_key(settings.key, settings.key_file, config.data_dir)
    except ValueError as exc:
        raise TransformError(str(exc)) from None
    mapping = MappingTable(Path(config.data_dir)) if remember else None
    return Anonymize(profile, settings, key, mapping, new)
