"""What the nodes and rules editors share: a screen around one table of named config entries.

Why a base: both screens list ``[[nodes]]`` / ``[[rules]]`` entries keyed by name, keep the cursor on the entry
just edited after the table is rebuilt from the saved file, edit on Enter, move with j/k, and ask the app to save
(a ``SaveConfig`` message) then refresh. Subclasses give the table id and their own columns, rows and actions.
"""

from __future__ import annotations

from rich.text import Text
from textual.screen import Screen
from textual.widgets import DataTable

from ...engine.config.model import Config
from ..commands.registry import CommandScope, bindings
from ...engine.api import StationAPI
from ..labels import cells
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
    def table(self) -> DataTable[Text]:
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

    def rows(self) -> list[tuple[str, tuple[str, ...]]]:
        """The table's rows as (entry name, cells), in the file's order."""
        raise NotImplementedError

    def after_refresh(self, names: list[str], where: str) -> None:
        """What the screen shows around the table once its rows are rebuilt (title, detail, dry run)."""
        raise NotImplementedError

    def refresh_rows(self, select: str | None = None) -> None:
        """Rebuild the table from ``self.config``, keeping the cursor on ``select`` or the entry selected before."""
        table = self.table
        keep = select or self.selected
        table.clear()
        rows = self.rows()
        for name, values in rows:  # names, AE titles, hosts, patterns: never markup (labels.py)
            table.add_row(*cells(values), key=name)
        names = [name for name, _ in rows]
        self.keep_cursor(names, keep)
        config = self.config
        self.after_refresh(names, config.path.name if config.path else "built-in defaults")

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
