"""Frozen engine dataclasses ⇄ JSON, generically (never one function per type).

Why generic: every result of ``StationAPI`` and every event is a frozen dataclass of strings, numbers, tuples and
nested dataclasses (see engine/api.py). ``to_json`` walks any of them; ``from_json`` rebuilds one from its type
hints, so a client on the other side of the socket gets the same typed objects the in-process station returns.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import lru_cache
from pathlib import Path
from typing import Any, Union


def to_json(obj: Any) -> Any:
    """Plain JSON data for ``obj``: dataclasses become objects (their fields), tuples lists, paths strings."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name.rstrip("_"): to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_json(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


def event_json(event: Any) -> dict[str, Any]:
    """An engine event as JSON, its class name under ``type`` (events.py names each kind by its class)."""
    return {"type": type(event).__name__, **to_json(event)}


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_json(tp: Any, data: Any) -> Any:
    """Rebuild a value of type ``tp`` (a dataclass, tuple[...], list[...], X | None, Path, a scalar) from JSON."""
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = _hints(tp)
        given = {f.name: data[f.name.rstrip("_")] for f in dataclasses.fields(tp) if f.name.rstrip("_") in data}
        return tp(**{name: from_json(hints[name], value) for name, value in given.items()})
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if data is None:
            return None
        return from_json(next(a for a in args if a is not type(None)), data)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_json(args[0], v) for v in data)
        return tuple(from_json(a, v) for a, v in zip(args, data))
    if origin is list:
        return [from_json(args[0], v) for v in data]
    if origin is dict:
        return {k: from_json(args[1], v) for k, v in data.items()}
    if tp is Path:
        return Path(data)
    if tp is float and isinstance(data, int):
        return float(data)
    return data
