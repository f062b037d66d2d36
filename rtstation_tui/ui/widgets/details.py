"""Details of the selected plan: facts, beams, the reference chain with every object, what is missing, where it
came from and its send history. Rendered from a ``PlanDetails`` computed in a worker (``Facade.details``).

Why Rich tables in one Static: the pane is read, not navigated; one renderable re-renders in one go and scrolls
as a whole inside the VerticalScroll around it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from ...engine.plans.bundle import Bundle, Member
from ..facade import PlanDetails
from ..labels import Palette

STATES = {"ready": "ready, complete", "ready-incomplete": "ready, incomplete", "waiting": "receiving…",
          "receiving": "receiving…"}


def when(ts: float) -> str:
    """Received time as operators read it (local time, minutes)."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "?"


def _facts(b: Bundle, state: str, pal: Palette) -> Table:
    t = Table.grid(padding=(0, 1))
    t.add_column(style="bold", no_wrap=True)
    t.add_column()
    t.add_row("Patient", f"{b.patient_id}  {b.patient_name.replace('^', ' ')}")
    t.add_row("Plan", Text.assemble((b.label or "(no label)", "bold"), f"  {b.name}" if b.name else "",
                                    "  ion" if b.ion else ""))
    t.add_row("Machine", ", ".join(b.machines) or "?")
    t.add_row("Approval", Text(b.approval or "?", pal.ok if b.approval == "APPROVED" else ""))
    t.add_row("Fractions", str(b.fractions) if b.fractions is not None else "?")
    status = Text(STATES.get(state, state), pal.ok if b.complete else pal.warn)
    if b.missing:
        status.append(f" — {b.missing_summary()}")
    t.add_row("State", status)
    if b.conflicts:
        t.add_row("Conflicts", Text(f"{len(b.conflicts)} object(s) received twice with different content",
                                    pal.error))
    return t


def _beams(b: Bundle) -> Table:
    t = Table(title="Beams", title_justify="left", expand=False, box=None, padding=(0, 1), show_edge=False)
    for col, just in (("#", "right"), ("name", "left"), ("type", "left"), ("energy", "right"), ("MU", "right")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for beam in b.beams:
        mu = beam.get("mu")
        t.add_row(str(beam.get("number") or ""), beam.get("name") or "", beam.get("radiation") or "",
                  str(beam.get("energy") or ""), f"{mu:.1f}" if isinstance(mu, (int, float)) else "")
    return t


def _chain(b: Bundle, pal: Palette) -> Table:
    """Every object grouped by part and series, in send order, with its source and arrival."""
    t = Table(title="Reference chain", title_justify="left", box=None, padding=(0, 1), show_edge=False)
    for col in ("object", "n", "from", "received"):
        t.add_column(col, justify="right" if col == "n" else "left", no_wrap=col != "from")
    groups: dict[tuple[str, str, str], list[Member]] = defaultdict(list)
    for m in b.ordered():
        groups[(m.part, m.modality, m.series_uid)].append(m)
    for (part, modality, series), members in groups.items():
        sources = sorted({m.calling_ae or m.source for m in members})
        name = modality if part != "image" else f"{modality} series …{series[-8:]}"
        conflict = any(m.conflict for m in members)
        t.add_row(Text(name, pal.error if conflict else ""), str(len(members)), ", ".join(sources),
                  when(max(m.received_at for m in members)))
    missing: dict[str, list[str]] = defaultdict(list)
    for miss in b.missing:
        missing[miss.modality or miss.kind].append(miss.uid)
    for what, uids in missing.items():  # one row per kind: 97 missing CT slices are one fact, not 97
        t.add_row(Text(f"{what} missing", f"bold {pal.warn}"), str(len(uids)), Text(f"e.g. …{uids[0][-16:]}", "dim"),
                  "")
    return t


def _history(rows: tuple[Any, ...], pal: Palette) -> RenderableType:
    t = Table(title="Send history", title_justify="left", box=None, padding=(0, 1), show_edge=False)
    for col in ("node", "state", "instances", "error"):
        t.add_column(col)
    for r in rows:
        style = pal.error if r.state == "failed" else pal.ok if r.state == "done" else ""
        t.add_row(r.node, Text(r.state, style), f"{r.done}/{r.total}" + (f" ({r.failed} failed)" if r.failed else ""),
                  r.error or "")
    return t


def render_details(d: PlanDetails, pal: Palette) -> RenderableType:
    parts: list[RenderableType] = [_facts(d.bundle, d.state, pal)]
    if d.held_by and not d.bundle.complete:
        parts.append(Text(f"Held by rule {', '.join(d.held_by)}: sent when the bundle is complete", pal.warn))
    if d.bundle.beams:
        parts += [Text(), _beams(d.bundle)]
    parts += [Text(), _chain(d.bundle, pal)]
    if d.history:
        parts += [Text(), _history(d.history, pal)]
    return Group(*parts)


class PlanDetailsView(Static):
    """Shows one plan; ``show(None, hint)`` shows a hint instead (patient selected, nothing received yet)."""

    plan_uid: str | None = None  # the plan on display (tests and the app wait on it)

    def show(self, details: PlanDetails | None, hint: str = "", palette: Palette | None = None) -> None:
        self.plan_uid = details.bundle.plan_uid if details is not None else None
        if details is None:
            self.update(Text(hint or "Select a plan to see its details.", "dim"))
        else:
            self.update(render_details(details, palette or Palette()))
