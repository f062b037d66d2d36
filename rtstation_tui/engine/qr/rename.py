"""``retrieve --new-patient-id ID --new-patient-name NAME``: store what is retrieved as another patient.

The use: a physicist pulls a phantom or QA plan from the TPS database and imports it as a new patient (a QA
patient, a test ID) next to the original, to send it on or plan on it. What they expect: a patient of its own that
no system confuses with the original. So the UIDs are **remapped**, not kept: a TPS or PACS that already holds the
original refuses (or silently merges) an object whose SOP Instance UID it knows under another Patient ID, and two
patients sharing study, series and frame of reference UIDs would be one patient to every reference chain.

How: every UI value except class UIDs, transfer syntaxes and DICOM-registry UIDs (``transforms.elements.
UidRemapper``'s rule) becomes ``2.25.<hash of (new patient ID, original UID)>``, in every nested sequence, so the
references between the retrieved objects (dose → plan → structure set → images, frame of reference) still hold.
Deterministic: the same retrieve under the same new ID gives the same UIDs, so re-running it (resume) skips what is
already stored; under another new ID it is another patient. PatientID and PatientName are set; nothing else is
changed (a phantom's birth date and sex are the phantom's).

"Stored originals never change" holds for what we store: the rewritten object *is* the stored original (the store
never sees the pre-rename bytes; the audit record says where it came from). The original patient, if stored here
too, is untouched: its UIDs differ, so nothing collides. A stored object with the same (remapped) SOP Instance UID
can only come from an earlier retrieve under the same new ID: identical bytes are a duplicate (kept once), other
bytes (the node's object changed since) are stored as a conflicting version, as for any sender.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from ..transforms.elements import UidRemapper
from ..transforms.mapping import ProjectKey


@dataclass(frozen=True)
class NewPatient:
    patient_id: str
    patient_name: str


class Renamer:
    """Original UID → this new patient's UID, and the rewrite of one retrieved file."""

    def __init__(self, new: NewPatient) -> None:
        self.new = new
        self._uids = UidRemapper(ProjectKey(b"rtstation retrieve --new-patient-id\0" + new.patient_id.encode()),
                                 "2.25.")

    def local(self, uid: str) -> str:
        """The UID this station stores for the node's ``uid``."""
        return self._uids.new_uid(uid) if uid else uid

    def rewrite(self, path: Path) -> str:
        """Rewrite the retrieved file at ``path`` (our own temp file) in place; returns its new SOP Instance UID."""
        ds = pydicom.dcmread(path, force=True)
        ds.walk(self._element)
        ds.PatientID, ds.PatientName = self.new.patient_id, self.new.patient_name
        if "SOPInstanceUID" in ds and hasattr(ds, "file_meta"):
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(path, enforce_file_format=True)
        return str(ds.get("SOPInstanceUID", "") or "")

    def _element(self, dataset: Dataset, element: DataElement) -> None:
        self._uids(dataset, element)


class SameUids:
    """No new patient: the node's UIDs are ours."""

    @staticmethod
    def local(uid: str) -> str:
        return uid


__all__ = ["NewPatient", "Renamer", "SameUids"]
