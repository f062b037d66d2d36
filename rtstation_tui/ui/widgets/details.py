"""Details of the selected plan: facts, beams, the reference chain with every object, what is missing, where it
came from and its send history. Rendered from a ``PlanDetails`` computed in a worker (``StationAPI.plan_details``).

Why Rich tables in one Static: the pane is read, not navigated; one renderable re-renders in one go and scrolls
as a whole inside the VerticalScroll around it. A str cell of a Rich table is markup: every cell holding a value
is ``plain`` Text (labels.py says why).
"""

from __future__ import annotations

import time

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from ...engine.plans.queries import JobInfo, PlanDetails
from ..labels import Palette, literal, plain

STATES = {"ready": "ready, complete", "ready-incomplete": "ready, incomplete", "waiting": "receiving…",
          "receiving": "receiving…"}


def when(ts: float) -> str:
    """Received time as operators read it (local time, minutes)."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "?"


def _facts(d: PlanDetails, pal: Palette) -> Table:
    t = Table.grid(padding=(0, 1))
    t.add_column(style="bold", no_wrap=True)
    t.add_column()
    t.add_row("Patient", plain(f"{d.patient_id}  {d.patient_name.replace('^', ' ')}"))
    t.add_row("Plan", Text.assemble((literal(d.label or "(no label)"), "bold"), f"  {literal(d.name)}" if d.name
                                    else "", "  ion" if d.ion else ""))
    t.add_row("Machine", plain(", ".join(d.machines) or "?"))
    t.add_row("Approval", plain(d.approval or "?", pal.ok if d.approval == "APPROVED" else ""))
    t.add_row("Fractions", str(d.fractions) if d.fractions is not None else "?")
    status = plain(STATES.get(d.state, d.state), pal.ok if d.complete else pal.warn)
    if d.missing:
        status.append(f" — {literal(d.missing)}")
    t.add_row("State", status)
    if d.conflicts:
        t.add_row("Conflicts", Text(f"{d.conflicts} object(s) received twice with different content", pal.error))
    return t


def _beams(d: PlanDetails) -> Table:
    t = Table(title="Beams", title_justify="left", expand=False, box=None, padding=(0, 1), show_edge=False)
    for col, just in (("#", "right"), ("name", "left"), ("type", "left"), ("energy", "right"), ("MU", "right")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for beam in d.beams:
        t.add_row(*map(plain, (beam.number, beam.name, beam.radiation, beam.energy,
                               f"{beam.mu:.1f}" if beam.mu is not None else "")))
    return t


def _chain(d: PlanDetails, pal: Palette) -> Table:
    """Every object grouped by part and series, in send order, with its source and arrival."""
    t = Table(title="Reference chain", title_justify="left", box=None, padding=(0, 1), show_edge=False)
    for col in ("object", "n", "from", "received"):
        t.add_column(col, justify="right" if col == "n" else "left", no_wrap=col != "from")
    for g in d.chain:
        name = g.modality if g.part != "image" else f"{g.modality} series …{g.series_uid[-8:]}"
        t.add_row(plain(name, pal.error if g.conflict else ""), str(g.count), plain(", ".join(g.sources)),
                  when(g.received_at))
    for miss in d.missing_groups:
        t.add_row(plain(f"{miss.what} missing", f"bold {pal.warn}"), str(miss.count),
                  plain(f"e.g. …{miss.example_uid[-16:]}", "dim"), "")
    return t


def _history(rows: tuple[JobInfo, ...], pal: Palette) -> RenderableType:
    t = Table(title="Send history", title_justify="left", box=None, padding=(0, 1), show_edge=False)
    for col in ("node", "state", "instances", "error"):
        t.add_column(col)
    for r in rows:
        style = pal.error if r.state == "failed" else pal.ok if r.state == "done" else ""
        t.add_row(plain(r.node), plain(r.state, style),
                  f"{r.done}/{r.total}" + (f" ({r.failed} failed)" if r.failed else ""), plain(r.error or ""))
    return t


def render_details(d: PlanDetails, pal: Palette) -> RenderableType:
    parts: list[RenderableType] = [_facts(d, pal)]
    if d.held_by and not d.complete:
        parts.append(plain(f"Held by rule {', '.join(d.held_by)}: sent when the bundle is complete", pal.warn))
    if d.beams:
        parts += [Text(), _beams(d)]
    parts += [Text(), _chain(d, pal)]
    if d.history:
        parts += [Text(), _history(d.history, pal)]
    return Group(*parts)


class PlanDetailsView(Static):
    """Shows one plan; ``show(None, hint)`` shows a hint instead (patient selected, nothing received yet)."""

    plan_uid: str | None = None  # the plan on display (tests and the app wait on it)

    def show(self, details: PlanDetails | None, hint: str = "", palette: Palette | None = None) -> None:
        self.plan_uid = details.plan_uid if details is not None else None
        if details is None:
            self.update(plain(hint or "Select a plan to see its details.", "dim", lines=True))
        else:
            self.update(render_details(details, palette or Palette()))
