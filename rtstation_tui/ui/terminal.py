"""Textual's Linux driver, made to notice that its terminal is gone (SSH dropped, tmux kill-session).

Why (measured with py-spy on Textual 8.2.8, [HARDEN2] 2): when the pty's other end closes, the kernel hangs the
terminal up: reads return EOF, writes fail with EIO, and the session gets SIGHUP *and* SIGCONT. Stock Textual then

- treats the SIGCONT as the end of a Ctrl+Z suspend and starts application mode again: a second input thread and a
  second writer thread;
- loses its writer thread to the first EIO, after which the bounded output queue fills and the event loop blocks
  for ever in ``driver.write()`` at the next screen refresh: no signal handler (SIGTERM included) runs again, the
  station's stop never completes, the data_dir lock stays held;
- loops in both input threads on ``read(0)`` returning EOF, spinning a core.

``ConsoleDriver`` resumes only after a suspend of its own, swallows output errors (nobody can see the screen any
more; the writer thread keeps draining so ``write`` never blocks), and watches the terminal for a hang-up with
``poll()`` (POLLHUP; no polling loop). On hang-up it stops Textual's input thread and posts ``TerminalLost`` to the
app, which stops the station (in-flight stores finish) and exits.
"""

from __future__ import annotations

import os
import select
import threading
from typing import IO, Any

from textual.drivers.linux_driver import LinuxDriver
from textual.message import Message


class TerminalLost(Message):
    """The console's terminal hung up (posted from the driver's watch thread)."""


class _GuardedOutput:
    """The terminal stream as the writer thread sees it: after the first write error (EIO once hung up) everything
    is dropped, so the writer thread lives on and drains its queue instead of dying and blocking the event loop."""

    def __init__(self, stream: IO[str], on_error: Any) -> None:
        self._stream, self._on_error = stream, on_error
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self._stream.write(text)
            except (OSError, ValueError):
                self._broken()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._broken()

    def _broken(self) -> None:
        self.broken = True
        self._on_error()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class ConsoleDriver(LinuxDriver):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hung_up = threading.Event()
        self._file = _GuardedOutput(self._file, self._hang_up)  # type: ignore[assignment]
        self._watch: threading.Thread | None = None
        self._watch_stop_r, self._watch_stop_w = os.pipe()

    def _sigcont_application(self, *_: Any) -> None:
        # Only the end of our own Ctrl+Z suspend (which sets _must_signal_resume) restarts application mode; the
        # SIGCONT that comes with a hang-up would start a second input and writer thread on a dead terminal.
        if self._must_signal_resume and not self.hung_up.is_set():
            super()._sigcont_application()

    def start_application_mode(self) -> None:
        super().start_application_mode()
        if self.input_tty and (self._watch is None or not self._watch.is_alive()):  # again after a Ctrl+Z resume
            self._watch = threading.Thread(target=self._watch_terminal, name="rtstation-terminal-watch", daemon=True)
            self._watch.start()

    def close(self) -> None:
        super().close()
        try:
            os.write(self._watch_stop_w, b"!")
        except OSError:
            pass

    def _watch_terminal(self) -> None:
        """Wait for POLLHUP/POLLERR on the terminal (reported whatever the mask; input is left to Textual)."""
        poller = select.poll()
        poller.register(self.fileno, select.POLLHUP | select.POLLERR)
        poller.register(self._watch_stop_r, select.POLLIN)
        while True:
            try:
                events = poller.poll()
            except InterruptedError:
                continue
            except OSError:
                return
            for fd, mask in events:
                if fd == self._watch_stop_r:  # close(): a suspend or the exit
                    os.read(self._watch_stop_r, 64)
                    return
                if mask & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    self._hang_up()
                    return

    def _hang_up(self) -> None:
        if self.hung_up.is_set():
            return
        self.hung_up.set()
        self.exit_event.set()  # Textual's input thread leaves its loop instead of spinning on EOF
        self._app.post_message(TerminalLost())
