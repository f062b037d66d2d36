"""Element handlers plugged in front of dicognito's: the profile's choices, and UIDs under the site's root.

dicognito walks every element of every nested sequence and asks its handlers in turn; the first that returns True
has dealt with the element. Ours come first: the UID remapper (keyed HMAC, configurable root, so the same key gives
the same UIDs everywhere), then the profile (explicit keep/replace/remove, the Annex E options, the Basic Profile's
action). Whatever the profile leaves alone (other person names, addresses, IDs) goes on to dicognito's handlers.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterator

from dicognito.datetimeanonymizer import DateTimeAnonymizer
from dicognito.element_anonymizer import ElementAnonymizer
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.datadict import dictionary_keyword
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag

from ..config.anonymize import ProfileConfig
from . import annex_e
from .mapping import ProjectKey

WELL_KNOWN = "1.2.840.10008."  # DICOM's own registry (coding schemes, LDAP OIDs...): identifies nobody
_UID_IN_TEXT = re.compile(r"\b[0-9]+(?:\.[0-9]+){3,}\b")
DATE_VRS = ("DA", "DT", "TM")
NUMERIC_TEXT = {"IS": "0", "DS": "0"}
DUMMY_DATES = {"DA": "19000101", "TM": "000000", "DT": "19000101000000"}
BIRTH = (0x00100030, 0x00100032)  # Z whatever the date option: a shifted birth date is still one


class UidRemapper(ElementAnonymizer):
    """Every UI value except SOP class, transfer syntax and DICOM-registry UIDs → a UID derived from key + UID."""

    def __init__(self, key: ProjectKey, root: str) -> None:
        self.key = key
        self.root = root if root.endswith(".") else root + "."
        self.seen: dict[str, str] = {}

    def __call__(self, dataset: Dataset, element: DataElement) -> bool:
        if element.VR != "UI":
            return False
        if not element.value or self.keeps(element.tag):
            return True
        if isinstance(element.value, MultiValue):
            element.value = [self.new_uid(str(v)) for v in element.value]
        else:
            element.value = self.new_uid(str(element.value))
        return True

    @staticmethod
    def keeps(tag: BaseTag) -> bool:
        keyword = dictionary_keyword(tag) if _known(tag) else ""
        return keyword.endswith("ClassUID") or keyword == "TransferSyntaxUID"

    def new_uid(self, uid: str) -> str:
        uid = uid.strip().rstrip("\0")
        if not uid or uid.startswith(WELL_KNOWN):
            return uid
        new = self.seen.get(uid)
        if new is None:
            digest = self.key.digest("uid", uid)
            if self.root == "2.25.":  # PS3.5 B.2: the UUID as one integer
                new = f"2.25.{uuid.UUID(bytes=digest[:16], version=4).int}"
            else:
                digits = 64 - len(self.root)
                new = f"{self.root}{int.from_bytes(digest, 'big') % (10 ** min(digits, 60))}"
            self.seen[uid] = new
        return new

    def describe_actions(self) -> Iterator[str]:
        yield f"Replace every UID but class, transfer syntax and DICOM registry UIDs with {self.root}<HMAC>"


@dataclass
class PatientContext:
    """What the profile needs to know about the patient whose objects are being walked."""

    new_id: str
    new_name: str
    day_offset: int
    identifiers: list[str] = field(default_factory=list)  # original values scrubbed out of cleaned descriptors


class ProfilePolicy(ElementAnonymizer):
    """The profile's decisions for one element, in the order a reader of the config expects."""

    def __init__(self, profile: ProfileConfig, key: ProjectKey, patient: PatientContext, uids: UidRemapper) -> None:
        self.profile, self.key, self.patient, self.uids = profile, key, patient, uids
        self.keep = {tag_of(s) for s in profile.keep}
        self.remove = {tag_of(s) for s in profile.remove}
        self.replace = {tag_of(s): v for s, v in profile.replace}
        self.dates = DateTimeAnonymizer(patient.day_offset * 24)
        self._fixed: dict[int, Callable[[], str]] = {
            0x00100020: lambda: patient.new_id, 0x00100010: lambda: patient.new_name}

    def __call__(self, dataset: Dataset, element: DataElement) -> bool:
        tag = int(element.tag)
        if tag in self.keep:
            return True
        if tag in self.remove:
            del dataset[element.tag]
            return True
        if tag in self.replace:
            element.value = self.replace[tag]
            return True
        if tag in self._fixed:
            element.value = self._fixed[tag]()
            return True
        return self._by_option(dataset, element) or self._by_basic_profile(dataset, element)

    def _by_option(self, dataset: Dataset, element: DataElement) -> bool:
        p, tag = self.profile, element.tag
        if element.VR in DATE_VRS and p.dates != "remove" and int(tag) not in BIRTH:
            return self._date(dataset, element)
        if p.retain_patient_characteristics and tag in annex_e.PATIENT_CHARACTERISTICS:
            return True
        if p.retain_device_identity and tag in annex_e.DEVICE_IDENTITY:
            return True
        if p.clean_descriptors and annex_e.is_descriptor(tag, element.VR):
            element.value = self.clean(element.value)
            return True
        return False

    def _date(self, dataset: Dataset, element: DataElement) -> bool:
        """Shift by whole days (times stay, so intervals are kept exactly), or keep full dates."""
        if self.profile.dates == "shift" and element.VR in ("DA", "DT") and element.value:
            self.dates(dataset, element)
        return True

    def _by_basic_profile(self, dataset: Dataset, element: DataElement) -> bool:
        code = annex_e.action(element.tag)
        if code is None:
            if element.VR in DATE_VRS:  # a date the table does not list: no dates unless an option keeps them
                return self._empty(element)
            return False  # dicognito's handlers: other names, addresses, IDs, UIDs
        if code in ("U", "XZU"):
            return False  # UIDs get remapped (in sequences too: they are walked into)
        if element.VR == "SQ":  # what may go, goes (an empty sequence is worse than none); D: walked into
            return self._sequence(dataset, element, code)
        if element.VR in ("PN", "UI") and "D" in code:
            return False  # dicognito invents a consistent name
        if element.VR in DATE_VRS and "D" in code:
            element.value = DUMMY_DATES[element.VR] if element.value else element.value  # no dates, no intervals
            return True
        if code in ("X", "XD"):
            del dataset[element.tag]
            return True
        if "Z" in code:
            return self._empty(element)
        return self._dummy(dataset, element)

    def _sequence(self, dataset: Dataset, element: DataElement, code: str) -> bool:
        if "X" in code:
            del dataset[element.tag]
            return True
        return False if "D" in code else self._empty(element)

    def _empty(self, element: DataElement) -> bool:
        element.value = [] if element.VR == "SQ" else None
        return True

    def _dummy(self, dataset: Dataset, element: DataElement) -> bool:
        """D: a value of the right VR, the same for the same original (two plans keep two labels)."""
        if element.VR in NUMERIC_TEXT:
            element.value = NUMERIC_TEXT[element.VR]
        elif element.VR in annex_e.TEXT_VRS or element.VR == "CS":
            digest = self.key.digest("dummy", str(element.value))
            element.value = base64.b32encode(digest).decode()[:8]
        else:
            del dataset[element.tag]
        return True

    def clean(self, value: object) -> object:
        """A descriptor with the patient's identifiers taken out and UIDs in its text replaced like all others."""
        if isinstance(value, MultiValue):
            return [self.clean(v) for v in value]
        text = str(value) if value is not None else ""
        for ident in self.patient.identifiers:
            text = re.sub(re.escape(ident), "", text, flags=re.IGNORECASE)
        text = _UID_IN_TEXT.sub(lambda m: self.uids.new_uid(m.group(0)), text)
        return re.sub(r"\s{2,}", " ", text).strip() if text != str(value) else value

    def describe_actions(self) -> Iterator[str]:
        yield f"Profile {self.profile.name}: {'; '.join(self.profile.options())}"


def _known(tag: BaseTag) -> bool:
    try:
        dictionary_keyword(tag)
        return True
    except KeyError:
        return False


def tag_of(spec: str) -> int:
    """A config tag spec as an int; private ``xx`` blocks match block 0x10 here (see ``private_matches``)."""
    spec = spec.strip()
    if spec.startswith("(") or "," in spec:
        group, elem = spec.strip("()").split(",")
        return int(group, 16) << 16 | int(elem.strip().lower().replace("xx", "10"), 16)
    return int(Tag(spec))


def private_matches(tag: BaseTag, specs: tuple[str, ...]) -> bool:
    """``(0019,xx10)`` matches (0019,1010), (0019,1110)…: private blocks move between files, their offsets do not."""
    for spec in specs:
        group, elem = spec.strip().strip("()").split(",")
        elem = elem.strip().lower()
        if int(group, 16) != tag.group:
            continue
        if elem.startswith("xx") and int(elem[2:], 16) == tag.element & 0xFF and tag.element > 0xFF:
            return True
        if "xx" not in elem and int(elem, 16) == tag.element:
            return True
    return False
