"""Details of the selected plan: facts, beams, the reference chain with every object, what is missing, where it
came from and its send history. Rendered from a ``PlanDetails`` computed in a worker (``StationAPI.plan_details``).

Why Rich tables in one Static: the pane is read, not navigated; one renderable re-renders in one go and scrolls
as a whole inside the VerticalScroll around it. A str cell of a Rich table is markup: every cell holding a value
is ``plain`` Text (labels.py says why).

At 80x24 the pane is ~44 columns wide, and every fact must stay readable: numbers never shrink (counts are
``no_wrap`` with their own width), names and errors wrap instead of being cut, the received time of the chain is
short (the full date is a fact above), and the latest send state per node is a fact too (the tree row, one line,
cannot hold three nodes).
"""

from __future__ import annotations

import time

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from ...engine.api import human_bytes
from ...engine.plans.queries import JobInfo, PlanDetails
from ..labels import Palette, commitment_failed, literal, plain

STATES = {"ready": "ready, complete", "ready-incomplete": "ready, incomplete", "waiting": "receiving…",
          "receiving": "receiving…"}


def when(ts: float) -> str:
    """Received time as operators read it (local time, minutes)."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "?"


def clock_or_day(ts: float, newest: float) -> str:
    """'09:30' on the newest arrival's day, else '01-02 09:30': the chain's column stays narrow."""
    if not ts:
        return "?"
    same_day = time.localtime(ts)[:3] == time.localtime(newest)[:3]
    return time.strftime("%H:%M" if same_day else "%m-%d %H:%M", time.localtime(ts))


def _sends(history: tuple[JobInfo, ...], pal: Palette) -> Text:
    """The newest job per node, in words, a line each: 'QA done 4/4', 'ARCHIVE failed 0/4 (association rejected)'."""
    latest: dict[str, JobInfo] = {}
    for job in sorted(history, key=lambda j: j.id):
        latest[job.node] = job
    text = Text()
    for i, job in enumerate(latest.values()):
        style = pal.error if job.state == "failed" else pal.ok if job.state == "done" else pal.accent
        text.append("\n" if i else "")
        text.append(f"{literal(job.node)} {job.state} {job.done}/{job.total}", style)
        if job.derived:  # a SEG or classic frames the chain made are part of the total: say how many
            text.append(f" ({job.derived} derived)")
        if job.state == "failed" and job.error:
            text.append(f" ({literal(job.error)})")
        if job.commitment:  # the node's word that it keeps them: sent → committed or not, with the reasons
            text.append(f", {literal(commitment_text(job.commitment))}",
                        pal.error if commitment_failed(job.commitment) else pal.ok if job.commitment == "committed"
                        else pal.accent)
    return text


def commitment_text(state: str) -> str:
    """'committed', 'commit failed: 1 instances (0x0112 …)', 'sent, waiting for commitment'."""
    return "sent, waiting for storage commitment" if state == "waiting" else state


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
    if d.chain:
        t.add_row("Received", when(max(g.received_at for g in d.chain)))
        t.add_row("Stored", f"{sum(g.count for g in d.chain)} objects, {human_bytes(d.nbytes)}")
    if d.tags:
        t.add_row("Tags", plain(", ".join(d.tags), pal.accent))
    if d.history:
        t.add_row("Sends", _sends(d.history, pal))
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
    newest = max((g.received_at for g in d.chain), default=0.0)
    counts = [str(g.count) for g in d.chain] + [str(m.count) for m in d.missing_groups]
    times = [clock_or_day(g.received_at, newest) for g in d.chain]
    t.add_column("object", overflow="fold")
    t.add_column("n", justify="right", no_wrap=True, min_width=max(map(len, counts), default=1))
    t.add_column("from", overflow="fold")
    t.add_column("received", no_wrap=True, min_width=max(map(len, times), default=8))
    for g, at in zip(d.chain, times):
        name = g.modality if g.part != "image" else f"{g.modality} series …{g.series_uid[-8:]}"
        t.add_row(plain(name, pal.error if g.conflict else ""), str(g.count), plain(", ".join(g.sources)), at)
    for miss in d.missing_groups:
        t.add_row(plain(f"{miss.what} missing", f"bold {pal.warn}"), str(miss.count),
                  plain(f"e.g. …{miss.example_uid[-16:]}", "dim"), "")
    return t


def who(origin: str) -> str:
    """The queue's origin as the operator reads it: 'operator', 'rule to-qa', 'CLI'."""
    if origin.startswith("rule:"):
        return f"rule {origin[5:]}"
    return {"manual": "operator", "cli": "CLI (rtstation send)", "api": "API"}.get(origin, origin)


def _history(rows: tuple[JobInfo, ...], pal: Palette) -> RenderableType:
    """One line per job (node, state, counts), its error on the lines below: a table column for the error was
    crushed to a word per line at 80 columns."""
    parts: list[RenderableType] = [Text("Send history", "italic")]
    for r in rows:
        style = pal.error if r.state == "failed" else pal.ok if r.state == "done" else ""
        parts.append(Padding(Text.assemble(f"job {r.id}  " + (f"{when(r.created)}  " if r.created else "") + f"{literal(r.node)}  ",
                                           (r.state, style),
                                           f"  {r.done}/{r.total}", f" ({r.failed} failed)" if r.failed else "",
                                           (f"  by {literal(who(r.origin))}", "dim") if r.origin else ""), (0, 0, 0, 1)))
        if r.error:
            parts.append(Padding(plain(r.error, "dim" if r.state != "failed" else ""), (0, 0, 0, 3)))
        if r.commitment:
            parts.append(Padding(plain(f"storage commitment: {commitment_text(r.commitment)}",
                                       pal.error if commitment_failed(r.commitment) else "dim"), (0, 0, 0, 3)))
    return Group(*parts)


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
