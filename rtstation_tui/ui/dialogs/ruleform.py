"""Add or edit one routing rule (``[[rules]]``): the match fields of ``RuleConfig``, node names offered as you type.

Returns the changed keys (a new rule: name, targets and what differs from the defaults), or None when cancelled.
Why text fields with completion for targets: a target may also be an ad-hoc ``AET@host:port``, and an unknown name
must be shown at the field (as the loader would refuse it), not silently impossible to express.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Button, Label

from ...engine.config.nodes import parse_adhoc
from ...engine.config.rules import INCLUDE_PARTS, RuleConfig, label_pattern_problem
from ..commands.registry import CommandScope, bindings
from ..labels import plain
from ..widgets.form import FieldSpec, Form, FormDialog


class ListSuggester(Suggester):
    """Completes the last comma-separated item from a list of words (node names, bundle parts)."""

    def __init__(self, words: Sequence[str]) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.words = list(words)

    async def get_suggestion(self, value: str) -> str | None:
        head, _, last = value.rpartition(",")
        stem = last.lstrip()
        if not stem:
            return None
        for word in self.words:
            if word.lower().startswith(stem.lower()) and word != stem:
                return f"{head}{',' if head else ''}{last[:len(last) - len(stem)]}{word}"
        return None


def targets_problem(nodes: Sequence[str]) -> Any:
    def check(targets: Any) -> str | None:
        if not targets:
            return "a rule needs at least one target node"
        for t in targets:
            if t not in nodes and parse_adhoc(t) is None:
                return f"unknown node {t!r}; nodes: {', '.join(nodes) or 'none configured'} (or AET@host:port)"
        return None
    return check


def pattern_problem(value: Any) -> str | None:
    return label_pattern_problem(value) if value else None


def regex_problem(value: Any) -> str | None:
    if not value:
        return None
    try:
        re.compile(value)
    except re.error as exc:
        return f"bad regular expression: {exc}"
    return None


def rule_specs(taken: Sequence[str], nodes: Sequence[str]) -> list[FieldSpec]:
    def unique(name: Any) -> str | None:
        return f"{name!r} is already the name of another rule" if name in taken else None

    r = RuleConfig
    pattern = "plain text, glob:PATTERN or re:REGEX"
    return [
        FieldSpec("name", r, "name", "Name", "Unique rule name (the audit log and `rules test` use it)", unique),
        FieldSpec("enabled", r, "enabled", "Enabled", "Disabled rules are listed but never match"),
        FieldSpec("targets", r, "targets", "Targets", f"Node names, comma-separated: {', '.join(nodes)}",
                  targets_problem(nodes), ListSuggester(nodes)),
        FieldSpec("source_ae", r, "source_ae", "Source AE", "Calling AE, exact or glob; IMPORT_FOLDER for the "
                  "watched folder; empty: any", pattern_problem),
        FieldSpec("plan_label", r, "plan_label", "Plan label", f"Case-insensitive substring, or {pattern}",
                  pattern_problem),
        FieldSpec("machine", r, "machine", "Machine", f"Treatment machine: exact, or {pattern}", pattern_problem),
        FieldSpec("approval", r, "approval", "Approval", "APPROVED, UNAPPROVED, REJECTED or ANY"),
        FieldSpec("patient_id", r, "patient_id", "Patient ID", "Regular expression, e.g. ^[0-9]+$", regex_problem),
        FieldSpec("modality", r, "modality", "Modality", "An object of this modality must be in the bundle",
                  pattern_problem),
        FieldSpec("include", r, "include", "Include", f"What goes: {', '.join(INCLUDE_PARTS)}", None,
                  ListSuggester(INCLUDE_PARTS)),
        FieldSpec("stop", r, "stop", "Stop", "No later rule is evaluated after this one matched"),
        FieldSpec("when_incomplete", r, "when_incomplete", "If incomplete",
                  "hold: wait until complete; send: send what is there"),
    ]


class RuleForm(FormDialog, CommandScope, ModalScreen[dict[str, Any] | None]):
    COMMAND_SCOPE = "entry-form"
    BINDINGS = bindings("entry-form")

    def __init__(self, rule: RuleConfig | None, taken: Sequence[str], nodes: Sequence[str]) -> None:
        super().__init__()
        self.rule = rule
        self.taken = [t for t in taken if rule is None or t != rule.name]
        self.nodes = list(nodes)

    def compose(self) -> ComposeResult:
        rule = self.rule or RuleConfig(name="", targets=())
        specs = rule_specs(self.taken, self.nodes)
        values = {s.key: getattr(rule, s.name) for s in specs}
        with Vertical(classes="dialog form-dialog"):
            yield Label(plain(f"Edit rule {self.rule.name}" if self.rule else "New rule"), classes="dialog-title")
            yield Form(specs, values, id="rule-form")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (Ctrl+S)", id="save", variant="primary")
                yield Button("Cancel (Esc)", id="cancel")

    def action_save(self) -> None:
        form = self.form
        if not form.ready_to_save():
            return
        self.dismiss(self.entry_changes(form, self.rule is None, ("name", "targets")))
