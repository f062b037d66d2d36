"""Enter in the log pane: the lines it shows, wrapped, to be read whole.

Why a reader and not a wrapping pane: the pane keeps one record per line so that 5,000 of them scroll fast and a
search or level change re-filters at once; a long association error or a path is cut at the pane's edge, though.
Here the same lines (the newest ``SHOWN``) wrap at words, in a scroll that opens at the newest one.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from ..commands.registry import CommandScope, bindings
from ..labels import plain

SHOWN = 500


class LogReader(CommandScope, ModalScreen[None]):
    COMMAND_SCOPE = "log-reader"
    BINDINGS = bindings("log-reader")

    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines[-SHOWN:]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog log-reader"):
            yield Label(f"Log: the newest {len(self.lines)} lines shown, whole  (↑↓ PgUp PgDn scroll, Esc closes)",
                        classes="dialog-title")
            with VerticalScroll(id="log-reader-lines"):
                yield Static(Text("\n").join(plain(line) for line in self.lines) if self.lines
                             else Text("nothing shown in the log pane", "dim"), id="log-reader-text")

    def on_mount(self) -> None:
        scroll = self.query_one("#log-reader-lines", VerticalScroll)
        scroll.focus()
        self.call_after_refresh(scroll.scroll_end, animate=False)
