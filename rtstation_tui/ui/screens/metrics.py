"""The Metrics screen: the plan metrics database as a sortable, filterable table; for the selected plan its beams
and a DVH plot of every ROI (toggle each, move a dose cursor and read the volumes there).

Why a screen of its own: it answers "which plans…" questions across patients (all ADP plans above 60 Gy), which
the patient tree does not. Reading follows the main screen's pattern: async worker → ``asyncio.to_thread(api…)``
→ apply on the loop. Filters are ``rtstation metrics --where`` expressions; a wrong one is said in the hint line.
"""

from __future__ import annotations

import asyncio
import time

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label, SelectionList, Static
from textual.widgets.selection_list import Selection

from ...engine.api import StationAPI
from ...engine.metrics.views import DvhCurve, PlanMetrics
from ..commands.registry import CommandScope, bindings
from ..labels import cells, literal, plain
from ..widgets.dvhplot import DvhPlot, _interp, colour

# table column → (sort field of the metrics query, header)
COLUMNS = (("label", "plan"), ("patient_id", "patient"), ("machine", "machine"), ("technique", "technique"),
           ("fractions", "fx"), ("total_mu", "MU"), ("prescription", "Rx Gy"), ("max_dose", "Dmax Gy"),
           ("received", "received"), ("status", "metrics"))


def _num(v: float | int | None, digits: int = 1) -> str:
    return "" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def plan_cells(p: PlanMetrics) -> tuple[Text, ...]:
    when = time.strftime("%Y-%m-%d", time.localtime(p.received)) if p.received else ""
    return cells((p.label, p.patient_id, p.machine, p.technique, _num(p.fractions), _num(p.total_mu, 0),
                  _num(p.prescription_gy), _num(p.max_dose_gy), when, p.status))


def readout(curves: list[DvhCurve], visible: set[str], dose: float) -> Text:
    """'at 42.0 Gy: PTV 98.1 %, Heart 3.2 %' in the ROIs' colours."""
    text = Text(f"at {dose:.1f} Gy: ")
    shown = [(i, c) for i, c in enumerate(curves) if c.roi in visible]
    for n, (i, c) in enumerate(shown):
        if n:
            text.append(", ")
        text.append(f"{literal(c.roi)} {_interp(dose, c.doses, c.volumes):.1f} %", style=colour(i))
    return text if shown else Text("no ROI shown (space toggles the ROI under the cursor)", style="dim")


