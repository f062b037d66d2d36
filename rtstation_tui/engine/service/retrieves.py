"""The [QR] resources of ``/api/v1`` the console's Remote screen uses: a node's plans of one patient (C-FIND, in a
worker thread: it waits on the network) and starting a retrieve that runs inside the station (its progress comes
on the event stream as ``RetrieveProgress``/``RetrieveFinished``).

Errors: 400 naming the field, 404 an unknown node, 409 the same patient being retrieved from that node already,
502 the node refused or did not answer (the message says which).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from ..qr.pull import RemoteUnavailable
from .http import ApiError, body, field_list, field_str, reply
from .jsonable import to_json
from .routes import V1


class Retrieves:
    def __init__(self, station: Any) -> None:
        self.station = station

    def add_to(self, app: web.Application) -> None:
        app.router.add_get(f"{V1}/nodes/{{node}}/remote-plans", self.remote_plans)
        app.router.add_post(f"{V1}/retrieve", self.retrieve)

    def _node(self, name: str) -> str:
        if self.station.config.node(name) is None:
            known = ", ".join(n.name for n in self.station.config.nodes) or "none"
            raise ApiError(404, f"no node {name!r}; configured: {known}", "node")
        return name

    async def remote_plans(self, request: web.Request) -> web.Response:
        """``?patient=ID``: the node's plans of that patient (label, approval, date, machine, objects)."""
        node = self._node(request.match_info["node"])
        patient = request.query.get("patient", "").strip()
        if not patient:
            raise ApiError(400, "patient: the PatientID to look for on the node", "patient")
        try:
            rows = await asyncio.to_thread(self.station.remote_plans, node, patient)
        except RemoteUnavailable as exc:
            raise ApiError(502, str(exc)) from None
        return reply(to_json(rows))

    async def retrieve(self, request: web.Request) -> web.Response:
        """``{"node": NAME, "patient": ID, "plans"?: [SOP Instance UID]}`` → 202 ``{"retrieve_id": N}``."""
        data = await body(request)
        node = self._node(field_str(data, "node", required=True) or "")
        patient = (field_str(data, "patient", required=True) or "").strip()
        plans = field_list(data, "plans") or []
        try:
            rid = await asyncio.to_thread(self.station.retrieve, node, patient, plans)
        except RemoteUnavailable as exc:
            raise ApiError(409, str(exc)) from None
        return reply({"retrieve_id": rid}, 202)
