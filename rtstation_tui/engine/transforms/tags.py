"""Tag edits on the way out: ``set:TAG=TEMPLATE``, ``add:TAG=TEMPLATE``, ``remove:TAG``, ``label:normalize`` and
``label:TEMPLATE`` (the RT plan label renamed).

Why these semantics:
- ``set`` changes an element where an object has it, so ``set:RTPlanLabel={label|upper}`` renames the plan and
  never gives CT slices a plan label; ``add`` also adds it where it is missing (e.g. InstitutionName).
- Templates take values from the object itself (``{RTPlanLabel}``, ``{label|upper}``, ``{PatientID|first:8}``), so
  one rule serves every plan. A value the object lacks, or a result its VR cannot hold (an SH of 17 characters),
  refuses the whole bundle with the object and the reason: the job fails, nothing half-edited goes out.
- None of them changes identity: UIDs cannot be named (the config check refuses them), so every reference holds.
"""

from __future__ import annotations

import copy
import re
from typing import Sequence

from pydicom.dataset import Dataset
from pydicom.valuerep import validate_value

from ..config.transforms import ALIASES, split_spec, tag_number, tag_vr
from .base import TransformError

_FIELD = re.compile(r"\{([^{}]*)\}")


def _who(ds: Dataset) -> str:
    return f"{ds.get('Modality', '?')} {ds.get('SOPInstanceUID', '?')}"


def _value(ds: Dataset, name: str) -> str | None:
    for keyword in ALIASES.get(name, (name,)):
        if keyword == "TreatmentMachineName":
            beams = ds.get("BeamSequence") or ds.get("IonBeamSequence") or []
            names = [str(b.get("TreatmentMachineName", "") or "") for b in beams]
            if any(names):
                return next(n for n in names if n)
        elif keyword in ds and ds[keyword].value not in (None, ""):
            return str(ds[keyword].value)
    return None


def _filtered(value: str, filters: list[str]) -> str:
    for f in filters:
        if f == "upper":
            value = value.upper()
        elif f == "lower":
            value = value.lower()
        elif f == "strip":
            value = value.strip()
        elif f == "slug":
            value = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9]", "_", value)).strip("_")
        elif f.startswith("first:"):
            value = value[: int(f[6:])]
    return value


def render(template: str, ds: Dataset) -> str:
    """The template with the object's values; TransformError when one is missing."""
    def one(m: re.Match[str]) -> str:
        name, *filters = [p.strip() for p in m.group(1).split("|")]
        value = _value(ds, name)
        if value is None:
            raise TransformError(f"{_who(ds)} has no {name} for {{{m.group(1)}}}")
        return _filtered(value, filters)

    return _FIELD.sub(one, template)


def normalized_label(label: str) -> str:
    """Upper case, runs of anything but A-Z 0-9 . - _ as one ``_``, at most 16 characters (RTPlanLabel is SH)."""
    return re.sub(r"[^A-Z0-9.\-_]+", "_", label.upper().strip()).strip("_")[:16]


class TagEdit:
    """``set`` / ``add`` / ``remove`` of one top-level element, and ``label:`` (set on RTPlanLabel)."""

    changes_identity = False

    def __init__(self, spec: str) -> None:
        self.name = spec.strip()
        kind, arg = split_spec(spec)
        self.normalize = kind == "label" and arg == "normalize"
        if kind == "label":
            kind, arg = "set", "RTPlanLabel=" + ("{RTPlanLabel}" if self.normalize else arg)
        tag_text, _, self.template = arg.partition("=")
        tag = tag_number(tag_text)
        if tag is None:
            raise TransformError(f"{spec!r}: {tag_text!r} is not a DICOM keyword or (gggg,eeee) tag")
        self.kind, self.tag, self.tag_text, self.vr = kind, tag, tag_text.strip(), tag_vr(tag)

    @property
    def config(self) -> tuple[str, int, str]:
        return self.kind, self.tag, self.template

    def describe(self) -> str:
        if self.kind == "remove":
            return f"{self.name}: {self.tag_text} removed from every object"
        if self.normalize:
            return f"{self.name}: RTPlanLabel in upper case, A-Z 0-9 . - _ only, at most 16 characters"
        where = "in every object" if self.kind == "add" else "where an object has it"
        return f"{self.name}: {self.tag_text} = {self.template!r} {where}"

    def apply(self, objects: Sequence[Dataset]) -> list[Dataset]:
        out = [copy.deepcopy(ds) for ds in objects]
        for ds in out:
            if self.kind == "remove":
                if self.tag in ds:
                    del ds[self.tag]
            elif self.tag in ds or self.kind == "add":
                self._set(ds)
        return out

    def _set(self, ds: Dataset) -> None:
        value = render(self.template, ds)
        if self.normalize:
            value = normalized_label(value)
        vr = ds[self.tag].VR if self.tag in ds else self.vr
        try:
            validate_value(vr, value, 2)  # 2: raise (pydicom's config.RAISE)
        except ValueError as exc:
            raise TransformError(f"{self.name}: {_who(ds)}: {value!r} does not fit {self.tag_text} ({vr}): "
                                 f"{exc}") from None
        if self.tag in ds:
            ds[self.tag].value = value
        else:
            ds.add_new(self.tag, vr, value)
