"""``POST /api/v1/config/edit``: the editors' edits (a key, a node, a rule) made to the station's own file through
``ConfigFile`` (comments kept, validated by the normal loader, written atomically with a ``.bak``), then applied
with the station's own re-read (its file and command-line overrides), as SIGHUP would.

Why paths are refused: a key naming a file or directory (data_dir, log dir, import folder, TLS files, the socket)
would let a caller point the station at files outside its store — reading them (import), or writing there (logs).
Those are edited in the file by whoever owns it. A refused edit changes nothing: an invalid one is never written,
one the station cannot apply is rolled back.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

from aiohttp import web

from ..config.checks import ConfigError
from ..config.model import SECTIONS
from ..config.reload import ReloadError
from ..config.tomlfile import ConfigFile
from .http import ApiError, body, reply

ARRAYS = ("nodes", "rules")


def _path_keys() -> set[str]:
    out = set()
    for section, (_attr, cls) in SECTIONS.items():
        out |= {f"{section}.{f.name.rstrip('_')}" for f in fields(cls) if "Path" in str(f.type)}
    return out


PATH_KEYS = _path_keys()


def _need(op: dict[str, Any], name: str, kind: type, where: str) -> Any:
    value = op.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise ApiError(400, f"{where}.{name}: must be a {kind.__name__}, got {value!r}", f"{where}.{name}")
    return value


def apply_op(cf: ConfigFile, op: Any, where: str) -> None:
    """One edit, as the console's editors make it."""
    if not isinstance(op, dict):
        raise ApiError(400, f"{where}: must be an object with an 'op'", where)
    kind = op.get("op")
    if kind in ("set", "unset"):
        section, key = _need(op, "section", str, where), _need(op, "key", str, where)
        if f"{section}.{key}" in PATH_KEYS:
            raise ApiError(400, f"[{section}] {key} names a path: edit it in the file, not through the API",
                           f"{where}.key")
        if kind == "set":
            if "value" not in op:
                raise ApiError(400, f"{where}.value: is required", f"{where}.value")
            cf.set(section, key, op["value"])
        else:
            cf.unset(section, key)
        return
    if kind not in ("add_entry", "update_entry", "delete_entry", "move_entry"):
        raise ApiError(400, f"{where}.op: one of set, unset, add_entry, update_entry, delete_entry, move_entry;"
                            f" got {kind!r}", f"{where}.op")
    array = _need(op, "array", str, where)
    if array not in ARRAYS:
        raise ApiError(400, f"{where}.array: one of {', '.join(ARRAYS)}, got {array!r}", f"{where}.array")
    try:
        if kind == "add_entry":
            cf.add_entry(array, _need(op, "values", dict, where))
        elif kind == "update_entry":
            cf.update_entry(array, _need(op, "name", str, where), _need(op, "values", dict, where))
        elif kind == "delete_entry":
            cf.delete_entry(array, _need(op, "name", str, where))
        else:
            cf.move_entry(array, _need(op, "name", str, where), _need(op, "delta", int, where))
    except KeyError as exc:
        raise ApiError(404, str(exc).strip("'\""), f"{where}.name") from None


class ConfigEdits:
    def __init__(self, station: Any) -> None:
        self.station = station

    def add_to(self, app: web.Application, prefix: str) -> None:
        app.router.add_post(f"{prefix}/config/edit", self.edit)

    async def edit(self, request: web.Request) -> web.Response:
        """``{"edits": [{"op": "set", "section": "receiver", "key": "min_free_mb", "value": 100}, …]}``."""
        data = await body(request)
        edits = data.get("edits")
        if not isinstance(edits, list) or not edits:
            raise ApiError(400, "edits: must be a non-empty list of edits", "edits")
        path, reread = self.station.config.path, self.station.reread
        if path is None or reread is None:
            raise ApiError(409, "this station has no configuration file it re-reads on request")
        config, original = await asyncio.to_thread(_write, Path(path), edits, reread)
        try:
            changed = self.station.reload(config)  # on the loop, as SIGHUP's reload
        except ReloadError as exc:
            await asyncio.to_thread(_restore, Path(path), original)
            raise ApiError(409, f"not applied, the file is as it was: {exc}") from None
        return reply({"changed": changed})


def _write(path: Path, edits: list[Any], reread: Callable[[], Any]) -> tuple[Any, str]:
    """Apply and save the edits, then re-read as the station's owner does; (new config, the file's old text)."""
    cf = ConfigFile(path)
    original = cf.original
    for i, op in enumerate(edits):
        apply_op(cf, op, f"edits[{i}]")
    try:
        cf.save()  # validated by the loader first: an invalid edit is never written
    except ConfigError as exc:
        raise ApiError(400, str(exc), exc.key) from None
    try:
        return reread(), original
    except ConfigError as exc:  # valid alone, not with the station's command-line overrides
        _restore(path, original)
        raise ApiError(400, str(exc), exc.key) from None


def _restore(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
