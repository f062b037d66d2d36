"""Talking to a running station's control API over its Unix socket: what the CLI uses to act on the live station,
and what an attached console builds on.

Why the standard library's HTTP client for calls: the CLI probes the socket on every live command, and a console
calls from worker threads (and sometimes the loop); one blocking connection per call is safe from any thread and
costs no aiohttp import (0.15 s) for a command that finds no station. The event stream uses aiohttp (``session``).
Why "answers" and not "socket exists": a station that crashed leaves its socket file behind; only a status reply
proves that a process serves the data_dir now.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aiohttp

PROBE_TIMEOUT_S = 2.0
CALL_TIMEOUT_S = 120.0  # a C-ECHO to a dead node, a send of a big bundle's rows


class ApiCallError(Exception):
    """The station answered with an error (``status``: 400, 404, 409, 503 …), or could not be reached (0)."""

    def __init__(self, status: int, message: str, field: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("station", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.socket_path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


class ApiClient:
    def __init__(self, socket_path: Path) -> None:
        self.socket_path = Path(socket_path)

    def call_sync(self, method: str, path: str, body: Any = None, *, timeout: float = CALL_TIMEOUT_S) -> Any:
        """One request; the JSON answer, or ApiCallError with the station's message and status."""
        conn = _UnixConnection(self.socket_path, timeout)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=payload, headers={"Content-Type": "application/json"} if payload else {})
            resp = conn.getresponse()
            text = resp.read().decode()
        except (OSError, http.client.HTTPException) as exc:
            raise ApiCallError(0, f"the station at {self.socket_path} did not answer: {exc or type(exc).__name__}"
                               ) from None
        finally:
            conn.close()
        try:
            data = json.loads(text) if text else None
        except json.JSONDecodeError:
            raise ApiCallError(resp.status, f"not a JSON answer from {self.socket_path}: {text[:200]!r}") from None
        if resp.status >= 400:
            err = data if isinstance(data, dict) else {}
            raise ApiCallError(resp.status, str(err.get("error") or text), str(err.get("field") or ""))
        return data

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """``call_sync`` in a worker thread (for callers on a loop, e.g. several C-ECHOs at once)."""
        return await asyncio.to_thread(self.call_sync, method, path, body)

    def session(self, timeout: float | None = CALL_TIMEOUT_S) -> aiohttp.ClientSession:
        """An aiohttp session on the socket (the event stream); None: no time limit."""
        import aiohttp

        return aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(self.socket_path)),
                                     timeout=aiohttp.ClientTimeout(total=timeout))

    def status(self) -> dict[str, Any] | None:
        """The station's status if one answers on the socket within PROBE_TIMEOUT_S, else None."""
        if not self.socket_path.exists():
            return None
        try:
            data = self.call_sync("GET", "/api/v1/status", timeout=PROBE_TIMEOUT_S)
        except ApiCallError:
            return None
        return data if isinstance(data, dict) else None


def live_station(socket_path: Path) -> tuple[ApiClient, dict[str, Any]] | None:
    """(client, status) when a station answers on ``socket_path``; None when none does (work offline)."""
    client = ApiClient(socket_path)
    status = client.status()
    return (client, status) if status is not None else None
