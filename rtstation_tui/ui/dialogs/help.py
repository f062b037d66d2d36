"""The help screen (? or F1): every key of the screen it was opened on, grouped by where it works.

Why from the registry and not a hand-written page: it lists exactly the bindings the screen has, so it cannot
drift from the footer and the palette. Opened over any screen, including the editors and dialogs.
"""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from ..commands.registry import SCOPE_NAMES, Command, CommandScope, bindings, key_name
from ..labels import plain


def keys_table(rows: list[tuple[str, Command]]) -> Table:
    """One row per command: key(s), name, what it does; a heading row where the scope changes."""
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column()
    last = ""
    for scope, c in rows:
        if scope != last:
            table.add_row(plain(SCOPE_NAMES.get(scope, scope), "bold"), "", "")  # Text: a str cell is markup
            last = scope
        keys = " ".join(key_name(k) for k in c.key_list) or "palette"
        table.add_row(plain(f"  {keys}"), plain(c.title), plain(c.help))
    return table


class HelpScreen(CommandScope, ModalScreen[None]):
    COMMAND_SCOPE = "help"
    BINDINGS = bindings("help")

    def __init__(self, title: str, rows: list[tuple[str, Command]]) -> None:
        super().__init__()
        self.title_text = title
        self.rows = rows

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog help-dialog"):
            yield Label(plain(f"Keys: {self.title_text}  (Esc closes; Ctrl+P finds any command by name)"),
                        classes="dialog-title")
            with VerticalScroll(id="help-keys"):
                yield Static(keys_table(self.rows), id="help-text")
