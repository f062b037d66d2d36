"""The main screen: tree of patients and plans, details of the selected plan, progress, log and status line.

Why the reading pattern is always "async worker → ``asyncio.to_thread(api…)`` → apply on the loop": index
queries must never run on the event loop (a big patient's chain takes a while) and results must never be applied
from a thread, so no ``call_from_thread`` is needed anywhere.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Iterable

from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Input, Log
from textual.worker import Worker, WorkerState

from ...engine.api import EchoOutcome, StationAPI, human_bytes
from ...engine.config.model import Config
from ...engine.events import JobChanged, JobProgress
from ...engine.plans.queries import PatientRow, PlanRow
from ...engine.plans.treefilter import SORT_NAMES, SORTS, FilterError, TreeFilter, parse_filter, sort_patients
from ..commands.registry import CommandScope, bindings
from ..labels import JobState, Palette
from ..widgets.bars import StationHeader, StatusLine
from ..widgets.details import PlanDetailsView
from ..widgets.logpane import LogPane
from ..widgets.plantree import NodeData, PlanTree
from ..widgets.progress import ProgressArea
from .firstscreen import FirstScreen

DETAILS_MIN_INTERVAL = 2.0  # seconds between detail reloads while objects of the shown patient arrive
OPEN_MATCHES = 20  # patients a filter opens to show their matching plans (as label matches always did)


def patient_facts(row: PatientRow) -> str:
    """What the sort orders and filter terms look at, so the operator can see why a patient sits where it does."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(row.received)) if row.received else "?"
    facts = [f"Received {when}", f"plans from {', '.join(row.sources) or '?'}",
             f"modalities {' '.join(row.modalities) or '?'}"]
    if row.failed or row.unsent:
        facts.append(f"{row.failed} with a failed send, {row.unsent} never sent")
    return "\n\n" + "\n".join(facts)


class FilterInput(CommandScope, Input):
    """The tree's filter box. Enter hands the focus to the tree at once, as the key arrives: a priority binding, run
    by the app before it forwards the keys behind it. As the Input's own binding it ran only when the box handled
    Enter, after the app had already handed it the next keys, so a fast ``Enter j j`` (or a busy station) typed
    ``jj`` into the filter, which then matched nothing, instead of moving the cursor."""

    COMMAND_SCOPE = "filter-box"
    BINDINGS = bindings("filter-box")

    async def action_submit(self) -> None:
        if not self.value.strip():
            self.display = False
        self.screen.set_focus(self.screen.query_one(PlanTree))  # now, not after a refresh as ``focus()`` would
        await super().action_submit()


