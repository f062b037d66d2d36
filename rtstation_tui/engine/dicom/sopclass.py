"""SOP classes: the modality a class implies when the dataset has none, and the send order of RT bundles."""

from __future__ import annotations

from pydicom.uid import UID

_RT = {
    "1.2.840.10008.5.1.4.1.1.481.1": "RTIMAGE",
    "1.2.840.10008.5.1.4.1.1.481.2": "RTDOSE",
    "1.2.840.10008.5.1.4.1.1.481.3": "RTSTRUCT",
    "1.2.840.10008.5.1.4.1.1.481.4": "RTRECORD",
    "1.2.840.10008.5.1.4.1.1.481.5": "RTPLAN",
    "1.2.840.10008.5.1.4.1.1.481.8": "RTPLAN",  # RT Ion Plan: its IOD's Modality is RTPLAN too
    "1.2.840.10008.5.1.4.1.1.481.9": "RTRECORD",
    "1.2.840.10008.5.1.4.1.1.66.1": "REG",
    "1.2.840.10008.5.1.4.1.1.66.3": "REG",
    "1.2.840.10008.5.1.4.1.1.2": "CT",
    "1.2.840.10008.5.1.4.1.1.2.1": "CT",
    "1.2.840.10008.5.1.4.1.1.4": "MR",
    "1.2.840.10008.5.1.4.1.1.4.1": "MR",
    "1.2.840.10008.5.1.4.1.1.128": "PT",
    "1.2.840.10008.5.1.4.1.1.130": "PT",
    "1.2.840.10008.5.1.4.1.1.7": "OT",
}
RT_ION_PLAN = "1.2.840.10008.5.1.4.1.1.481.8"
RT_PLAN = "1.2.840.10008.5.1.4.1.1.481.5"

# Send order inside a bundle: images → RTSTRUCT → plans → doses → registrations and the rest.
IMAGE_MODALITIES = frozenset({"CT", "MR", "PT", "NM", "US", "CR", "DX", "MG", "XA", "OT", "SC"})
_ORDER = {"RTSTRUCT": 1, "RTPLAN": 2, "RTDOSE": 3}


def modality_for_sop_class(uid: str) -> str:
    if uid in _RT:
        return _RT[uid]
    name = UID(uid).name if uid else ""
    for word, modality in (("CT ", "CT"), ("MR ", "MR"), ("PET", "PT"), ("Registration", "REG")):
        if word in name:
            return modality
    return "OT"


def sop_classes_for_modality(modality: str) -> tuple[str, ...]:
    """The storage classes an object of ``modality`` may have (the reverse of the table above, plus Secondary
    Capture for OT/SC): what a C-GET proposes when the peer's C-FIND did not answer SOPClassUID."""
    classes = tuple(uid for uid, m in _RT.items() if m == modality)
    if modality in ("OT", "SC"):
        classes += ("1.2.840.10008.5.1.4.1.1.7",)
    return classes


def send_rank(modality: str) -> int:
    """0 images, 1 RTSTRUCT, 2 RTPLAN, 3 RTDOSE, 4 registrations and everything else."""
    if modality in _ORDER:
        return _ORDER[modality]
    return 0 if modality in IMAGE_MODALITIES else 4


def is_image_modality(modality: str) -> bool:
    return modality in IMAGE_MODALITIES
