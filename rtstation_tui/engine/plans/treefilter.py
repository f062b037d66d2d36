"""The console tree's filter and sort: what the filter box's text means, which rows it shows, in which order.

Why in the engine (pure functions over the listings of ``queries``): the rule that decides which plans are shown
decides which plans can be selected and sent, so it is one rule, tested without a screen, and every view that
lists plans under the operator's filter uses it.

Syntax (the help screen shows it): terms are ANDed. The plain words, together as one phrase, are matched
case-insensitively and literally in the patient ID, the patient name or the plan label (as before: a patient matched
by ID or name lists all its plans, one matched by a plan label only those). ``key:value`` terms:

    ae:TPS1        the plan came from this calling AE title (or import source): substring
    mod:MR         the plan's bundle holds an object of this modality (RTPLAN, CT, MR, RTDOSE, ...)
    state:failed   the plan's send state: failed, sent, sending, not-sent, cancelled; or its bundle's: waiting,
                   incomplete, held (a rule waits for it to be complete), ready
    node:QA        with ``state:``, the state of the send to this node ("failed to QA": ``state:failed node:QA``);
                   alone, any send to it
    since:7d       received within 7 days (also ``12h``, ``today``, ``2026-11-30``)

A value may be quoted ("ae:\"MY TPS\""). An unknown key or state names the allowed ones (``FilterError``).
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from datetime import date, datetime
from typing import Iterable

from .queries import PatientRow, PlanRow, filter_shows

KEYS = ("ae", "mod", "state", "node", "since")
STATES = ("failed", "sent", "sending", "not-sent", "cancelled", "waiting", "incomplete", "held", "ready")
_ALIASES = {"done": "sent", "unsent": "not-sent", "notsent": "not-sent", "never": "not-sent", "active": "sending",
            "queued": "sending", "retry": "sending", "fail": "failed", "receiving": "waiting"}
_ACTIVE = ("queued", "sending", "waiting-retry")
SORTS = ("received", "patient", "ae", "modality", "state")  # the sort command cycles through them, in this order
SORT_NAMES = {"received": "newest received first", "patient": "patient ID", "ae": "source AE",
              "modality": "modality", "state": "attention first (failed, not sent, waiting)"}


class FilterError(ValueError):
    """A term of the filter box that means nothing: the message names it and what is allowed. ``unknown_key``:
    the term may be a plain word after all (a patient ID such as ``PAT:123``): see ``parse_filter(strict=False)``."""

    def __init__(self, message: str, unknown_key: bool = False) -> None:
        super().__init__(message)
        self.unknown_key = unknown_key


@dataclass(frozen=True)
class TreeFilter:
    text: str = ""  # the plain words, one phrase (as the index search and ``filter_shows`` take it)
    ae: str = ""
    mod: str = ""
    state: str = ""
    node: str = ""
    since: float = 0.0  # epoch seconds; 0: no limit

    @property
    def on(self) -> bool:
        return self != TreeFilter()

    @property
    def by_plan(self) -> bool:
        """Terms only a patient's plans can answer (the console reads the plans of each candidate patient)."""
        return bool(self.state or self.node)

    def patient_may_match(self, p: PatientRow) -> bool:
        """What the patient row alone can rule out (the plans then decide the rest)."""
        return ((not self.ae or any(_has(self.ae, s) for s in p.sources))
                and (not self.mod or any(_is(self.mod, m) for m in p.modalities))
                and (not self.since or p.received >= self.since))

    def shows(self, p: PatientRow | None, plan: PlanRow) -> bool:
        """Whether the tree lists (so lets the operator select and send) this plan."""
        name = p.patient_name if p is not None else ""
        return (filter_shows(self.text, plan.patient_id, name, plan.label)
                and (not self.ae or _has(self.ae, plan.source))
                and (not self.mod or any(_is(self.mod, m) for m in plan.modalities))
                and (not self.since or plan.received >= self.since)
                and self._state_shows(plan))

    def _state_shows(self, plan: PlanRow) -> bool:
        sends = [(n, st) for n, st, _, _ in plan.sends if not self.node or n.casefold() == self.node.casefold()]
        if not self.state:
            return not self.node or bool(sends)
        state = self.state
        if state == "not-sent":
            return not sends
        if state in ("failed", "sent", "sending", "cancelled"):
            wanted = {"failed": ("failed",), "sent": ("done",), "sending": _ACTIVE, "cancelled": ("cancelled",)}
            return any(st in wanted[state] for _, st in sends)
        bundle = {"waiting": plan.state in ("waiting", "receiving"), "incomplete": not plan.complete,
                  "held": bool(plan.held_by), "ready": plan.state in ("ready", "ready-incomplete")}
        return bundle[state] and (not self.node or bool(sends))

    def highlights(self) -> list[str]:
        """What to underline in the rows: the words, and the node and state words a send state shows."""
        out = [self.text] if self.text else []
        if self.node:
            out.append(self.node)
        if self.state in ("failed", "sending", "cancelled"):
            out.append(self.state)
        elif self.state == "sent":
            out.append("done")
        return out


