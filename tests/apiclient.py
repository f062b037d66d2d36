"""Test helpers for the control API: curl over the Unix socket (as the README shows it) and an SSE reader."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import aiohttp

CURL = "/usr/bin/curl"


def curl(sock: Path, path: str, *, method: str = "GET", data: Any = None) -> tuple[int, Any]:
    """(HTTP status, JSON body) of one request made by curl, as an operator would make it."""
    cmd = [CURL, "-s", "--unix-socket", str(sock), "-X", method, "-w", "\n%{http_code}"]
    if data is not None:
        cmd += ["-H", "Content-Type: application/json", "-d", json.dumps(data)]
    proc = subprocess.run([*cmd, f"http://localhost{path}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"curl failed ({proc.returncode}): {proc.stderr}"
    text, _, code = proc.stdout.rpartition("\n")
    return int(code), json.loads(text) if text else None


class EventReader:
    """Reads ``GET /api/v1/events`` and keeps every message: (kind, seq or None, data)."""

    def __init__(self, sock: Path, since: int | None = None) -> None:
        self.sock, self.since = sock, since
        self.messages: list[tuple[str, int | None, dict[str, Any]]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> EventReader:
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    async def _read(self) -> None:
        query = f"?since={self.since}" if self.since is not None else ""
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(self.sock))) as s:
            async with s.get(f"http://localhost/api/v1/events{query}", timeout=aiohttp.ClientTimeout()) as r:
                assert r.status == 200, await r.text()
                kind, seq = "", None
                async for raw in r.content:
                    line = raw.decode().rstrip("\n")
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("id: "):
                        seq = int(line[4:])
                    elif line.startswith("data: "):
                        self.messages.append((kind, seq, json.loads(line[6:])))
                        kind, seq = "", None

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [d for k, _, d in self.messages if k == kind]

    @property
    def seqs(self) -> list[int]:
        return [s for _, s, _ in self.messages if s is not None]
