"""The event stream (``GET /api/v1/events?since=SEQ``, Server-Sent Events): the engine's events with sequence numbers.

Why a shared replay ring and a cursor per client, not a queue per client: the bus subscriber only appends to one
bounded deque (never waits, never grows), so the receiver cannot be slowed by any client. Each client's handler
copies what lies past its cursor into one write at most ``BATCH_INTERVAL`` apart (≤10 writes per second); a client
that fell further behind than the ring holds is told to re-read (``event: reset``) and continues from the newest
event; one whose socket accepts nothing for ``client_timeout`` seconds is dropped. What a client can hold up is
bounded by its socket buffer and one batch.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import os
import socket
import time
from typing import Any

from aiohttp import web

from ..events import Event
from .http import ApiError
from .jsonable import event_json

log = logging.getLogger("rtstation.api")

BATCH_INTERVAL = 0.1  # seconds between two writes to one client: at most 10 batches per second
MAX_BATCH = 2000  # events in one write (a client catching up gets the rest 0.1 s later)
KEEPALIVE_S = 15.0  # a comment line when nothing happens, so a vanished client is noticed
STREAM_SNDBUF = 32 * 1024  # kernel buffer per stream client (Linux doubles it): what a stalled client can pin


class _Held:
    """One numbered event of the ring, turned into JSON text the first time a client reads it. Why lazily: the
    receiver posts an event per stored instance and most stations have no stream client at all; encoding each one
    on the loop took GIL time from the receive path for text nobody read. Events are frozen, so the text made later
    is the text that would have been made at once."""

    __slots__ = ("seq", "kind", "_source", "_text")

    def __init__(self, seq: int, kind: str, source: Event | dict[str, Any]) -> None:
        self.seq, self.kind, self._source, self._text = seq, kind, source, ""

    @property
    def text(self) -> str:
        if not self._text:
            data = self._source if isinstance(self._source, dict) else event_json(self._source)
            self._text = json.dumps({"seq": self.seq, **data}, ensure_ascii=False, separators=(",", ":"))
            self._source = {}
        return self._text


class EventHub:
    """Numbers every event (1, 2, …) and keeps the newest ``capacity`` of them (as JSON text once read)."""

    def __init__(self, capacity: int = 10000) -> None:
        self.seq = 0
        self._ring: collections.deque[_Held] = collections.deque(maxlen=capacity)
        self._changed = asyncio.Event()  # set and replaced at each publish: every waiter wakes once
        self.closing = False
        # this run of the station: a client that followed an earlier run (before a restart) starts from 0
        self.epoch = f"{os.getpid()}-{int(time.time() * 1000)}"

    @property
    def oldest(self) -> int:
        """The sequence number of the oldest event still held (``seq + 1`` when none is)."""
        return self._ring[0].seq if self._ring else self.seq + 1

    def publish(self, batch: list[Event]) -> None:
        """The bus subscriber (on the loop): number and keep the batch, wake the clients. Never waits."""
        for event in batch:
            self.seq += 1
            self._ring.append(_Held(self.seq, type(event).__name__, event))
        self._wake()

    def add(self, data: dict[str, Any]) -> None:
        """One record that is not a bus event (a log line), on the loop."""
        self.seq += 1
        self._ring.append(_Held(self.seq, str(data.get("type", "event")), data))
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def close(self) -> None:
        self.closing = True
        self._wake()

    def after(self, cursor: int) -> tuple[list[tuple[int, str, str]], bool]:
        """Events numbered above ``cursor`` (at most MAX_BATCH), and whether some of them are no longer held."""
        if cursor >= self.seq:
            return [], cursor > self.seq  # a number this run never gave out: re-read
        lost = cursor + 1 < self.oldest
        start = max(0, cursor + 1 - self.oldest)
        return [(h.seq, h.kind, h.text) for h in itertools.islice(self._ring, start, start + MAX_BATCH)], lost

    async def wait(self, cursor: int, timeout: float) -> None:
        """Until an event past ``cursor`` exists, the hub closes, or ``timeout`` passes."""
        if cursor != self.seq or self.closing:
            return
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass


def _sse(seq: int | None, kind: str, data: str) -> str:
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {kind}\ndata: {data}\n\n"


def _start_cursor(request: web.Request, hub: EventHub) -> int:
    raw = request.query.get("since") or request.headers.get("Last-Event-ID")
    if raw is None:
        return hub.seq  # from now on
    epoch = request.query.get("epoch")
    if epoch and epoch != hub.epoch:  # numbered by the station's previous run: everything of this run is new
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"since: not a sequence number: {raw!r}", "since") from None
    return max(0, value)


async def events(request: web.Request, hub: EventHub, client_timeout: float) -> web.StreamResponse:
    cursor = _start_cursor(request, hub)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SNDBUF)
    await resp.prepare(request)
    hello = json.dumps({"seq": hub.seq, "oldest": hub.oldest, "since": cursor, "epoch": hub.epoch})
    try:
        await asyncio.wait_for(resp.write(_sse(None, "hello", hello).encode()), client_timeout)
        while not hub.closing:
            await hub.wait(cursor, KEEPALIVE_S)
            cursor = await _send_batch(resp, hub, cursor, client_timeout)
            await asyncio.sleep(BATCH_INTERVAL)
    except asyncio.TimeoutError:
        log.warning("event stream client dropped: it accepted nothing for %.0f s", client_timeout)
    except (ConnectionResetError, ConnectionError):
        pass
    return resp


async def _send_batch(resp: web.StreamResponse, hub: EventHub, cursor: int, timeout: float) -> int:
    items, lost = hub.after(cursor)
    if lost:  # the ring moved past this client: it must re-read, then follows from the newest event
        reset = json.dumps({"seq": hub.seq, "missed_from": cursor + 1, "oldest": hub.oldest})
        await asyncio.wait_for(resp.write(_sse(None, "reset", reset).encode()), timeout)
        return hub.seq
    if not items:
        if not hub.closing:
            await asyncio.wait_for(resp.write(b": keepalive\n\n"), timeout)
        return cursor
    payload = "".join(_sse(seq, kind, text) for seq, kind, text in items)
    await asyncio.wait_for(resp.write(payload.encode()), timeout)
    return items[-1][0]