def parse_filter(text: str, now: float | None = None, strict: bool = True) -> TreeFilter:
    """The filter box's text as a ``TreeFilter``; ``FilterError`` names a bad term and the allowed values.
    ``strict=False``: a term with an unknown key is a plain word (the console tries that before saying no)."""
    try:
        parts = shlex.split(text)
    except ValueError:  # an unclosed quote while typing: take the text as it is
        parts = text.split()
    words: list[str] = []
    terms: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition(":")
        if not sep or not key.isalpha():  # a plain word (IDs like "AB:12" keep their colon if the key is odd)
            words.append(part)
            continue
        key = key.lower()
        if key not in KEYS:
            if not strict:
                words.append(part)
                continue
            raise FilterError(f"filter: unknown key {key + ':'!r}; allowed: {', '.join(k + ':' for k in KEYS)}",
                              unknown_key=True)
        if not value:
            raise FilterError(f"filter: {key}: needs a value, e.g. {_EXAMPLES[key]}")
        terms[key] = value
    state = terms.get("state", "").lower()
    state = _ALIASES.get(state, state)
    if state and state not in STATES:
        raise FilterError(f"filter: state:{terms['state']} is not a state; allowed: {', '.join(STATES)}")
    since = _since(terms["since"], time.time() if now is None else now) if "since" in terms else 0.0
    return TreeFilter(" ".join(words), terms.get("ae", ""), terms.get("mod", ""), state, terms.get("node", ""), since)


_EXAMPLES = {"ae": "ae:TPS1", "mod": "mod:MR", "state": "state:failed", "node": "node:QA", "since": "since:7d"}


def _since(value: str, now: float) -> float:
    v = value.lower()
    if v == "today":
        return datetime.combine(date.fromtimestamp(now), datetime.min.time()).timestamp()
    if v[:-1].isdigit() and v[-1:] in ("d", "h"):
        return now - int(v[:-1]) * (86400 if v[-1] == "d" else 3600)
    try:
        return datetime.combine(date.fromisoformat(value), datetime.min.time()).timestamp()
    except ValueError:
        raise FilterError(f"filter: since:{value} is not a time; use since:today, since:7d, since:12h or "
                          "since:2026-11-30") from None


def _has(needle: str, value: str) -> bool:
    return needle.casefold() in value.casefold()


def _is(wanted: str, modality: str) -> bool:
    return wanted.casefold() == modality.casefold()


def sort_patients(rows: Iterable[PatientRow], key: str) -> list[PatientRow]:
    """The tree's top level in ``key``'s order (``SORTS``); ties by patient ID, so the order is stable."""
    rows = sorted(rows, key=lambda p: p.patient_id)
    if key == "received":
        return sorted(rows, key=lambda p: -p.received)
    if key == "ae":
        return sorted(rows, key=lambda p: (not p.sources, [s.casefold() for s in p.sources]))
    if key == "modality":
        return sorted(rows, key=lambda p: (not p.modalities, list(p.modalities)))
    if key == "state":
        return sorted(rows, key=lambda p: (-p.failed, -p.unsent, -p.incomplete - p.waiting))
    return rows
