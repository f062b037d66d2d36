"""The rules editor: rules in evaluation order with their state; add / edit / delete / move / enable; a dry run.

Why the dry run sits under the list: after each change the operator sees at once, for the plans already in the
index, which rules would now match and the first condition that fails for the others — before any plan arrives.
It is computed in a thread worker (bundles are read from the index) and never sends anything.
"""

from __future__ import annotations

import asyncio

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Label, Static

from ...engine.config.rules import RuleConfig
from ...engine.plans.queries import PlanVerdicts
from ..commands.registry import bindings
from ..dialogs.confirm import ConfirmDialog
from ..dialogs.ruleform import RuleForm
from ..labels import literal, plain
from .entries import EntryTableScreen

SYMBOL = {"send": "✓", "nothing-new": "=", "hold": "…", "no-match": "✗", "disabled": "○", "not-evaluated": "–"}


def matches(r: RuleConfig) -> str:
    parts = [f"{k}={v}" for k, v in (("source", r.source_ae), ("label", r.plan_label), ("machine", r.machine),
                                     ("patient", r.patient_id), ("modality", r.modality)) if v]
    if r.approval != "ANY":
        parts.append(f"approval={r.approval}")
    return " ".join(parts) or "every plan"


def dry_run_text(plans: list[PlanVerdicts]) -> Text:
    if not plans:
        return Text("Dry run: no plans in the index yet.")
    text = Text("Dry run on the plans in the index (nothing is sent):\n", "bold")
    for p in plans:
        text.append(literal(p.label or "(no label)"), "bold")
        text.append(f"  {literal(p.patient_id)}  {'complete' if p.complete else 'incomplete'}\n")
        for v in p.verdicts:
            text.append(f"  {SYMBOL.get(v.outcome, '?')} {literal(v.rule)}: {literal(v.reason)}\n",
                        "" if v.outcome in ("send", "hold") else "dim")
        if not p.verdicts:
            text.append("  no rules\n", "dim")
    return text


class RulesScreen(EntryTableScreen):
    TABLE_ID = "rules-table"
    COMMAND_SCOPE = "rules"
    BINDINGS = bindings("rules")
    COLUMNS = ("#", "name", "on", "targets", "matches")

    def compose(self) -> ComposeResult:
        yield Label("Rules", id="rules-title", classes="screen-title")
        table: DataTable[str] = DataTable(cursor_type="row", zebra_stripes=True, id="rules-table")
        table.add_columns(*self.COLUMNS)
        yield table
        with VerticalScroll(id="dry-run", can_focus=False):
            yield Static("Dry run: reading the index…", id="dry-run-text")
        yield Footer()

    def on_mount(self) -> None:
        self.dry_run: list[PlanVerdicts] = []
        self.refresh_rows()

    def rows(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(r.name, (str(i), r.name, "yes" if r.enabled else "no", ", ".join(r.targets), matches(r)))
                for i, r in enumerate(self.config.rules, start=1)]

    def after_refresh(self, names: list[str], where: str) -> None:
        self.query_one("#rules-title", Label).update(plain(
            f"Rules  ({len(names)}, in order, from {where})  Enter edits" if names
            else "No [[rules]]: plans are sent by hand (s). Press a to add a rule."))
        self.run_worker(self._dry_run(self.config.rules), group="dry-run", exclusive=True, exit_on_error=False)

    async def _dry_run(self, rules: tuple[RuleConfig, ...]) -> None:
        plans = await asyncio.to_thread(self.api.dry_run, rules)
        self.dry_run = plans
        self.query_one("#dry-run-text", Static).update(dry_run_text(plans))

    def rule(self) -> RuleConfig | None:
        return next((r for r in self.config.rules if r.name == self.selected), None)

    # -- editing ----------------------------------------------------------------------------------------------
    def _form(self, rule: RuleConfig | None) -> RuleForm:
        config = self.config
        return RuleForm(rule, [r.name for r in config.rules],
                        [n.name for n in config.nodes] + [g.name for g in config.groups])  # a group is a target too

    def action_add(self) -> None:
        if not self.config.nodes:
            self.notify("Add a node first (n): a rule needs a target.", severity="warning")
            return
        self.run_worker(self._add(), group="edit", exit_on_error=False)

    async def _add(self) -> None:
        values = await self.app.push_screen_wait(self._form(None))
        if values:
            await self._save(lambda cf: cf.add_entry("rules", values), f"Rule {values['name']!r} added",
                             values["name"])

    def action_edit(self) -> None:
        rule = self.rule()
        if rule is not None:
            self.run_worker(self._edit(rule), group="edit", exit_on_error=False)

    async def _edit(self, rule: RuleConfig) -> None:
        changes = await self.app.push_screen_wait(self._form(rule))
        if changes:
            await self._save(lambda cf: cf.update_entry("rules", rule.name, changes),
                             f"Rule {changes.get('name', rule.name)!r} changed ({', '.join(changes)})",
                             changes.get("name", rule.name))

    def action_toggle(self) -> None:
        rule = self.rule()
        if rule is not None:
            on = not rule.enabled
            self.run_worker(self._save(lambda cf: cf.update_entry("rules", rule.name, {"enabled": on}),
                                       f"Rule {rule.name!r} {'enabled' if on else 'disabled'}", rule.name),
                            group="edit", exit_on_error=False)

    def action_move(self, delta: int) -> None:
        rule = self.rule()
        names = [r.name for r in self.config.rules]
        if rule is None or not 0 <= names.index(rule.name) + delta < len(names):
            return
        self.run_worker(self._save(lambda cf: cf.move_entry("rules", rule.name, delta),
                                   f"Rule {rule.name!r} moved {'up' if delta < 0 else 'down'}", rule.name),
                        group="edit", exit_on_error=False)

    def action_delete(self) -> None:
        rule = self.rule()
        if rule is not None:
            self.run_worker(self._delete(rule), group="edit", exit_on_error=False)

    async def _delete(self, rule: RuleConfig) -> None:
        question = f"Delete rule {rule.name!r} (to {', '.join(rule.targets)})? Plans it would send are no longer sent."
        if await self.app.push_screen_wait(ConfirmDialog("Delete rule?", question, "Delete", "Keep")):
            await self._save(lambda cf: cf.delete_entry("rules", rule.name), f"Rule {rule.name!r} deleted", None)
