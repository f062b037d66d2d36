"""Checks for single configuration values, driven by dataclass field metadata.

Metadata keys understood by ``check_value``: ``min``/``max`` (numbers), ``choices`` (strings), ``upper``
(normalise to upper case before checking choices), ``kind`` (``ae``: DICOM AE title; ``host``; ``acl``: allowlist
entries; ``retry``: retry schedule). Types come from the dataclass annotations (as strings, because the modules use
``from __future__ import annotations``).
"""

from __future__ import annotations

import difflib
from dataclasses import MISSING, Field, field
from pathlib import Path
from typing import Any

from ..dicom.aetitle import ae_title_problem

def display_key(key: str) -> str:
    """``station.port`` → ``[station] port`` (as it looks in the file); array entries stay ``nodes[0].host``."""
    section, dot, rest = key.partition(".")
    if "[" in section:
        return key
    return f"[{section}] {rest}" if dot else f"[{section}]"


def setting(default: Any = MISSING, **meta: Any) -> Any:
    """A dataclass field carrying validation metadata for ``check_value``."""
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for defaults")
    return field(default=default, metadata=meta)


class ConfigError(ValueError):
    """A configuration problem: which file, which key, what is wrong and what is allowed."""

    def __init__(self, file: str, key: str, message: str) -> None:
        self.file = file
        self.key = key
        self.message = message
        super().__init__(f"{file}: {display_key(key)}: {message}" if key else f"{file}: {message}")

    @classmethod
    def unknown_key(cls, file: str, where: str, key: str, allowed: list[str]) -> ConfigError:
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        full = f"{where}.{key}" if where else key
        return cls(file, full, f"unknown key{hint}; allowed here: {', '.join(allowed)}")


def check_value(raw: Any, f: Field, key: str, file: str) -> Any:
    """Return ``raw`` converted to the field's type, or raise ConfigError naming ``key``."""
    meta = f.metadata
    typ = str(f.type).replace(" ", "")
    optional = typ.endswith("|None")
    base = typ.removesuffix("|None")
    if optional and raw == "":
        return None
    if base == "bool":
        if not isinstance(raw, bool):
            raise ConfigError(file, key, f"{raw!r} is not allowed: use true or false")
        return raw
    if base in ("int", "float"):
        return _number(raw, base, meta, key, file)
    if base == "Path":
        if not isinstance(raw, str) or not raw:
            raise ConfigError(file, key, f"{raw!r} is not allowed: expected a path as a non-empty string")
        return Path(raw)
    if base == "str":
        return _string(raw, meta, key, file)
    if base == "tuple[str,...]":
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list):
            raise ConfigError(file, key, f"{raw!r} is not allowed: expected a list of strings")
        return tuple(_string(item, meta, f"{key}[{i}]", file) for i, item in enumerate(raw))
    if base == "tuple[tuple[str,str],...]":  # a TOML table of strings, kept in file order
        if not isinstance(raw, dict):
            raise ConfigError(file, key, f"{raw!r} is not allowed: expected a table, e.g. {{ \"A\" = \"B\" }}")
        return tuple((str(k), _string(v, meta, f"{key}.{k}", file)) for k, v in raw.items())
    raise TypeError(f"no checker for field type {typ}")  # a programming error, not a user's


def _number(raw: Any, base: str, meta: Any, key: str, file: str) -> int | float:
    ok = isinstance(raw, int) and not isinstance(raw, bool)
    if base == "float":
        ok = ok or isinstance(raw, float)
    if not ok:
        kind = "an integer" if base == "int" else "a number"
        raise ConfigError(file, key, f"{raw!r} is not allowed: expected {kind}{_range(meta)}")
    lo, hi = meta.get("min"), meta.get("max")
    if (lo is not None and raw < lo) or (hi is not None and raw > hi):
        raise ConfigError(file, key, f"{raw!r} is out of range: allowed{_range(meta)}")
    return float(raw) if base == "float" else raw


def _range(meta: Any) -> str:
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and hi is not None:
        return f" from {lo} to {hi}"
    if lo is not None:
        return f" of at least {lo}"
    return ""


def _string(raw: Any, meta: Any, key: str, file: str) -> str:
    if not isinstance(raw, str):
        raise ConfigError(file, key, f"{raw!r} is not allowed: expected a string")
    value = raw.upper() if meta.get("upper") else raw
    choices = meta.get("choices")
    if choices and value not in choices:
        raise ConfigError(file, key, f"{raw!r} is not allowed: choose one of {', '.join(choices)}")
    kind = meta.get("kind")
    problem = None
    if kind == "ae":
        problem = ae_title_problem(value)
    elif kind == "name":
        problem = None if value.strip() and value.isprintable() and len(value) <= 64 else (
            "expected a non-empty printable name of at most 64 characters")
    elif kind == "host":
        problem = None if value.strip() and " " not in value else "expected a host name or IP address"
    elif kind == "acl":
        from .acl import parse_acl_entry

        try:
            parse_acl_entry(value)
        except ValueError as exc:
            problem = str(exc)
    elif kind == "retry":
        from .retry import parse_schedule

        try:
            parse_schedule(value)
        except ValueError as exc:
            problem = str(exc)
    if problem:
        raise ConfigError(file, key, f"{raw!r} is not allowed: {problem}")
    return value
