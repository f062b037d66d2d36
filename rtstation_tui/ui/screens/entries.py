"""What the nodes and rules editors share: a screen around one table of named config entries.

Why a base: both screens list ``[[nodes]]`` / ``[[rules]]`` entries keyed by name, keep the cursor on the entry
just edited after the table is rebuilt from the saved file, edit on Enter, move with j/k, and ask the app to save
(a ``SaveConfig`` message) then refresh. Subclasses give the table id and their own columns, rows and actions.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import DataTable

from ...engine.config.model import Config
from ..commands.registry import CommandScope, bindings
from ...engine.api import StationAPI
from ..messages import Edit, SaveConfig


class EntryTableScreen(CommandScope, Screen[None]):
    TABLE_ID = ""
    COMMAND_SCOPE = "entries"
    BINDINGS = bindings("entries")

    def __init__(self, config: Config, api: StationAPI) -> None:
        super().__init__()
        self.config = config  # the running configuration; replaced by what each save applied
        self.api = api

    @property
    def table(self) -> DataTable[str]:
        return self.query_one(f"#{self.TABLE_ID}", DataTable)

    @property
    def selected(self) -> str | None:
        table = self.table
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def keep_cursor(self, names: list[str], keep: str | None) -> None:
        """After a rebuild, put the cursor back on ``keep`` (the entry just edited, or the one selected before)."""
        if keep in names:
            self.table.move_cursor(row=names.index(keep))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a row edits it (the table has Enter for itself, so the screen hears it this way)."""
        event.stop()
        self.action_edit()

    def action_edit(self) -> None:
        raise NotImplementedError

    def refresh_rows(self, select: str | None = None) -> None:
        raise NotImplementedError

    def action_cursor_down(self) -> None:
        self.table.action_cursor_down()

    def action_cursor_up(self) -> None:
        self.table.action_cursor_up()

    async def _save(self, edit: Edit, what: str, select: str | None) -> bool:
        """Ask the app to save (``ConfigFile``, then live apply); rebuild the table from what it applied."""
        request = SaveConfig(edit, what)
        self.post_message(request)
        saved = await request.reply
        if saved is not None:
            self.config = saved
            self.refresh_rows(select)
        return saved is not None
