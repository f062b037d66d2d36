"""A periodic background loop that can be woken early and stopped reliably.

Why not ``task.cancel()`` around ``asyncio.wait_for``: on Python 3.11, wait_for can swallow a cancellation that
arrives while its inner wait completes, and the loop then runs forever (seen as ``rtstation send --wait`` never
exiting). Here stopping is a flag plus a wake-up; cancellation is only the last resort.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Awaitable, Callable

log = logging.getLogger("rtstation.loops")


class Ticker:
    def __init__(self, name: str, step: Callable[[], Awaitable[None]], interval: Callable[[], float]) -> None:
        self.name = name
        self._step = step
        self._interval = interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stop = threading.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._wake.set()  # run once right away
        self._task = asyncio.create_task(self._run(), name=self.name)

    def kick(self) -> None:
        """Run the step soon. Safe from any thread."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(wake.set)

    async def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.kick()
        if self._task is None:
            return
        done, _ = await asyncio.wait({self._task}, timeout=timeout)
        if not done:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=timeout)

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._wake.wait(), max(0.0, self._interval()))
            except asyncio.TimeoutError:
                pass
            if self._stop.is_set():
                return
            self._wake.clear()
            try:
                await self._step()
            except Exception:
                log.exception("%s step failed; trying again", self.name)
