"""PS3.15 Annex E, Table E.1-1: what the Basic Profile does to each attribute, and what its options retain.

The Basic Profile's action per attribute comes from the ``dicom-anonymizer`` package's database of the 2026c
standard (``dicomfields_2026c``), not from a table typed in here. That package carries only the Basic Profile
column; the option columns rtstation offers (patient characteristics, device identity, clean descriptors) are the
short lists below. Action codes: X remove, Z empty, D dummy, U new UID, and the standard's combinations.
"""

from __future__ import annotations

import re
from functools import lru_cache

from pydicom.datadict import dictionary_keyword
from pydicom.tag import BaseTag, Tag

_CATEGORIES = {"D_TAGS": "D", "Z_TAGS": "Z", "X_TAGS": "X", "U_TAGS": "U", "Z_D_TAGS": "ZD", "X_Z_TAGS": "XZ",
               "X_D_TAGS": "XD", "X_Z_D_TAGS": "XZD", "X_Z_U_STAR_TAGS": "XZU"}

# Retain Patient Characteristics Option: K for these (Table E.1-1 column "Rtn. Pat. Chars.")
PATIENT_CHARACTERISTICS = frozenset(Tag(k) for k in (
    "PatientSex", "PatientAge", "PatientSize", "PatientWeight", "EthnicGroup", "SmokingStatus", "PregnancyStatus",
    "PatientSexNeutered", "Allergies", "MedicalAlerts", "SpecialNeeds", "PatientState"))

# Retain Device Identity Option: K for these. TreatmentMachineName is what RT research (and beam models) need.
DEVICE_IDENTITY = frozenset(Tag(k) for k in (
    "StationName", "DeviceSerialNumber", "DeviceUID", "DeviceDescription", "DeviceLabel", "DetectorID",
    "TreatmentMachineName", "SourceSerialNumber", "GantryID", "PlateID", "CassetteID", "GeneratorID",
    "HardcopyCreationDeviceID", "ModifyingDeviceID", "PerformedStationName", "PerformedStationAETitle",
    "ScheduledStationName", "ScheduledStationAETitle", "LongDeviceDescription", "LensSerialNumber",
    "ManufacturerDeviceIdentifier", "DeviceAlternateIdentifier", "XRayDetectorLabel"))

# Clean Descriptors Option: text attributes the Basic Profile removes or blanks but whose content is kept once
# cleaned of the patient's identifiers (descriptions, comments, labels, ROI names).
_DESCRIPTOR = re.compile(r"(Description|Comments?|Label|Notes|Narrative|ProtocolName|ROIName|Intent|History|"
                         r"Diagnos|TreatmentSite|Reason|RTPlanName|ROIObservationLabel)")
_NOT_DESCRIPTOR = re.compile(r"^(Institution|Station|Performed|Scheduled|ClinicalTrial|Requesting|Device|Detector|"
                             r"Person|Patient(s)?(Birth|Mother|Address|Telephone))")
TEXT_VRS = ("SH", "LO", "ST", "LT", "UT", "UC")


@lru_cache(maxsize=1)
def basic_profile() -> tuple[dict[int, str], tuple[tuple[int, int, str], ...]]:
    """Tag → Basic Profile action, and (value, mask, action) for repeating groups (curves 50xx, overlays 60xx)."""
    from dicomanonymizer.dicom_anonymization_databases import dicomfields_2026c as table

    exact: dict[int, str] = {}
    masked: list[tuple[int, int, str]] = []
    for attr, code in _CATEGORIES.items():
        for entry in getattr(table, attr):
            if len(entry) == 4:  # (group, element, group mask, element mask)
                group, elem, gmask, emask = entry
                masked.append(((group << 16) | elem, (gmask << 16) | emask, code))
            else:
                exact[(entry[0] << 16) | entry[1]] = code
    return exact, tuple(masked)


def action(tag: BaseTag) -> str | None:
    exact, masked = basic_profile()
    code = exact.get(int(tag))
    if code is None:
        code = next((c for value, mask, c in masked if int(tag) & mask == value), None)
    return code


def is_descriptor(tag: BaseTag, vr: str) -> bool:
    """Whether the Clean Descriptors option keeps (cleaned) this element instead of the Basic Profile's action."""
    if vr not in TEXT_VRS:
        return False
    try:
        keyword = dictionary_keyword(tag)
    except KeyError:
        return False
    return bool(_DESCRIPTOR.search(keyword)) and not _NOT_DESCRIPTOR.match(keyword)


# Codes of CID 7050 "De-identification Method" (DCM), in DeidentificationMethodCodeSequence
METHOD_CODES = {
    "Basic Application Confidentiality Profile": "113100",
    "Clean Descriptors": "113105",
    "Retain Longitudinal Temporal Information Full Dates": "113106",
    "Retain Longitudinal Temporal Information Modified Dates": "113107",
    "Retain Patient Characteristics": "113108",
    "Retain Device Identity": "113109",
    "Retain Safe Private": "113111",
}
