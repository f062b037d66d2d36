"""Transform specs as rules, nodes, jobs and the command line write them, checked without side effects.

Why here (below ``transforms/``): the config loader must reject ``set:PatientNam=X`` or ``anonymize:nope`` with
file and key when the file is read, and the config layer may not import the transforms (they import the config).
Building a spec into a working transform (keys, mapping tables) is ``transforms/registry.py``.

A *chain* is stored on a queued job as one string: a single spec as itself (the form jobs had before chains), two
or more as a JSON list. Not ``|``-joined: templates use ``|`` for filters (``{label|upper}``).
"""

from __future__ import annotations

import json
import re
from typing import Sequence

KINDS = ("anonymize", "overlay", "seg", "classic", "set", "add", "remove", "label", "machine_map", "plugin")
SPEC_HELP = ("anonymize[:PROFILE], overlay[:ROI,...], seg[:ROI,...], classic, set:TAG=TEMPLATE, add:TAG=TEMPLATE, remove:TAG, "
             "label:normalize, label:TEMPLATE, machine_map:{json}, plugin:NAME")
# transforms that read the whole bundle (a structure set and its images), not each object alone: their jobs hold
# every stored instance of the bundle, those the node already has as read-only ``input`` rows
BUNDLE_WIDE = ("overlay", "seg")
FILTERS = ("upper", "lower", "strip", "slug")
ALIASES = {"label": ("RTPlanLabel", "StructureSetLabel"), "patient_id": ("PatientID",),
           "patient_name": ("PatientName",), "plan_name": ("RTPlanName",), "modality": ("Modality",),
           "machine": ("TreatmentMachineName",)}
_FIELD = re.compile(r"\{([^{}]*)\}")
_TAG = re.compile(r"^\(?\s*([0-9A-Fa-f]{4})\s*,\s*([0-9A-Fa-f]{4})\s*\)?$")
_FIRST = re.compile(r"^first:(\d{1,3})$")
# UIDs are identity: only the anonymizer changes them (and every reference with them, consistently)
_IDENTITY_HELP = "UIDs are identity; change them with anonymize:PROFILE, which remaps every reference"


def encode_chain(specs: Sequence[str]) -> str:
    """The job's ``transform`` column for this chain ('' = the stored files)."""
    specs = [s.strip() for s in specs if s.strip()]
    if not specs:
        return ""
    return specs[0] if len(specs) == 1 else json.dumps(specs)


def decode_chain(stored: str) -> list[str]:
    """``encode_chain`` reversed; a value from before chains (one spec) is a chain of one."""
    stored = (stored or "").strip()
    if not stored:
        return []
    if stored.startswith("["):
        value = json.loads(stored)
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise ValueError(f"not a transform chain: {stored!r}")
        return value
    return [stored]


def join_chains(*chains: str) -> str:
    """Chains one after the other (the rule's or the command line's first, then the node's)."""
    return encode_chain([s for c in chains for s in decode_chain(c)])


def reads_bundle(stored: str) -> bool:
    """Whether a step of the chain needs the whole bundle (``BUNDLE_WIDE``), e.g. ``seg`` the RTSTRUCT and images."""
    return any(split_spec(s)[0] in BUNDLE_WIDE for s in decode_chain(stored))


def chain_problem(specs: Sequence[str]) -> str | None:
    """What is wrong with the chain as a whole; None when its steps can follow each other. ``seg`` with
    ``overlay``: the overlay copies of the images have new UIDs, so a SEG made before them would point at images
    the peer never gets, and one made after them finds none of the images its structure set names."""
    kinds = [split_spec(s)[0] for s in specs]
    if "seg" in kinds and "overlay" in kinds:
        return ("seg and overlay in one chain: the SEG would point at images the node does not get (the overlay "
                "copies have new UIDs); send them to two nodes, one chain each")
    return None


def describe_chain(stored: str) -> str:
    """``anonymize:research, then set:RTPlanLabel={label|upper}`` for listings."""
    return ", then ".join(decode_chain(stored))


def split_spec(spec: str) -> tuple[str, str]:
    kind, _, arg = spec.strip().partition(":")
    return kind.strip(), arg


def tag_number(spec: str) -> int | None:
    """A keyword or ``(gggg,eeee)`` as a tag number; None if it names nothing."""
    from pydicom.datadict import tag_for_keyword

    m = _TAG.match(spec.strip())
    if m:
        return int(m.group(1) + m.group(2), 16)
    return tag_for_keyword(spec.strip())


def tag_vr(tag: int) -> str:
    from pydicom.datadict import dictionary_VR

    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return ""  # private or unknown: the element's own VR is used