class MainScreen(FirstScreen, CommandScope, Screen[None]):
    AUTO_FOCUS = "#tree"
    COMMAND_SCOPE = "main"
    BINDINGS = bindings("main")

    def __init__(self, config: Config, api: StationAPI, log_level: int, palette: Palette | None = None) -> None:
        super().__init__()
        self.config = config
        self.api = api
        self.log_level = log_level
        self.palette = palette or Palette()
        self.filter_text = ""
        self.sort_key = SORTS[0]  # newest received first
        self.ready = False  # the first patient list is in the tree
        self._dirty: set[str] = set()
        self._refreshing = False
        self.shown_plan: str | None = None
        self._details_at = 0.0
        self._widgets: dict[str, Any] = {}
        self.echoes: dict[str, EchoOutcome] = {}  # the start-up C-ECHO of an empty store's first screen

    def compose(self) -> ComposeResult:
        st = self.config.station
        folder = self.config.import_.folder
        yield StationHeader(st.ae_title, f"{st.bind}:{st.port}", folder.name if folder else "off", id="header")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield FilterInput(placeholder="filter: ID, name, label; ae: mod: state: node: since: (? help)",
                                  id="filter")
                yield PlanTree(id="tree")
            with VerticalScroll(id="right"):  # Tab reaches it: ↑↓ PgUp PgDn scroll long chains
                yield PlanDetailsView(id="details")
        yield ProgressArea(id="progress")
        yield LogPane(self.log_level, id="logpane")
        yield StatusLine(id="status")
        # compact, no palette hint (Ctrl+P is on the help screen): 80 columns hold the most used keys, S and ? too
        yield Footer(compact=True, show_command_palette=False)

    # Widgets are looked up once (compose order guarantees them): timers and flushes that run while the screen is
    # taken down at exit then touch detached widgets harmlessly instead of failing a query.
    @property
    def tree(self) -> PlanTree:
        return self._widget("tree", PlanTree)

    @property
    def header(self) -> StationHeader:
        return self._widget("header", StationHeader)

    @property
    def status(self) -> StatusLine:
        return self._widget("status", StatusLine)

    @property
    def progress(self) -> ProgressArea:
        return self._widget("progress", ProgressArea)

    @property
    def logpane(self) -> LogPane:
        return self._widget("logpane", LogPane)

    def _widget(self, key: str, cls: type[Any]) -> Any:
        w = self._widgets.get(key)
        if w is None:
            w = self._widgets[key] = self.query_one(cls)
        return w

    def on_mount(self) -> None:
        for key in ("tree", "header", "status", "progress", "logpane"):
            getattr(self, key)
        self.query_one("#filter", Input).display = False
        self.query_one(PlanDetailsView).show(None, "Waiting for the index…")
        self.set_palette(self.palette)
        self.run_worker(self.load_patients(), group="load", exit_on_error=False)

    def set_palette(self, palette: Palette) -> None:
        self.palette = palette
        for w in (self.tree, self.header, self.status):
            w.palette = palette
        self.header.update(self.header.render_text())
        self.status.refresh_text()
        self.tree.relabel_all()
        if self.shown_plan is not None:
            self.load_details()

    # -- loading --------------------------------------------------------------------------------------------------
    async def load_patients(self) -> None:
        """The top level: one row per patient (filtered by ``filter_text``, in ``sort_key`` order), children stay
        unloaded except for patients the filter opens to show their matching plans."""
        text = self.filter_text
        flt, problem = self._parse_filter(text)

        def read() -> tuple[list[PatientRow], list[str], bool]:
            if flt is None:
                return [], [], True
            if not flt.on:
                rows = self.api.patients()
                return rows, [], bool(rows) or self.api.status().receives
            rows, open_ = self._matching(flt, self.api.patients(flt.text))
            return rows, [*open_, *(self.api.label_matches(flt.text) if flt.text else [])], True

        keep_open = self.tree.expanded_patients()  # clearing or changing the filter keeps open patients open
        rows, open_, receives = await asyncio.to_thread(read)
        self.tree.tree_filter = flt or TreeFilter()
        self.tree.sort_key = self.sort_key
        self.tree.show_patients(sort_patients(rows, self.sort_key))
        for pid in dict.fromkeys([*keep_open, *open_]):  # matched by a plan: open the patient so the plan is in view
            node = self.tree.patient_node(pid)
            if node is not None:
                node.expand()
        self.ready = True
        self._empty = not rows and not text and receives
        if rows:
            hint = "Select a plan to see its details."
        elif problem:
            hint = f"{problem}\n\nEsc clears the filter; ? lists the filter terms."
        elif flt is not None and flt.text and flt == TreeFilter(flt.text):
            hint = f"No patient ID, name or plan label contains {text!r} (Esc clears the filter)."
        elif text:
            hint = f"No plan matches {text!r} (Esc clears the filter)."
        else:
            hint = self._how_to_send_in(receives)
        self.query_one(PlanDetailsView).show(None, hint)
        self.shown_plan = None
        self.mark_dirty(())
        self._echo_if_first_screen()

    @staticmethod
    def _parse_filter(text: str) -> tuple[TreeFilter | None, str]:
        """The filter box's terms (None: they mean nothing, so nothing is listed) and what is wrong with them. A
        term with an unknown key is also tried as a plain word (a patient ID such as ``PAT:123``)."""
        try:
            return parse_filter(text), ""
        except FilterError as exc:
            return (parse_filter(text, strict=False) if exc.unknown_key else None), str(exc)

    def _matching(self, flt: TreeFilter, rows: list[PatientRow]) -> tuple[list[PatientRow], list[str]]:
        """(Blocking.) The patients the filter lists, and those to open. Terms about plans (source AE, modality,
        time, send state) list a patient only when one of its plans passes them."""
        rows = [r for r in rows if flt.patient_may_match(r)]
        if flt == TreeFilter(flt.text):
            return rows, []
        kept: list[PatientRow] = []
        for row in rows:
            if any(flt.shows(row, plan) for plan in self.api.plans_of(row.patient_id)):
                kept.append(row)
        return kept, [r.patient_id for r in kept[:OPEN_MATCHES]]

    def action_cycle_sort(self) -> None:
        """The next order of the tree (``treefilter.SORTS``); open patients stay open."""
        self.sort_key = SORTS[(SORTS.index(self.sort_key) + 1) % len(SORTS)]
        self.notify(f"Tree sorted by {SORT_NAMES[self.sort_key]} (o: next order)", title="Sort", timeout=4)
        self.run_worker(self.load_patients(), group="filter", exclusive=True, exit_on_error=False)

    def mark_dirty(self, patients: Iterable[str]) -> None:
        """Patients whose rows (and plans, if loaded) must be re-read; one refresh loop at a time."""
        self._dirty.update(patients)
        if self.ready and self._dirty and not self._refreshing:
            self._refreshing = True
            self.run_worker(self._refresh_loop(), group="refresh", exit_on_error=False)

    async def _refresh_loop(self) -> None:
        try:
            while self._dirty:
                pids, self._dirty = self._dirty, set()
                loaded = pids & self.tree.loaded
                flt = self.tree.tree_filter
                unconnected = {pid for pid in loaded if self.tree.unconnected_open(pid)}
                rows, plans = await asyncio.to_thread(self._read, pids, loaded, flt)
                self.tree.upsert_patients(rows)
                self._refresh_patient_hint(rows)
                for pid, prs in plans.items():
                    self.tree.set_plans(pid, prs)
                for pid in unconnected:  # an open list is kept true; closed ones are read when opened
                    self.tree.set_unconnected(pid, await asyncio.to_thread(self.api.unconnected, pid))
        finally:
            self._refreshing = False

    def _read(self, pids: set[str], loaded: set[str], flt: TreeFilter
              ) -> tuple[list[PatientRow], dict[str, list[PlanRow]]]:
        rows = self.api.patients(flt.text, sorted(pids))
        return self._matching(flt, rows)[0], {pid: self.api.plans_of(pid) for pid in loaded}

    async def _load_children(self, patient_id: str) -> None:
        plans = await asyncio.to_thread(self.api.plans_of, patient_id)
        self.tree.set_plans(patient_id, plans)

    async def _load_unconnected(self, patient_id: str) -> None:
        members = await asyncio.to_thread(self.api.unconnected, patient_id)
        self.tree.set_unconnected(patient_id, members)

    def on_plan_tree_load_children(self, message: PlanTree.LoadChildren) -> None:
        self.run_worker(self._load_children(message.patient_id), group="children", exit_on_error=False)

    def on_plan_tree_load_unconnected(self, message: PlanTree.LoadUnconnected) -> None:
        self.run_worker(self._load_unconnected(message.patient_id), group="children", exit_on_error=False)

    # -- details --------------------------------------------------------------------------------------------------
    def _refresh_patient_hint(self, rows: list[PatientRow]) -> None:
        """The patient under the cursor got a new row (a plan arrived): the details say what its tree row says."""
        data = self.tree.cursor_data
        if data is not None and data.kind == "patient" and any(r.patient_id == data.patient_id for r in rows):
            self._show_hint(data)

    def _show_hint(self, data: NodeData | None) -> None:
        row = self.tree.patients.get(data.patient_id) if data is not None else None
        hint = (f"Patient {row.patient_id}  {row.patient_name.replace('^', ' ')}: {row.plans} plan"
                f"{'' if row.plans == 1 else 's'}. Enter opens it; s sends everything stored for it.{patient_facts(row)}") if row else ""
        if data is not None and data.kind == "unconnected":
            hint = "Objects of this patient that no plan references (Enter lists them, s sends them)."
        elif data is not None and data.kind == "member":
            hint = f"{len(data.sop_uids)} {data.modality} objects no plan references (s sends them)."
        self.query_one(PlanDetailsView).show(None, hint)
        if row and data is not None and data.kind == "patient":
            self.run_worker(self._patient_usage(row.patient_id, hint), group="usage", exclusive=True,
                            exit_on_error=False)

    async def _patient_usage(self, patient_id: str, hint: str) -> None:
        """The patient's disk usage, and the store's, under the hint (read off the loop: the index sums sizes)."""
        n, nbytes = await asyncio.to_thread(self.api.store_usage, patient_id)
        total_n, total = await asyncio.to_thread(self.api.store_usage)
        data = self.tree.cursor_data
        if data is not None and data.kind == "patient" and data.patient_id == patient_id:
            self.query_one(PlanDetailsView).show(None, f"{hint}\nStored: {n} objects, {human_bytes(nbytes)} (the "
                                                 f"whole store: {total_n} objects, {human_bytes(total)}).")

    def on_tree_node_highlighted(self, event: PlanTree.NodeHighlighted) -> None:  # type: ignore[type-arg]
        self._show_node(event.node.data)

    def rows_removed(self) -> None:
        """Rows left the tree (a delete): the cursor now stands on another row without a highlight event, so the
        details would keep describing what is gone. Show what the cursor is on once the tree has redrawn."""
        self.shown_plan = None
        self.call_after_refresh(lambda: self._show_node(self.tree.cursor_data))

    def _show_node(self, data: Any) -> None:
        if data is None or data.kind != "plan":
            self.shown_plan = None
            self._show_hint(data)
            return
        if data.plan_uid != self.shown_plan:
            self.shown_plan = data.plan_uid
            self.load_details()

    def load_details(self) -> None:
        if self.shown_plan is not None:
            self._details_at = time.monotonic()
            self.run_worker(self._details(self.shown_plan), group="details", exclusive=True, exit_on_error=False)

    async def _details(self, plan_uid: str) -> None:
        details = await asyncio.to_thread(self.api.plan_details, plan_uid)
        if plan_uid == self.shown_plan:
            self.query_one(PlanDetailsView).show(details, "This plan is no longer in the index.", self.palette)

    # -- filter ---------------------------------------------------------------------------------------------------
    def action_filter(self) -> None:
        """``/`` (a priority binding: the app runs it as the key arrives, before it forwards the keys behind it).

        The focus moves now, so what is typed or pasted right behind ``/`` goes into the box: as an ordinary
        binding it ran only when the tree handled ``/``, after the app had already handed it the next keys, which
        the tree then took as commands (``/DOE`` pasted: ``D`` asked to delete). A ``/`` typed into a text box,
        or in the log pane (its own search), is left to them."""
        focused = self.focused
        if focused is not None and (isinstance(focused, Input) or
                                    any(isinstance(a, LogPane) for a in focused.ancestors_with_self)):
            raise SkipAction()
        box = self.query_one("#filter", Input)
        box.display = True
        self.set_focus(box)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.filter_text = event.value.strip()
            self.run_worker(self._filter_soon(), group="filter", exclusive=True, exit_on_error=False)

    @property
    def filtering(self) -> bool:
        """A filter query is pending or running (tests wait for it to settle)."""
        return any(w.group == "filter" and not w.is_finished for w in self.workers)

    async def _filter_soon(self) -> None:
        await asyncio.sleep(0.15)  # debounce typing: one query when the operator pauses
        await self.load_patients()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":  # FilterInput.action_submit has hidden an empty box and focused the tree
            event.stop()

    def action_clear_filter(self) -> None:
        """Esc (a priority binding, like ``/``: the focus is on the tree before the next key is forwarded); with the
        focus elsewhere (the log pane's own Esc) or no filter shown, the key is left to the others."""
        box = self.query_one("#filter", Input)
        if not (box.display and (box.has_focus or self.tree.has_focus)):
            raise SkipAction()
        box.value = ""
        box.display = False
        self.filter_text = ""
        self.run_worker(self.load_patients(), group="filter", exclusive=True, exit_on_error=False)
        self.set_focus(self.tree)

    def action_toggle_log(self) -> None:
        log = self.query_one("#log", Log)
        if log.has_focus:
            self.tree.focus()
        else:
            log.focus()

    # -- engine events (already batched by the app, at most 10 times a second) ------------------------------------
    def on_job_event(self, ev: JobChanged | JobProgress) -> None:
        if isinstance(ev, JobChanged):
            self.progress.job_changed(ev)
            jobs = dict(self.tree.sends.get(ev.plan_uid, {}))
            jobs[ev.node] = JobState(ev.node, ev.state, ev.done, ev.total, ev.commitment)
            self.tree.set_sends(ev.plan_uid, jobs)
            plan = self.tree.plans.get(ev.plan_uid)
            if plan is not None and self.tree.tree_filter.by_plan:  # state:failed … may no longer list it
                self.mark_dirty({plan.patient_id})
            if ev.plan_uid == self.shown_plan and ev.state in ("done", "failed", "cancelled"):
                self.load_details()
        else:
            self.progress.job_progress(ev)
            prev = self.tree.sends.get(ev.plan_uid, {}).get(ev.node)
            if prev is None or prev.done != ev.done:
                jobs = dict(self.tree.sends.get(ev.plan_uid, {}))
                jobs[ev.node] = JobState(ev.node, "sending", ev.done, ev.total)
                self.tree.set_sends(ev.plan_uid, jobs)

    def bundle_touched(self, patients: set[str], plans: set[str], settled: bool) -> None:
        """Objects arrived or bundles changed state: update rows in place; reload details when they concern it."""
        self.mark_dirty(patients)
        if self.shown_plan is None:
            return
        shown = self.tree.plans.get(self.shown_plan)
        if self.shown_plan in plans or (shown is not None and shown.patient_id in patients and (
                settled or time.monotonic() - self._details_at > DETAILS_MIN_INTERVAL)):
            self.load_details()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Workers never take the console down (the station must keep receiving): their errors are shown.

        Only real errors: a worker replaced by a newer one (typing in the filter) ends cancelled, which is no error;
        and an error without a message is named by its type."""
        error = event.worker.error
        if error is None or event.state != WorkerState.ERROR or isinstance(error, asyncio.CancelledError):
            return
        self.notify(str(error) or type(error).__name__, title=f"Error in {event.worker.name}", severity="error",
                    timeout=15)
