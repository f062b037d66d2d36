"""Polling with a deadline: the only way tests wait (never a bare sleep as synchronisation).

``wait_for`` is for plain test functions; ``until`` for ``async def`` tests, where blocking the loop would stop the
very station being waited on. ``until`` yields with ``pause`` (``pilot.pause`` for the console) or ``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable


def _timed_out(timeout: float, what: str, condition: Any) -> AssertionError:
    return AssertionError(f"timed out after {timeout} s waiting for {what or condition}")


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy and return that; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what, condition)
        time.sleep(interval)


async def until(condition: Callable[[], Any], timeout: float = 20.0, what: str = "",
                pause: Callable[[float], Awaitable[Any]] | None = None) -> Any:
    """The ``async`` twin of ``wait_for``: the event loop keeps running between polls."""
    step = pause or asyncio.sleep
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what, condition)
        await step(0.02)
