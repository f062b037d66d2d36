"""``/api/v1/selection/…``: a send of a tree node that is not a plan ([HARDEN2] 19), as the console makes it.

Why apart from ``POST /send`` (which also takes ``series``/``study``/``patient``/``sop``): the console sends a
``Selection`` (the unconnected bin is a list of objects with a name) to several nodes at once, each with its own
transform, and first shows what it carries — the same two calls ``StationAPI`` has, so an attached console works
as one running the station.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from ..plans.selection import Selection
from .http import ApiError, body, field_bool, field_list, reply
from .jsonable import from_json
from .routes import V1


class Selections:
    def __init__(self, station: Any) -> None:
        self.station = station

    def add_to(self, app: web.Application) -> None:
        app.router.add_post(f"{V1}/selection/preview", self.preview)
        app.router.add_post(f"{V1}/selection/send", self.send)

    @staticmethod
    def _selection(data: dict[str, Any]) -> Selection:
        raw = data.get("selection")
        if not isinstance(raw, dict) or not isinstance(raw.get("level"), str):
            raise ApiError(400, "selection: must be an object with a level (patient, study, series, objects)",
                           "selection")
        try:
            return from_json(Selection, raw)  # type: ignore[no-any-return]
        except (TypeError, KeyError, ValueError) as exc:
            raise ApiError(400, f"selection: {exc}", "selection") from None

    async def preview(self, request: web.Request) -> web.Response:
        """``{"selection": {...}}`` → what a send of it carries (404 when nothing of it is stored)."""
        selection = self._selection(await body(request))
        try:
            found = await asyncio.to_thread(self.station.selection_preview, selection)
        except ValueError as exc:  # an unknown level
            raise ApiError(400, str(exc), "selection") from None
        if found is None:
            raise ApiError(404, f"nothing stored under {selection.what or selection.level + ' ' + selection.uid}")
        return reply(found)

    async def send(self, request: web.Request) -> web.Response:
        """``{"selection", "to": [NODE], "transforms"?: {NODE: SPEC}, "force"?: bool}`` → ``{"jobs": [ids]}``."""
        data = await body(request)
        selection = self._selection(data)
        to = field_list(data, "to", required=True) or []
        transforms = data.get("transforms") or {}
        if not isinstance(transforms, dict) or not all(isinstance(v, str) for v in transforms.values()):
            raise ApiError(400, "transforms: must map node names to transform specs", "transforms")
        why = self.station.status().send_unavailable
        if why:
            raise ApiError(503, why)
        try:
            jobs = await asyncio.to_thread(self.station.send_selection, selection, to, transforms,
                                           field_bool(data, "force"))
        except ValueError as exc:  # an unknown or disabled node or transform, nothing stored under it
            raise ApiError(400, str(exc), "to" if "node" in str(exc) else "selection") from None
        return reply({"jobs": jobs}, 201)