def template_problem(template: str) -> str | None:
    """``{field|filter|...}``: field a keyword of the object or an alias; None when it is well formed."""
    from pydicom.datadict import tag_for_keyword

    for m in _FIELD.finditer(template):
        name, *filters = [p.strip() for p in m.group(1).split("|")]
        if name not in ALIASES and tag_for_keyword(name) is None:
            return (f"{{{m.group(1)}}}: {name!r} is neither a DICOM keyword nor one of "
                    f"{', '.join(sorted(ALIASES))}")
        for f in filters:
            if f not in FILTERS and not _FIRST.match(f):
                return f"{{{m.group(1)}}}: unknown filter {f!r}; filters: {', '.join(FILTERS)}, first:N"
    rest = _FIELD.sub("", template)
    if "{" in rest or "}" in rest:
        return f"{template!r}: unbalanced braces"
    return None


def _tag_edit_problem(kind: str, arg: str) -> str | None:
    tag_text, eq, template = arg.partition("=")
    if kind in ("set", "add") and not eq:
        return f"{kind}:TAG=TEMPLATE needs '=' (e.g. set:RTPlanLabel={{label|upper}})"
    tag = tag_number(tag_text)
    if tag is None:
        return f"{tag_text.strip()!r} is not a DICOM keyword or (gggg,eeee) tag"
    if tag >> 16 == 0x0002:
        return f"{tag_text.strip()}: file meta elements are written by the sender, not edited"
    vr = tag_vr(tag)
    if vr == "UI":
        return f"{tag_text.strip()}: {_IDENTITY_HELP}"
    if vr == "SQ" and kind != "remove":
        return f"{tag_text.strip()} is a sequence: only remove:TAG applies to it"
    if kind == "add" and not vr:
        return f"{tag_text.strip()}: add needs a tag of the DICOM dictionary (its VR); set changes existing ones"
    return template_problem(template) if kind != "remove" else None


def machine_map_problem(arg: str) -> str | None:
    try:
        value = json.loads(arg)
    except ValueError as exc:
        return f"machine_map:{{json}} expected ({exc})"
    if not isinstance(value, dict) or set(value) - {"map", "default"}:
        return 'machine_map:{"map": {...}, "default": {...}} expected'
    for part in value.values():
        if not isinstance(part, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in part.items()):
            return "machine_map: map and default must be tables of names"
        for v in part.values():
            if not v.strip() or len(v) > 16 or "\\" in v:
                return f"{v!r} is not a treatment machine name (1 to 16 characters, SH, no backslash)"
    return None


def spec_problem(spec: str, profiles: Sequence[str] = (), plugins: Sequence[str] | None = None) -> str | None:
    """What is wrong with one spec, in words naming what is allowed; None when it can be built.
    ``profiles``: the anonymize profiles that exist; ``plugins``: installed plug-in names (None: not checked)."""
    kind, arg = split_spec(spec)
    if kind not in KINDS:
        return f"unknown transform {spec!r}: use {SPEC_HELP}"
    if kind == "anonymize" and arg and profiles and arg not in profiles:
        return f"unknown anonymize profile {arg!r}; profiles: {', '.join(profiles)}"
    if kind in ("set", "add", "remove"):
        return _tag_edit_problem(kind, arg)
    if kind == "classic" and arg:
        return f"classic takes no argument (got {spec!r}): it splits every Enhanced MR/CT/PET image it is given"
    if kind == "label":
        if not arg:
            return "label:normalize or label:TEMPLATE (e.g. label:{label|upper})"
        return None if arg == "normalize" else template_problem(arg)
    if kind == "machine_map":
        return machine_map_problem(arg)
    if kind == "plugin":
        if not arg:
            return "plugin:NAME (an entry point of group rtstation.transforms)"
        if plugins is not None and arg not in plugins:
            return f"no plug-in transform {arg!r} is installed; installed: {', '.join(plugins) or 'none'}"
    return None


def machine_map_spec(mapping: Sequence[tuple[str, str]], defaults: Sequence[tuple[str, str]]) -> str:
    """A node's ``machine_map`` / ``default_machine`` as one spec ('' when the node has neither)."""
    if not mapping and not defaults:
        return ""
    return "machine_map:" + json.dumps({"map": dict(mapping), "default": dict(defaults)}, sort_keys=True)


def check_chains(file: str, rules: Sequence, nodes: Sequence, profiles: Sequence[str]) -> None:
    """Every ``transforms`` of rules and nodes, and every node's machine names: ConfigError at load time."""
    from .checks import ConfigError

    for what, entries in (("rules", rules), ("nodes", nodes)):
        for i, entry in enumerate(entries):
            for j, spec in enumerate(entry.transforms):
                problem = spec_problem(spec, profiles)
                if problem:
                    raise ConfigError(file, f"{what}[{i}] ({entry.name!r}).transforms[{j}]", problem)
            problem = chain_problem(entry.transforms)
            if problem:
                raise ConfigError(file, f"{what}[{i}] ({entry.name!r}).transforms", problem)
    for i, node in enumerate(nodes):
        for key in ("machine_map", "default_machine"):
            for old, new in getattr(node, key):
                if not new.strip() or len(new) > 16 or "\\" in new:
                    raise ConfigError(file, f"nodes[{i}] ({node.name!r}).{key}.{old}",
                                      f"{new!r} is not allowed: a treatment machine name has 1 to 16 characters "
                                      "(VR SH) and no backslash")
