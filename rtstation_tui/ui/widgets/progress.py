"""The progress area: one bar per active send job (node, plan, instances and bytes, rate) and a queue summary.

Fed by the sender's ``JobChanged`` / ``JobProgress`` events (duck-typed: the events live in the engine; this
widget only reads their fields). Without a sender nothing is ever shown and the area takes no room.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import Label, ProgressBar

from ..labels import plain

ACTIVE = {"queued", "sending", "waiting-retry"}


def mb(n: int | float) -> str:
    return f"{n / 1e6:.1f}"


class JobRow(Horizontal):
    def __init__(self, job_id: int, node: str, label: str) -> None:
        super().__init__(id=f"job-{job_id}", classes="job")
        self.job_id, self.node, self.label = job_id, node, label
        self._pending: tuple[Any, ...] | None = None

    def compose(self) -> ComposeResult:
        yield Label(plain(f"{self.node} ← {self.label}"), classes="job-name")  # a node name, a plan label
        yield ProgressBar(show_eta=False, classes="job-bar")
        yield Label("", classes="job-text")

    def show(self, done: int, total: int, bytes_done: int = 0, bytes_total: int = 0, rate: float = 0.0,
             state: str = "sending") -> None:
        try:
            bar = self.query_one(ProgressBar)
        except NoMatches:  # events can arrive before the row has composed its children
            self._pending = (done, total, bytes_done, bytes_total, rate, state)
            return
        bar.update(total=max(total, 1), progress=done)
        text = f"{done}/{total}"
        if bytes_total:
            text += f"  {mb(bytes_done)}/{mb(bytes_total)} MB"
        if state != "sending":
            text += f"  {state}"
        elif rate:
            text += f"  {rate:.0f}/s"
        self.query_one(".job-text", Label).update(plain(text))

    def on_mount(self) -> None:
        if self._pending is not None:
            self.show(*self._pending)


class ProgressArea(Vertical):
    """Rows appear on the first event of a job and go when it is done, failed or cancelled."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: dict[int, JobRow] = {}
        self.states: dict[int, str] = {}

    def on_mount(self) -> None:
        self.display = False

    def job_changed(self, ev: Any) -> None:
        self.states[ev.job_id] = ev.state
        if ev.state in ACTIVE:
            row = self._row(ev)
            row.show(ev.done, ev.total, state=ev.state)
        else:
            row = self.rows.pop(ev.job_id, None)
            if row is not None:
                row.remove()
        self.display = bool(self.rows)

    def job_progress(self, ev: Any) -> None:
        if self.states.get(ev.job_id) not in (None, *ACTIVE):
            return  # a late progress event for a finished job
        self._row(ev).show(ev.done, ev.total, ev.bytes_done, ev.bytes_total, ev.rate)
        self.display = True

    def _row(self, ev: Any) -> JobRow:
        row = self.rows.get(ev.job_id)
        if row is None:
            row = self.rows[ev.job_id] = JobRow(ev.job_id, ev.node, ev.label or ev.plan_uid[-12:])
            self.mount(row)
        return row

    def counts(self) -> tuple[int, int]:
        """(jobs waiting or running, jobs failed) since the console started."""
        values = list(self.states.values())
        return sum(v in ACTIVE for v in values), sum(v == "failed" for v in values)
