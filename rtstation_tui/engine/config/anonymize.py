"""``[anonymize]`` and ``[anonymize.profiles.NAME]``: de-identification profiles, the project key and the UID root.

Why a section of its own: the profiles name PS3.15 Annex E options an auditor must be able to read back from the
file, and the key decides every replacement UID (same key, same output: a plan sent again later lands on the same
anonymized study). Errors name the file, the key and what is allowed, like every other section.

    [anonymize]
    key_file = "/etc/rtstation/anonymize.key"   # default: data_dir/anonymize.key, created on first use
    uid_root = "1.2.826.0.1.3680043.10.999"     # default: "2.25." (UUID-derived UIDs, no registration needed)
    patient_id = "RESEARCH-{n:04d}"             # default: a hashed ID; {n} counts patients per key

    [anonymize.profiles.trial]
    base = "rt-research"                        # start from a built-in (or earlier) profile
    dates = "keep"                              # remove | shift | keep
    keep = ["StudyDescription"]
    remove = ["(300B,xx10)"]
    replace = { InstitutionName = "TRIAL SITE 7" }
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .checks import ConfigError, check_value
from .checks import setting as _c

DATE_CHOICES = ("remove", "shift", "keep")
_TAG = re.compile(r"^\(?([0-9A-Fa-f]{4}),\s*([0-9A-Fa-fXx]{4})\)?$")
_UID_ROOT = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*\.?$")
TAG_HELP = "a DICOM keyword (PatientAge) or a tag (0010,1010); private elements may use xx for the block: (0019,xx10)"


@dataclass(frozen=True)
class ProfileConfig:
    """One de-identification profile: the Basic Profile plus the options it retains, and per-tag overrides."""

    name: str = _c("basic")
    dates: str = _c("remove", choices=DATE_CHOICES)  # Retain Longitudinal Temporal Information: no / modified / full
    retain_patient_characteristics: bool = _c(False)
    retain_device_identity: bool = _c(False)
    clean_descriptors: bool = _c(False)
    retain_safe_private: tuple[str, ...] = _c(())  # private tags kept (everything else private is removed)
    keep: tuple[str, ...] = _c(())
    remove: tuple[str, ...] = _c(())
    replace: tuple[tuple[str, str], ...] = field(default=())
    allow_burned_in: bool = _c(False)
    patient_id: str = _c("")  # overrides [anonymize] patient_id for this profile
    patient_name: str = _c("")

    def options(self) -> list[str]:
        """The Annex E options in words, for DeidentificationMethod and the dry run."""
        out = ["Basic Application Confidentiality Profile"]
        if self.dates == "keep":
            out.append("Retain Longitudinal Temporal Information Full Dates")
        elif self.dates == "shift":
            out.append("Retain Longitudinal Temporal Information Modified Dates")
        if self.retain_patient_characteristics:
            out.append("Retain Patient Characteristics")
        if self.retain_device_identity:
            out.append("Retain Device Identity")
        if self.clean_descriptors:
            out.append("Clean Descriptors")
        if self.retain_safe_private:
            out.append("Retain Safe Private")
        return out


BUILTIN_PROFILES: dict[str, ProfileConfig] = {
    "basic": ProfileConfig(name="basic"),
    # ROI names, plan and structure set labels are what research on RT data reads: Clean Descriptors keeps them
    # with every identifier of the patient scrubbed out, instead of the Basic Profile's empty ROI names.
    "rt-research": ProfileConfig(name="rt-research", dates="shift", retain_patient_characteristics=True,
                                 retain_device_identity=True, clean_descriptors=True),
}


@dataclass(frozen=True)
class AnonymizeConfig:
    key: str | None = _c(None)  # the project key itself (prefer key_file: config files get copied around)
    key_file: Path | None = _c(None)  # None: data_dir/anonymize.key, created on first use
    uid_root: str = _c("2.25.")
    patient_id: str = _c("")  # "" → a hashed ID per patient (from the key); else a template with {n}
    patient_name: str = _c("")  # "" → the new patient ID; else a template with {n} and {id}
    default_profile: str = _c("rt-research")
    profiles: tuple[ProfileConfig, ...] = field(default=())

    def profile(self, name: str) -> ProfileConfig:
        """A configured profile, else a built-in one; ValueError lists what exists."""
        for p in self.profiles:
            if p.name == name:
                return p
        if name in BUILTIN_PROFILES:
            return BUILTIN_PROFILES[name]
        raise ValueError(f"unknown anonymize profile {name!r}; profiles: {', '.join(self.profile_names())}")

    def profile_names(self) -> list[str]:
        """Every profile, the default first (what the console offers first)."""
        names = sorted({*BUILTIN_PROFILES, *(p.name for p in self.profiles)})
        return sorted(names, key=lambda n: n != self.default_profile)


def parse_anonymize(table: Any, file: str) -> AnonymizeConfig:
    """``[anonymize]`` with its ``profiles`` sub-tables into an AnonymizeConfig (ConfigError naming the key)."""
    if not isinstance(table, dict):
        raise ConfigError(file, "anonymize", f"must be a table, got {table!r}")
    plain = {f.name: f for f in fields(AnonymizeConfig) if f.name != "profiles"}
    values: dict[str, Any] = {}
    profiles: list[ProfileConfig] = []
    for key, raw in table.items():
        if key == "profiles":
            if not isinstance(raw, dict):
                raise ConfigError(file, "anonymize.profiles", "must be tables: [anonymize.profiles.NAME]")
            for name, body in raw.items():
                profiles.append(_profile(name, body, {p.name: p for p in profiles}, file))
            continue
        f = plain.get(key)
        if f is None:
            raise ConfigError.unknown_key(file, "anonymize", key, sorted([*plain, "profiles"]))
        values[key] = check_value(raw, f, f"anonymize.{key}", file)
    config = AnonymizeConfig(**values, profiles=tuple(profiles))
    _check_section(config, file)
    return config


def _check_section(config: AnonymizeConfig, file: str) -> None:
    if config.key is not None and config.key_file is not None:
        raise ConfigError(file, "anonymize.key", "set either key or key_file, not both")
    if config.key is not None and len(config.key) < 16:
        raise ConfigError(file, "anonymize.key", "too short: use at least 16 characters (better: key_file)")
    if not _UID_ROOT.match(config.uid_root) or len(config.uid_root.rstrip(".")) > 32:
        raise ConfigError(file, "anonymize.uid_root", f"{config.uid_root!r} is not allowed: expected a UID root of "
                          "digits and dots without leading zeros, at most 32 characters (e.g. 2.25. or your "
                          "organisation's registered root)")
    for key in ("patient_id", "patient_name"):
        _check_template(getattr(config, key), f"anonymize.{key}", file)
    try:
        config.profile(config.default_profile)
    except ValueError as exc:
        raise ConfigError(file, "anonymize.default_profile", str(exc)) from None


def _profile(name: str, body: Any, earlier: dict[str, ProfileConfig], file: str) -> ProfileConfig:
    where = f"anonymize.profiles.{name}"
    if not isinstance(body, dict):
        raise ConfigError(file, where, f"must be a table, got {body!r}")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", name):
        raise ConfigError(file, where, "profile names are letters, digits, '.', '_' or '-' (at most 40)")
    body = dict(body)
    base_name = body.pop("base", "basic")
    base = earlier.get(base_name) or BUILTIN_PROFILES.get(base_name)
    if base is None:
        allowed = ", ".join(sorted({*BUILTIN_PROFILES, *earlier}))
        raise ConfigError(file, f"{where}.base", f"{base_name!r} is not allowed: choose one of {allowed} "
                          "(profiles defined above this one)")
    known = {f.name: f for f in fields(ProfileConfig) if f.name != "name"}
    values: dict[str, Any] = {}
    for key, raw in body.items():
        f = known.get(key)
        if f is None:
            raise ConfigError.unknown_key(file, where, key, sorted([*known, "base"]))
        if key == "replace":
            values[key] = _replacements(raw, f"{where}.replace", file)
        else:
            values[key] = check_value(raw, f, f"{where}.{key}", file)
    for key in ("keep", "remove", "retain_safe_private"):
        for i, spec in enumerate(values.get(key, ())):
            if tag_problem(spec):
                raise ConfigError(file, f"{where}.{key}[{i}]", f"{spec!r} is not allowed: expected {TAG_HELP}")
    for key in ("patient_id", "patient_name"):
        _check_template(values.get(key, ""), f"{where}.{key}", file)
    return replace(base, name=name, **values)


def _replacements(raw: Any, where: str, file: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, dict):
        raise ConfigError(file, where, f"{raw!r} is not allowed: expected a table such as "
                          "{ InstitutionName = \"SITE 7\" }")
    out = []
    for tag, value in raw.items():
        if tag_problem(tag):
            raise ConfigError(file, f"{where}.{tag}", f"{tag!r} is not allowed: expected {TAG_HELP}")
        if not isinstance(value, str):
            raise ConfigError(file, f"{where}.{tag}", f"{value!r} is not allowed: expected a string")
        out.append((tag, value))
    return tuple(out)


def tag_problem(spec: str) -> str | None:
    """None when ``spec`` names an element (keyword, (gggg,eeee), private (gggg,xxee)); else what is wrong."""
    from pydicom.datadict import tag_for_keyword

    if _TAG.match(spec.strip()):
        return None
    return None if tag_for_keyword(spec.strip()) is not None else "unknown keyword"


def _check_template(template: str, key: str, file: str) -> None:
    if not template:
        return
    try:
        value = template.format(n=1, id="ID")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(file, key, f"{template!r} is not allowed: a template may use {{n}} (the patient's number, "
                          f"e.g. {{n:04d}}) and {{id}} only ({exc})") from None
    if template.format(n=1, id="ID") == template.format(n=2, id="ID") and "{id}" not in template:
        raise ConfigError(file, key, f"{template!r} is not allowed: it gives every patient the same value; "
                          "use {n}, e.g. RESEARCH-{n:04d}")
    if len(value) > 64:
        raise ConfigError(file, key, f"{template!r} gives values longer than 64 characters")
