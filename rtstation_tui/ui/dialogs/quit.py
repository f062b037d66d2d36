"""``q`` on the console that runs the station: stop the station, or leave it running headless ([ATTACH]).

Why ask: the console is often the only station there is, and quitting it used to stop the receiver. Leaving it
running is the default (the focused button, Enter) when rules or a watched folder are configured — work goes on
that nobody has to watch; otherwise stopping is. ``l`` / ``s`` answer at once, Esc stays in the console.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from ..commands.registry import CommandScope, bindings

LEAVE, STOP, STAY = "leave", "stop", ""


class QuitStationDialog(CommandScope, ModalScreen[str]):
    COMMAND_SCOPE = "quit"
    BINDINGS = bindings("quit")

    def __init__(self, busy: str, leave_by_default: bool) -> None:
        super().__init__()
        self.busy, self.leave_by_default = busy, leave_by_default

    def compose(self) -> ComposeResult:
        busy = f"{self.busy[0].upper()}{self.busy[1:]}.\n" if self.busy else ""
        with Vertical(classes="dialog", id="confirm-box"):
            yield Label("Quit the console?", classes="dialog-title")
            yield Static(f"{busy}This console runs the station. Leave it running headless (it goes on receiving, "
                         "sending and serving; `rtstation` attaches, `rtstation stop` stops it), or stop it "
                         "(in-flight stores finish; the send queue resumes at the next start)?")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Leave running (l)", id=LEAVE, variant="primary")
                yield Button("Stop station (s)", id=STOP, variant="error")
                yield Button("Stay (Esc)", id="stay")

    def on_mount(self) -> None:
        self.query_one(f"#{LEAVE if self.leave_by_default else STOP}", Button).focus()

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id if event.button.id in (LEAVE, STOP) else STAY)
