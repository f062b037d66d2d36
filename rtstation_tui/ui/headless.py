"""A console that runs the station goes on headless once its terminal is gone ([ATTACH]: "losing the terminal never
stops receiving").

Why in the console's process rather than a hand-over to a new ``rtstation serve``: a hand-over would stop the
receiver (associations refused while the new process binds) exactly when nobody is watching. Instead the Textual
app exits without stopping the station (``StationApp.go_headless``); its event loop is the one the station runs on
(``run_console`` drives both with ``asyncio.run``), so the receiver, the senders, the rules, the watched folder and
the control API go on untouched. What is left is what ``rtstation serve`` does: wait for SIGTERM/SIGINT or
``rtstation stop`` (``POST /api/v1/stop``), then stop gracefully (in-flight stores finish first). Nothing polls: the
process idles at ~0% CPU, and the next ``rtstation`` attaches to it through the API.

``q`` → "leave running" must also give the terminal back to the shell, which waits for its job to end. So a console
that will run the station forks first (``keep_the_shell``, before any thread or event loop exists): the parent is
the shell's job and only waits; the child is the console. On "leave running" the child leaves the terminal's session
(``setsid``), lets go of its terminal and tells the parent (SIGUSR1), which prints how to attach or stop and exits.
Otherwise the parent ends with the child's status, forwards SIGTERM/SIGINT to it, survives the hang-up (so its pid,
the one a terminal knows, stays until the station ends), and mirrors a Ctrl+Z suspend to the shell.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Any, NoReturn

from ..engine.station import Station

log = logging.getLogger("rtstation.console")
_keeper: int = 0  # the parent waiting in the shell's place (keep_the_shell), 0: none


class _LeftRunning(Exception):
    """Raised in the waiting parent by the child's SIGUSR1: the station was left running."""


def _left_running(*_: Any) -> None:
    raise _LeftRunning


def keep_the_shell() -> None:
    """Fork: returns in the child (the console, which will run the station); the parent never returns. Call it
    before any thread or event loop exists (a fork copies only the calling thread)."""
    global _keeper
    signal.signal(signal.SIGUSR1, _left_running)  # before the fork: the child may leave at once
    parent = os.getpid()
    child = os.fork()
    if child == 0:
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        _keeper = parent
        return
    _wait_for_console(child)


def _wait_for_console(child: int) -> NoReturn:
    def forward(sig: int, _: Any) -> None:
        try:
            os.kill(child, sig)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    signal.signal(signal.SIGHUP, lambda *_: release_terminal())  # the child goes on headless: wait for it
    while True:
        try:
            _, status = os.waitpid(child, os.WUNTRACED)
        except _LeftRunning:
            try:
                print(f"rtstation: the station goes on headless (pid {child}): `rtstation` attaches to it, "
                      "`rtstation stop` stops it", file=sys.stderr, flush=True)
            except OSError:
                pass
            os._exit(0)
        except ChildProcessError:
            os._exit(0)
        if os.WIFSTOPPED(status):  # Ctrl+Z in the console: the shell must see its job stopped; fg continues both
            os.kill(os.getpid(), signal.SIGSTOP)
            continue
        os._exit(os.waitstatus_to_exitcode(status))


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


def _leave_the_terminal(tell_keeper: bool) -> None:
    """Out of the terminal's session (its hang-up is no longer ours), stdio let go; ``tell_keeper``: the waiting
    parent prints how to attach or stop and ends, giving the shell its prompt back (after a hang-up it waits on:
    its pid is the one the terminal's side knows)."""
    try:
        os.setsid()
    except OSError:  # already a session leader (no keeper): the terminal's hang-up has come and gone
        pass
    release_terminal()
    if tell_keeper and _keeper:
        try:
            os.kill(_keeper, signal.SIGUSR1)
        except ProcessLookupError:  # the parent went with the terminal
            pass


async def continue_headless(station: Station, starting: "asyncio.Future[Any] | None", *, lost: bool = True) -> int:
    """Run ``station`` until SIGTERM/SIGINT or ``rtstation stop``, then stop it gracefully; returns the exit status.
    ``starting``: the console's start of the station, when the terminal went during it (awaited first).
    ``lost``: the terminal hung up (else the operator chose "leave running" on q)."""
    if starting is not None:
        await asyncio.wait([starting])
    _leave_the_terminal(tell_keeper=not lost)
    stopping = asyncio.Event()
    station.on_stop_request(stopping.set)  # rtstation stop: the same graceful stop as SIGTERM
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    # a hang-up repeats the SIGHUP (and ``kill -HUP`` must not kill a station nobody watches): logged, nothing else
    loop.add_signal_handler(signal.SIGHUP, log.info, "SIGHUP ignored: the station runs headless (pid %d)",
                            os.getpid())
    log.warning("%s: station continues headless (pid %d); `rtstation` attaches to it, `rtstation stop` stops it",
                "terminal lost" if lost else "left running on quit", os.getpid())
    await stopping.wait()
    log.info("headless station stopping: refusing new associations, finishing in-flight stores")
    await station.stop()
    log.info("headless station stopped")
    return 0
