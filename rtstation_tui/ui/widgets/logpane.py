"""The log pane: the same records as the daily log file (a handler on the same loggers), with a level filter,
follow on/off and a search.

Why a ring buffer beside the ``Log`` widget: changing the level or the search re-filters what was already
received, without asking the file. Lines are written in batches (one ``write_lines`` per event flush), which
``Log`` handles far better than one write per record at high rates.
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Log, Static

from ..commands.registry import CommandScope, bindings
from ..labels import literal, plain

LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR)
KEEP = 5000


@dataclass(frozen=True)
class LogLine:
    at: float
    level: int
    logger: str
    message: str


def clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def format_line(line: LogLine) -> str:
    """One record as the pane shows it (``Log`` never reads markup). The bus's formatter already escapes control
    characters in messages; any that still come (a record from elsewhere) are shown, never sent to the terminal."""
    name = line.logger.removeprefix("rtstation.")
    return literal(f"{clock(line.at)} {logging.getLevelName(line.level):<7} {name}: {line.message}", lines=True)


class LogPane(CommandScope, Vertical, can_focus=False):
    COMMAND_SCOPE = "log"
    BINDINGS = bindings("log")

    def __init__(self, level: int = logging.INFO, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.level = level
        self.follow = True
        self.search = ""
        self.lines: collections.deque[LogLine] = collections.deque(maxlen=KEEP)

    def compose(self) -> ComposeResult:
        yield Static(plain(self._title()), id="log-title")
        yield Input(placeholder="search the log (Enter: apply, Esc: clear)", id="log-search")
        yield Log(max_lines=KEEP, highlight=False, id="log")

    def on_mount(self) -> None:
        self.query_one("#log-search", Input).display = False

    @property
    def log_widget(self) -> Log:
        return self.query_one("#log", Log)

    def _title(self) -> str:
        parts = [f"Log  level ≥ {logging.getLevelName(self.level)}", f"follow {'on' if self.follow else 'off'}"]
        if self.search:
            parts.append(f"search: {self.search!r}")
        return "  ·  ".join(parts) + "   (v level, f follow, / search)"

    def _visible(self, line: LogLine) -> bool:
        return line.level >= self.level and (not self.search or self.search.lower() in format_line(line).lower())

    def add(self, lines: list[LogLine]) -> None:
        """Append a batch (called once per event flush)."""
        self.lines.extend(lines)
        shown = [format_line(line) for line in lines if self._visible(line)]
        if shown:
            self.log_widget.write_lines(shown, scroll_end=self.follow)

    def refilter(self) -> None:
        log = self.log_widget
        log.clear()
        log.write_lines([format_line(line) for line in self.lines if self._visible(line)], scroll_end=self.follow)
        self.query_one("#log-title", Static).update(plain(self._title()))

    def action_cycle_level(self) -> None:
        self.level = LEVELS[(LEVELS.index(self.level) + 1) % len(LEVELS)] if self.level in LEVELS else logging.INFO
        self.refilter()

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        self.log_widget.auto_scroll = self.follow
        if self.follow:
            self.log_widget.scroll_end(animate=False)
        self.query_one("#log-title", Static).update(plain(self._title()))

    def action_search(self) -> None:
        box = self.query_one("#log-search", Input)
        box.display = True
        box.value = self.search
        box.focus()

    def action_leave(self) -> None:
        box = self.query_one("#log-search", Input)
        if box.display:
            box.display = False
            self.search = ""
            self.refilter()
        self.log_widget.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "log-search":
            return
        event.stop()
        self.search = event.value.strip()
        event.input.display = False
        self.refilter()
        self.log_widget.focus()
