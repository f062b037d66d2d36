"""One-line labels for the tree, as Rich Text in the current theme's colours; and how any value from outside is
put on screen (``literal``, ``plain``, ``visible``, ``cells``).

Why pure functions: the tree re-labels single nodes in place on every event batch, and tests can check the text
without running an app. Meaning never rests on colour alone (16-colour terminals, colour-blind operators): every
state also has a word or a symbol.

Why values are never markup: a str handed to a Textual widget (Static, Label, DataTable cell, Tree label, Rich
Table cell, Selection prompt, notify) is parsed as markup, and DICOM values, AE titles, node and rule names, file
names and peers' error texts are whatever a peer or a file says. ``[/bold]X`` raised MarkupError (the console and
its receiver died), ``[bold red]…[/]`` was styled, ``[@click=app.quit]…[/]`` became an action. So a value reaches a
widget only as ``Text`` (``plain``, ``cells``; Text and Content are never parsed) or through a ``markup=False``
widget, and our own styles are Text styles around it, never markup around an f-string. Control characters go too:
an ESC in a value would reach the terminal raw (``\x1b[31m`` colours the screen), so each one is shown as a visible
symbol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from rich.text import Text
from textual.theme import Theme

from ..engine.plans.queries import PatientRow, PlanRow


# C0 controls as their U+2400 "control pictures" (ESC → ␛), DEL as ␡, the C1 range (0x80-0x9f: CSI 0x9b is an
# escape sequence too) as U+FFFD: one character for one, so Text spans over a value stay where they were.
_VISIBLE = {**{c: 0x2400 + c for c in range(0x20)}, 0x7F: 0x2421, **{c: 0xFFFD for c in range(0x80, 0xA0)}}
_VISIBLE_LINES = {c: v for c, v in _VISIBLE.items() if c != 0x0A}


def literal(value: object, *, lines: bool = False) -> str:
    """``str(value)`` as it may go on screen, with control characters shown; ``lines``: newlines stay newlines
    (a multi-line message), else they are shown as ␊ too (a one-line label must not become two).

    Not an escape for markup: hand the result over as ``plain(...)`` or to a ``markup=False`` widget."""
    return str(value).translate(_VISIBLE_LINES if lines else _VISIBLE)


def plain(value: object, style: str = "", *, lines: bool = False) -> Text:
    """A value (or a message built from values) as Text: shown exactly as it is, never parsed as markup."""
    return Text(literal(value, lines=lines), style)


def visible(text: Text) -> Text:
    """A copy of ``text`` (labels assembled from values) with control characters shown; its styles kept."""
    out = text.copy()
    out.plain = literal(text.plain, lines=True)
    return out


def cells(values: Iterable[object]) -> tuple[Text, ...]:
    """DataTable cells from values: as ``DataTable`` draws a str cell in a one-line row, but never parsed."""
    return tuple(Text(literal(v), no_wrap=True, end="") for v in values)


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


def patient_label(p: PatientRow, pal: Palette, receiving: int | None = None) -> Text:
    """``receiving``: objects open associations brought so far (live; None: none open for this patient). It comes
    right after the ID, before the name, so a narrow tree (80 columns) cuts the name, not the count."""
    text = Text.assemble((literal(p.patient_id), "bold"), "  ")
    if receiving is not None:
        text.append(f"receiving {receiving} object{'s' if receiving != 1 else ''}…", f"bold {pal.warn}")
        text.append("  ")
    text.append(literal(p.patient_name.replace("^", " ").strip()))
    if p.plans:
        text.append(f"  {p.plans} plan{'s' if p.plans != 1 else ''}", pal.dim)
    if p.waiting and receiving is None:
        text.append(f"  {p.waiting} receiving", pal.warn)
    return text


@dataclass(frozen=True)
class JobState:
    """The latest send state of one plan to one node, from JobChanged/JobProgress events."""

    node: str
    state: str
    done: int = 0
    total: int = 0
    commitment: str = ""  # a done job's storage commitment ('' when the node is not asked)

    def text(self) -> str:
        if self.state == "sending" and self.total:
            return literal(f"{self.node}: sending {100 * self.done // self.total}%")
        if self.state == "done" and self.commitment:
            return literal(f"{self.node}: {commitment_word(self.commitment)}")
        return literal(f"{self.node}: {self.state}")

    @property
    def failed(self) -> bool:
        return self.state == "failed" or (self.state == "done" and commitment_failed(self.commitment))


def commitment_word(state: str) -> str:
    """A commitment state in a word or two for the tree ('sent' while the node has not vouched yet); the details
    have the whole of it (how many instances, which reasons)."""
    head = state.split(": ", 1)[0]
    return {"waiting": "sent", "request failed": "commit request failed"}.get(head, head)


def commitment_failed(state: str) -> bool:
    return bool(state) and state.split(": ", 1)[0] not in ("waiting", "committed")


def plan_label(p: PlanRow, pal: Palette, *, marked: bool = False, sends: tuple[JobState, ...] = ()) -> Text:
    text = Text()
    text.append("● " if marked else "  ", pal.accent)
    text.append(literal(p.label or "(no label)"), "bold")
    if p.state in ("waiting", "receiving"):
        text.append("  … receiving", pal.warn)
    elif p.complete:
        text.append("  ✓ complete", pal.ok)
    else:
        text.append(f"  ✗ {p.missing or 'incomplete'}", pal.warn)
    if p.held_by and not p.complete:
        text.append(literal(f"  ⏸ held by {', '.join(p.held_by)}"), pal.warn)
    if p.conflicts:
        text.append(f"  ⚠ {p.conflicts} conflict{'s' if p.conflicts != 1 else ''}", pal.error)
    for job in sends:
        waiting = job.state == "done" and job.commitment.startswith("waiting")
        style = pal.error if job.failed else pal.accent if waiting else pal.ok if job.state == "done" else pal.accent
        text.append(f"  {job.text()}", style)
    if p.tags:  # a rule's tag = "…": what the site calls this plan
        text.append(literal("  " + " ".join(f"#{t}" for t in p.tags)), pal.accent)
    # what matters most comes first: the tree pane is ~35 columns wide at 80x24
    if p.machines:
        text.append(literal("  " + ",".join(p.machines)))
    if p.approval:
        text.append(literal("  " + p.approval), pal.ok if p.approval == "APPROVED" else pal.dim)
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
