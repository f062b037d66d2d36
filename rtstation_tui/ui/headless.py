"""A console that runs the station goes on headless once its terminal is gone ([ATTACH]: "losing the terminal never
stops receiving").

Why in the console's process rather than a hand-over to a new ``rtstation serve``: a hand-over would stop the
receiver (associations refused while the new process binds) exactly when nobody is watching. Instead the Textual
app exits without stopping the station (``StationApp.go_headless``); its event loop is the one the station runs on
(``run_console`` drives both with ``asyncio.run``), so the receiver, the senders, the rules, the watched folder and
the control API go on untouched. What is left is what ``rtstation serve`` does: wait for SIGTERM/SIGINT or
``rtstation stop`` (``POST /api/v1/stop``), then stop gracefully (in-flight stores finish first). Nothing polls: the
process idles at ~0% CPU, and the next ``rtstation`` attaches to it through the API.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

from ..engine.station import Station

log = logging.getLogger("rtstation.console")


def release_terminal() -> None:
    """Point stdin, stdout and stderr at /dev/null: the hung-up pty is let go (nothing can block on it or get EIO,
    and the terminal emulator's side may be freed), and a stray print goes nowhere instead of failing."""
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in (0, 1, 2):
            try:
                os.dup2(null, fd)
            except OSError:  # an fd that was never open: nothing to let go of
                pass
    finally:
        os.close(null)


async def continue_headless(station: Station, starting: "asyncio.Future[Any] | None") -> int:
    """Run ``station`` until SIGTERM/SIGINT or ``rtstation stop``, then stop it gracefully; returns the exit status.
    ``starting``: the console's start of the station, when the terminal went during it (awaited first)."""
    if starting is not None:
        await asyncio.wait([starting])
    release_terminal()
    stopping = asyncio.Event()
    station.on_stop_request(stopping.set)  # rtstation stop: the same graceful stop as SIGTERM
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    # a hang-up repeats the SIGHUP (and ``kill -HUP`` must not kill a station nobody watches): logged, nothing else
    loop.add_signal_handler(signal.SIGHUP, log.info, "SIGHUP ignored: the station runs headless (pid %d)",
                            os.getpid())
    log.warning("terminal lost: station continues headless (pid %d); `rtstation` attaches to it, `rtstation stop` "
                "stops it", os.getpid())
    await stopping.wait()
    log.info("headless station stopping: refusing new associations, finishing in-flight stores")
    await station.stop()
    log.info("headless station stopped")
    return 0