class MetricsScreen(CommandScope, Screen[None]):
    AUTO_FOCUS = "#metrics-plans"
    COMMAND_SCOPE = "metrics"
    BINDINGS = bindings("metrics")

    def __init__(self, api: StationAPI) -> None:
        super().__init__()
        self.api = api
        self.where: list[str] = []
        self.sort_index, self.descending = COLUMNS.index(("received", "received")), True
        self.plans: list[PlanMetrics] = []
        self.curves: list[DvhCurve] = []
        self.shown_rois: set[str] = set()
        self.cursor_gy = 0.0
        self.shown_plan: str | None = None

    def compose(self) -> ComposeResult:
        yield Label("Plan metrics", classes="screen-title")
        yield Input(placeholder="filter: label~ADP max_dose>60Gy machine=TrueBeam* received>2026-01-01 (Enter)",
                    id="metrics-filter")
        table: DataTable[str] = DataTable(cursor_type="row", zebra_stripes=True, id="metrics-plans")
        table.add_columns(*(h for _, h in COLUMNS))
        yield table
        with Horizontal(id="metrics-lower"):
            with Vertical(id="metrics-side"):
                beams: DataTable[str] = DataTable(cursor_type="none", show_cursor=False, id="metrics-beams")
                beams.add_columns("beam", "E", "MU", "gantry")
                yield beams
                yield SelectionList[str](id="metrics-rois")
            with Vertical(id="metrics-right"):
                yield DvhPlot(id="metrics-plot")
                yield Static("", id="metrics-readout")
        yield Static("", id="metrics-hint", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        self.reload()

    # -- plans ------------------------------------------------------------------------------------------------
    def reload(self) -> None:
        self._load()

    def metrics_changed(self) -> None:
        """The app calls this when metrics of some plan were stored (MetricsComputed)."""
        self.reload()

    # @work: the worker calls the coroutine function when it starts, so an exclusive worker cancelled before it
    # starts leaves no never-awaited coroutine behind
    @work(group="plans", exclusive=True, exit_on_error=False)
    async def _load(self) -> None:
        field, _ = COLUMNS[self.sort_index]
        sort = ("-" if self.descending else "") + field
        try:
            plans = await asyncio.to_thread(self.api.plan_metrics, tuple(self.where), sort)
        except ValueError as exc:  # QueryError: the filter the operator typed
            self.hint(str(exc), error=True)
            return
        self.plans = plans
        table = self.query_one("#metrics-plans", DataTable)
        keep = self.shown_plan
        table.clear()
        for p in plans:
            table.add_row(*plan_cells(p), key=p.plan_uid)
        where = " and ".join(self.where) or "all plans"
        self.hint(f"{len(plans)} plans ({where}), sorted by {COLUMNS[self.sort_index][1]}"
                  f"{' descending' if self.descending else ''}")
        if plans:
            row = next((i for i, p in enumerate(plans) if p.plan_uid == keep), 0)
            table.move_cursor(row=row)
            self.select(plans[row].plan_uid)
        else:
            self.select(None)

    def hint(self, text: str, error: bool = False) -> None:
        self.query_one("#metrics-hint", Static).update(plain(text, "bold red" if error else "dim", lines=True))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "metrics-plans" and event.row_key.value is not None:
            self.select(str(event.row_key.value))

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        if event.data_table.id == "metrics-plans":
            self._sort_by(event.column_index)

    def action_sort(self) -> None:
        """Next column (each column first descending, then ascending)."""
        if self.descending:
            self.descending = False
        else:
            self.sort_index, self.descending = (self.sort_index + 1) % len(COLUMNS), True
        self.reload()

    def _sort_by(self, index: int) -> None:
        self.sort_index, self.descending = index, not (index == self.sort_index and self.descending)
        self.reload()

    def action_filter(self) -> None:
        self.query_one("#metrics-filter", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.where = [event.value.strip()] if event.value.strip() else []
        self.query_one("#metrics-plans", DataTable).focus()
        self.reload()

    def action_back(self) -> None:
        box = self.query_one("#metrics-filter", Input)
        if box.has_focus and box.value:
            box.value = ""
            return
        self.app.pop_screen()

    # -- the selected plan ------------------------------------------------------------------------------------
    def select(self, plan_uid: str | None) -> None:
        if plan_uid == self.shown_plan and plan_uid is not None and self.curves:
            return
        self.shown_plan = plan_uid
        plan = next((p for p in self.plans if p.plan_uid == plan_uid), None)
        beams = self.query_one("#metrics-beams", DataTable)
        beams.clear()
        for b in plan.beams if plan else ():
            energy = f"{b.energy:g}{'X' if b.energy_unit == 'MV' else ''}" if b.energy is not None else ""
            beams.add_row(*cells((b.name, energy, _num(b.mu, 0), b.gantry)))
        self._curves(plan_uid)

    @work(group="curves", exclusive=True, exit_on_error=False)
    async def _curves(self, plan_uid: str | None) -> None:
        curves = await asyncio.to_thread(self.api.dvh_curves, plan_uid) if plan_uid else []
        self.curves = curves
        self.shown_rois = {c.roi for c in curves if c.kind != "EXTERNAL"} or {c.roi for c in curves}
        top = max((c.max_gy or 0.0 for c in curves), default=0.0)
        self.cursor_gy = round(top * 0.5, 1)
        rois = self.query_one("#metrics-rois", SelectionList)
        rois.clear_options()
        rois.add_options([Selection(plain(c.roi, colour(i)), c.roi, c.roi in self.shown_rois)
                          for i, c in enumerate(curves)])
        self.redraw()

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged) -> None:
        self.shown_rois = set(event.selection_list.selected)
        self.redraw()

    def action_all_rois(self) -> None:
        rois = self.query_one("#metrics-rois", SelectionList)
        if len(rois.selected) == len(self.curves):
            rois.deselect_all()
        else:
            rois.select_all()

    def action_cursor(self, direction: int) -> None:
        if not self.curves:
            return
        plot = self.query_one(DvhPlot)
        step = plot.x_max / max(10, 2 * (plot.size.width - 5))
        self.cursor_gy = round(min(max(self.cursor_gy + direction * max(step, 0.1), 0.0), plot.x_max), 2)
        self.redraw()

    def redraw(self) -> None:
        self.query_one(DvhPlot).show(self.curves, self.shown_rois, self.cursor_gy if self.curves else None)
        self.query_one("#metrics-readout", Static).update(
            readout(self.curves, self.shown_rois, self.cursor_gy) if self.curves else "")
