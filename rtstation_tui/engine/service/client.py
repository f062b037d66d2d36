"""Talking to a running station's control API over its Unix socket (aiohttp client): what the CLI uses to act on
the live station, and what an attached console builds on.

Why "answers" and not "socket exists": a station that crashed leaves its socket file behind; only a status reply
proves that a process serves the data_dir now.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

PROBE_TIMEOUT_S = 2.0
CALL_TIMEOUT_S = 120.0  # a C-ECHO to a dead node, a send of a big bundle's rows


class ApiCallError(Exception):
    """The station answered with an error (``status``: 400, 404, 409, 503 …), or could not be reached (0)."""

    def __init__(self, status: int, message: str, field: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


class ApiClient:
    def __init__(self, socket_path: Path) -> None:
        self.socket_path = Path(socket_path)

    def session(self, timeout: float | None = CALL_TIMEOUT_S) -> aiohttp.ClientSession:
        """None: no time limit (the event stream)."""
        return aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(self.socket_path)),
                                     timeout=aiohttp.ClientTimeout(total=timeout))

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None, *,
                   timeout: float = CALL_TIMEOUT_S) -> Any:
        """One request; the JSON answer, or ApiCallError with the station's message and status."""
        try:
            async with self.session(timeout) as s, s.request(method, f"http://station{path}", json=body) as r:
                text = await r.text()
                data = json.loads(text) if text else None
                if r.status >= 400:
                    err = data if isinstance(data, dict) else {}
                    raise ApiCallError(r.status, str(err.get("error") or text), str(err.get("field") or ""))
                return data
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise ApiCallError(0, f"the station at {self.socket_path} did not answer: {exc or type(exc).__name__}"
                               ) from None

    def call_sync(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return asyncio.run(self.call(method, path, body))

    async def status(self) -> dict[str, Any] | None:
        """The station's status if one answers on the socket within PROBE_TIMEOUT_S, else None."""
        if not self.socket_path.exists():
            return None
        try:
            data = await self.call("GET", "/api/v1/status", timeout=PROBE_TIMEOUT_S)
        except ApiCallError:
            return None
        return data if isinstance(data, dict) else None


def live_station(socket_path: Path) -> tuple[ApiClient, dict[str, Any]] | None:
    """(client, status) when a station answers on ``socket_path``; None when none does (work offline)."""
    client = ApiClient(socket_path)
    status = asyncio.run(client.status())
    return (client, status) if status is not None else None
