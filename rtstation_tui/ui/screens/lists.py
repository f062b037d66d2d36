"""Read-only lists of the configured nodes and rules (the editors come with a later issue).

Why screens and not dialogs: operators look things up here (which AE title, which port, which rule sends where)
while the station keeps running underneath; Esc returns to the tree exactly as it was.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label

from ...engine.config import Config


class _ListScreen(Screen[None]):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("j", "cursor_down", show=False),
                Binding("k", "cursor_up", show=False)]
    TITLE_TEXT = ""
    COLUMNS: tuple[str, ...] = ()

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config

    def compose(self) -> ComposeResult:
        yield Label(f"{self.TITLE_TEXT}  (read-only; from {self.config.path or 'built-in defaults'})",
                    classes="screen-title")
        table: DataTable[str] = DataTable(cursor_type="row", zebra_stripes=True)
        table.add_columns(*self.COLUMNS)
        for row in self.rows():
            table.add_row(*row)
        yield table
        yield Label(self.empty_text() if not table.row_count else "", classes="hint")
        yield Footer()

    def rows(self) -> list[tuple[str, ...]]:
        raise NotImplementedError

    def empty_text(self) -> str:
        return ""

    def action_cursor_down(self) -> None:
        self.query_one(DataTable).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one(DataTable).action_cursor_up()


class NodesScreen(_ListScreen):
    TITLE_TEXT = "Nodes"
    COLUMNS = ("name", "AE title", "address", "enabled", "our AE", "parallel", "retry", "timeout", "TLS")

    def rows(self) -> list[tuple[str, ...]]:
        return [(n.name, n.ae_title, f"{n.host}:{n.port}", "yes" if n.enabled else "no",
                 n.calling_ae_title or self.config.station.ae_title, str(n.max_associations), n.retry,
                 f"{n.timeout_s:g} s", "yes" if n.tls else "no") for n in self.config.nodes]

    def empty_text(self) -> str:
        return "No [[nodes]] in the configuration."


class RulesScreen(_ListScreen):
    TITLE_TEXT = "Rules"
    COLUMNS = ("#", "name", "enabled", "targets", "matches", "include", "incomplete", "stop")

    def rows(self) -> list[tuple[str, ...]]:
        out = []
        for i, r in enumerate(self.config.rules, start=1):
            match = [f"{k}={v}" for k, v in (("source", r.source_ae), ("label", r.plan_label),
                                             ("machine", r.machine), ("patient", r.patient_id),
                                             ("modality", r.modality)) if v]
            if r.approval != "ANY":
                match.append(f"approval={r.approval}")
            out.append((str(i), r.name, "yes" if r.enabled else "no", ", ".join(r.targets),
                        " ".join(match) or "every plan", ",".join(r.include), r.when_incomplete,
                        "yes" if r.stop else "no"))
        return out

    def empty_text(self) -> str:
        return "No [[rules]] in the configuration: plans are sent by hand (s)."
