"""The Remote screen ([QR]): pick a node, type a patient ID, see that patient's plans on the node (label, approval,
date, machine, number of objects), mark plans and pull them; the pulled plans appear in the tree.

Why the station does the pulling: the console only asks (``StationAPI.remote_plans`` by C-FIND, then
``StationAPI.retrieve``) and shows the sub-operation counts of the ``RetrieveProgress`` events the app hands over
(``retrieve_events``), so it works the same attached to ``rtstation serve`` and leaving the screen (or the console)
does not stop a retrieve. Reading follows the main screen's pattern: worker → ``asyncio.to_thread(api…)``.
"""

from __future__ import annotations

import asyncio
from typing import Sequence

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label, Select, Static

from ...engine.api import RemotePlan, RemoteUnavailable, StationAPI
from ...engine.events import Event, RetrieveFinished, RetrieveProgress
from ..commands.registry import CommandScope, bindings
from ..labels import cells, plain

COLUMNS = ("", "plan", "approval", "date", "machine", "objects", "here")
MARK = "●"


def plan_cells(p: RemotePlan, marked: bool, pulled: bool) -> tuple[Text, ...]:
    date = f"{p.date[:4]}-{p.date[4:6]}-{p.date[6:8]}" if len(p.date) == 8 and p.date.isdigit() else p.date
    objects = str(p.objects) if p.counted else f"≥{p.objects}"
    here = "yes" if p.stored_here or pulled else ""
    return cells((MARK if marked else " ", p.label or "(no label)", p.approval, date, p.machine, objects, here))


def progress_text(ev: RetrieveProgress, labels: str) -> Text:
    remaining = "?" if ev.remaining is None else str(ev.remaining)
    text = plain(f"pulling {labels} from {ev.node}: {ev.step}", "bold")
    text.append("\n")
    text.append(f"remaining {remaining}  completed {ev.completed}  ")
    text.append(f"failed {ev.failed}", "bold red" if ev.failed else "")
    text.append(f"  warning {ev.warning}", "yellow" if ev.warning else "")
    return text


