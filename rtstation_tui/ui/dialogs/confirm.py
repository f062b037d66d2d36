"""A yes/no question (quit while objects arrive or jobs run). ``y``/``n`` answer at once; Esc is no."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from ..commands.registry import CommandScope, bindings
from ..labels import plain


class ConfirmDialog(CommandScope, ModalScreen[bool]):
    COMMAND_SCOPE = "confirm"
    BINDINGS = bindings("confirm")

    def __init__(self, title: str, message: str, yes: str = "Yes", no: str = "No") -> None:
        """``message`` is shown as written (it names nodes, rules and plans), never read as markup."""
        super().__init__()
        self.title_text, self.message, self.yes, self.no = title, message, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="confirm-box"):
            yield Label(plain(self.title_text), classes="dialog-title")
            yield Static(plain(self.message, lines=True))
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="error")
                yield Button(f"{self.no} (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")
