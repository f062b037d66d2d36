"""One-line labels for the tree, as Rich Text in the current theme's colours.

Why pure functions: the tree re-labels single nodes in place on every event batch, and tests can check the text
without running an app. Meaning never rests on colour alone (16-colour terminals, colour-blind operators): every
state also has a word or a symbol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.theme import Theme

from ..engine.plans.queries import PatientRow, PlanRow


@dataclass(frozen=True)
class Palette:
    ok: str = "green"
    warn: str = "yellow"
    error: str = "red"
    accent: str = "magenta"
    dim: str = "dim"

    @classmethod
    def from_theme(cls, theme: Theme | None) -> Palette:
        if theme is None:
            return cls()
        return cls(theme.success or "green", theme.warning or "yellow", theme.error or "red",
                   theme.accent or "magenta")


def patient_label(p: PatientRow, pal: Palette) -> Text:
    text = Text.assemble((p.patient_id, "bold"), "  ", p.patient_name.replace("^", " ").strip())
    if p.plans:
        text.append(f"  {p.plans} plan{'s' if p.plans != 1 else ''}", pal.dim)
    if p.waiting:
        text.append(f"  {p.waiting} receiving", pal.warn)
    return text


@dataclass(frozen=True)
class JobState:
    """The latest send state of one plan to one node, from JobChanged/JobProgress events."""

    node: str
    state: str
    done: int = 0
    total: int = 0

    def text(self) -> str:
        if self.state == "sending" and self.total:
            return f"{self.node}: sending {100 * self.done // self.total}%"
        return f"{self.node}: {self.state}"


def plan_label(p: PlanRow, pal: Palette, *, marked: bool = False, sends: tuple[JobState, ...] = ()) -> Text:
    text = Text()
    text.append("● " if marked else "  ", pal.accent)
    text.append(p.label or "(no label)", "bold")
    if p.state in ("waiting", "receiving"):
        text.append("  … receiving", pal.warn)
    elif p.complete:
        text.append("  ✓ complete", pal.ok)
    else:
        text.append(f"  ✗ {p.missing or 'incomplete'}", pal.warn)
    if p.held_by and not p.complete:
        text.append(f"  ⏸ held by {', '.join(p.held_by)}", pal.warn)
    if p.conflicts:
        text.append(f"  ⚠ {p.conflicts} conflict{'s' if p.conflicts != 1 else ''}", pal.error)
    for job in sends:
        style = pal.error if job.state == "failed" else pal.ok if job.state == "done" else pal.accent
        text.append(f"  {job.text()}", style)
    # what matters most comes first: the tree pane is ~35 columns wide at 80x24
    if p.machines:
        text.append("  " + ",".join(p.machines))
    if p.approval:
        text.append("  " + p.approval, pal.ok if p.approval == "APPROVED" else pal.dim)
    return text


def unconnected_label(count: int | None, pal: Palette) -> Text:
    if count is None:
        return Text("unconnected", pal.dim)
    return Text(f"unconnected ({count})", pal.dim if count == 0 else pal.warn)


def describe_echo(outcome: Any) -> str:
    """'OK 3 ms' or 'FAILED: <the exact reason>' (the nodes table and the notifications say the same)."""
    if outcome is None:
        return "–"
    if outcome.ok:
        return f"OK {outcome.rtt_ms:.0f} ms" if outcome.rtt_ms is not None else "OK"
    return f"FAILED: {outcome.message}"