class RemoteScreen(CommandScope, Screen[None]):
    AUTO_FOCUS = "#remote-patient"
    COMMAND_SCOPE = "remote"
    BINDINGS = bindings("remote")

    def __init__(self, api: StationAPI) -> None:
        super().__init__()
        self.api = api
        self.plans: list[RemotePlan] = []
        self.marked: set[str] = set()
        self.pulled: set[str] = set()  # plans pulled by this screen (their "here" before the next query)
        self.asked: tuple[str, str] | None = None  # (node, patient) the table shows
        self.running: dict[int, tuple[str, str, tuple[str, ...]]] = {}  # retrieve id → node, labels, plan UIDs
        # events of retrieves not (yet) known here: the station may report before ``retrieve`` has returned
        self.early: list[RetrieveProgress | RetrieveFinished] = []

    def queryable(self) -> list[str]:
        """The nodes offered: the enabled ``[[nodes]]`` (a disabled node is one the operator took out of use)."""
        return [n.name for n in self.api.config.nodes if n.enabled]

    def compose(self) -> ComposeResult:
        yield Label("Remote: query a node, pull plans", classes="screen-title")
        nodes = self.queryable()
        with Horizontal(id="remote-ask"):
            yield Select([(n, n) for n in nodes], prompt="node", allow_blank=not nodes,
                         value=nodes[0] if nodes else Select.BLANK, id="remote-node")
            yield Input(placeholder="patient ID (Enter queries)", id="remote-patient")
        table: DataTable[str] = DataTable(cursor_type="row", zebra_stripes=True, id="remote-plans")
        table.add_columns(*COLUMNS)
        yield table
        yield Static("", id="remote-progress")
        yield Static("", id="remote-hint", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        if not self.queryable():
            self.hint("no enabled node to query: add one with the nodes editor (n)", error=True)
        else:  # the first node is chosen already: the cursor waits where the operator types
            self.hint("choose a node, type a patient ID, Enter; then space marks plans, p pulls them")
            self.query_one("#remote-patient", Input).focus()

    def hint(self, text: str, error: bool = False) -> None:
        self.query_one("#remote-hint", Static).update(plain(text, "bold red" if error else "dim", lines=True))

    # -- the query ------------------------------------------------------------------------------------------------
    def node(self) -> str | None:
        value = self.query_one("#remote-node", Select).value
        return value if isinstance(value, str) else None

    @on(Input.Submitted, "#remote-patient")
    def _submitted(self) -> None:
        self.action_query()

    def action_query(self) -> None:
        node, patient = self.node(), self.query_one("#remote-patient", Input).value.strip()
        if node is None or not patient:
            self.hint("choose a node and type a patient ID first", error=True)
            return
        self.hint(f"asking {node} for the plans of {patient}…")
        self._query(node, patient)

    @work(group="remote-query", exclusive=True, exit_on_error=False)
    async def _query(self, node: str, patient: str) -> None:
        try:
            plans = await asyncio.to_thread(self.api.remote_plans, node, patient)
        except RemoteUnavailable as exc:
            self.hint(str(exc), error=True)
            return
        self.plans, self.asked = plans, (node, patient)
        self.marked &= {p.sop_uid for p in plans}
        self.pulled.clear()
        self._fill()
        table = self.query_one("#remote-plans", DataTable)
        if plans:
            table.focus()
            self.hint(f"{len(plans)} plan{'s' if len(plans) != 1 else ''} of {patient} on {node}: space marks, "
                      "p pulls")
        else:
            self.hint(f"{node} holds no plan of patient {patient}", error=True)

    def _fill(self) -> None:
        table = self.query_one("#remote-plans", DataTable)
        row = table.cursor_row
        table.clear()
        for p in self.plans:
            table.add_row(*plan_cells(p, p.sop_uid in self.marked, p.sop_uid in self.pulled), key=p.sop_uid)
        if self.plans:
            table.move_cursor(row=min(max(row, 0), len(self.plans) - 1))

    def _cursor_plan(self) -> RemotePlan | None:
        table = self.query_one("#remote-plans", DataTable)
        if not self.plans or table.cursor_row < 0:
            return None
        return self.plans[min(table.cursor_row, len(self.plans) - 1)]

    def action_toggle_mark(self) -> None:
        plan = self._cursor_plan()
        if plan is None:
            return
        self.marked.symmetric_difference_update({plan.sop_uid})
        self._fill()

    # -- the pull -------------------------------------------------------------------------------------------------
    def action_pull(self) -> None:
        if self.asked is None:
            self.hint("query a patient first (Enter in the patient ID)", error=True)
            return
        chosen = [p for p in self.plans if p.sop_uid in self.marked]
        if not chosen and (cursor := self._cursor_plan()) is not None:
            chosen = [cursor]
        if not chosen:
            self.hint("no plan to pull", error=True)
            return
        self._pull(self.asked[0], self.asked[1], chosen)

    @work(group="remote-pull", exit_on_error=False)
    async def _pull(self, node: str, patient: str, chosen: Sequence[RemotePlan]) -> None:
        uids = tuple(p.sop_uid for p in chosen)
        labels = ", ".join(p.label or p.sop_uid for p in chosen)
        try:
            rid = await asyncio.to_thread(self.api.retrieve, node, patient, uids)
        except RemoteUnavailable as exc:
            self.hint(str(exc), error=True)
            return
        self.running[rid] = (node, labels, uids)
        self.marked -= set(uids)
        self._fill()
        self.query_one("#remote-progress", Static).update(plain(f"pulling {labels} from {node}: starting"))
        self.hint(f"retrieve {rid} runs in the station (Esc leaves it running); pulled plans join the tree")
        early = [ev for ev in self.early if ev.retrieve_id == rid]
        self.early = [ev for ev in self.early if ev.retrieve_id != rid]
        self.retrieve_events(early)

    def retrieve_events(self, events: Sequence[Event]) -> None:
        """The app hands over the RetrieveProgress/RetrieveFinished events (of every retrieve; ours are shown)."""
        for ev in events:
            if not isinstance(ev, (RetrieveProgress, RetrieveFinished)):
                continue
            if ev.retrieve_id not in self.running:
                self.early = [*self.early[-99:], ev]
                continue
            node, labels, uids = self.running[ev.retrieve_id]
            progress = self.query_one("#remote-progress", Static)
            if isinstance(ev, RetrieveProgress):
                progress.update(progress_text(ev, labels))
                continue
            del self.running[ev.retrieve_id]
            if ev.ok:
                self.pulled |= set(uids)
                self._fill()
                progress.update(plain(f"pulled {labels} from {node}: {ev.message}", "green"))
            else:
                progress.update(plain(f"pulling {labels} from {node} failed: {ev.message}", "bold red", lines=True))

    def action_back(self) -> None:
        self.app.pop_screen()
