"""The nodes editor: the configured DICOM nodes with their last C-ECHO, and add / edit / delete / enable / echo.

Why a screen and not a dialog: operators look things up here while the station keeps running underneath; Esc
returns to the tree exactly as it was. Every change is saved by the app (a ``SaveConfig`` message) and is
live at once; the table is rebuilt from the saved configuration, so it always shows the file's truth.
"""

from __future__ import annotations

import asyncio
from typing import Any, Mapping, Sequence

from textual.app import ComposeResult
from textual.widgets import DataTable, Footer, Label, Static

from ...engine.config.tomlfile import ConfigFile
from ...engine.config.model import Config
from ...engine.config.nodes import NodeConfig
from ..commands.registry import bindings
from ..dialogs.confirm import ConfirmDialog
from ..dialogs.nodeform import NodeForm
from ...engine.api import StationAPI
from ..labels import describe_echo, plain
from ..messages import EchoAnswered
from .entries import EntryTableScreen


Named = Sequence[tuple[str, list[str]]]  # (rule or group name, its targets or members)


def delete_node(cf: ConfigFile, name: str, rules: Named, groups: Named = ()) -> None:
    """Delete node ``name``; groups lose it as a member, and a group left empty goes too; rules lose the targets
    that went (the node, emptied groups), and rules left without targets go too."""
    gone = {name}
    for group, members in groups:
        left = [m for m in members if m != name]
        if left:
            cf.update_entry("groups", group, {"nodes": left})
        else:
            cf.delete_entry("groups", group)
            gone.add(group)
    for rule, targets in rules:
        left = [t for t in targets if t not in gone]
        if left == targets:
            continue
        if left:
            cf.update_entry("rules", rule, {"targets": left})
        else:
            cf.delete_entry("rules", rule)
    cf.delete_entry("nodes", name)


def rename_targets(cf: ConfigFile, old: str, new: str, rules: Named, groups: Named = ()) -> None:
    """A renamed node keeps its place in the rules' targets and the groups' members."""
    for rule, targets in rules:
        if old in targets:
            cf.update_entry("rules", rule, {"targets": [new if t == old else t for t in targets]})
    for group, members in groups:
        cf.update_entry("groups", group, {"nodes": [new if m == old else m for m in members]})


def limits(node: NodeConfig) -> str:
    """``, at most 20 instances/s, 5 MB/s`` for a rate-limited node ('' without limits)."""
    parts = [f"{node.max_instances_per_s:g} instances/s"] * bool(node.max_instances_per_s) + \
        [f"{node.max_mb_per_s:g} MB/s"] * bool(node.max_mb_per_s)
    return f", at most {', '.join(parts)}" if parts else ""


class NodesScreen(EntryTableScreen):
    TABLE_ID = "nodes-table"
    COMMAND_SCOPE = "nodes"
    BINDINGS = bindings("nodes")
    COLUMNS = ("name", "AE title", "address", "on", "last echo")

    def __init__(self, config: Config, api: StationAPI, echoes: Mapping[str, Any]) -> None:
        super().__init__(config, api)
        self.echoes = dict(echoes)  # the app's record at opening; new answers go to both (EchoAnswered)

    def compose(self) -> ComposeResult:
        yield Label("Nodes", id="nodes-title", classes="screen-title")
        table: DataTable[str] = DataTable(cursor_type="row", zebra_stripes=True, id="nodes-table")
        table.add_columns(*self.COLUMNS)
        yield table
        yield Static("", id="nodes-detail", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_rows()

    def rows(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(n.name, (n.name, n.ae_title, f"{n.host}:{n.port}", "yes" if n.enabled else "no",
                          describe_echo(self.echoes.get(n.name)))) for n in self.config.nodes]

    def after_refresh(self, names: list[str], where: str) -> None:
        self.query_one("#nodes-title", Label).update(plain(f"Nodes  ({len(names)}, from {where})  Enter edits"))
        self.show_detail()

    def node(self) -> NodeConfig | None:
        name = self.selected
        return self.config.node(name) if name else None

    def show_detail(self) -> None:
        node = self.node()
        detail = self.query_one("#nodes-detail", Static)
        if node is None:
            detail.update(plain("No [[nodes]] yet: press a to add one."))
            return
        echo = self.echoes.get(node.name)
        calling = node.calling_ae_title or self.config.station.ae_title
        detail.update(plain(f"{node.name}: {node.describe()} as {calling}, {node.max_associations} parallel, retry "
                            f"{node.retry}, timeout {node.timeout_s:g} s{', TLS' if node.tls else ''}{limits(node)}"
                            f"{self._groups_line(node.name)}\n"
                            f"last C-ECHO: {describe_echo(echo)}", lines=True))

    def _groups_line(self, name: str) -> str:
        groups = [g for g, _ in self.groups_using(name)]
        return f", in group{'s' if len(groups) > 1 else ''} {', '.join(groups)}" if groups else ""

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()

    # -- editing ----------------------------------------------------------------------------------------------
    def rules_using(self, name: str) -> list[tuple[str, list[str]]]:
        """Rules naming the node, or a group it is in (deleting it may empty the group)."""
        via = {name, *(g.name for g in self.config.groups if name in g.nodes)}
        return [(r.name, list(r.targets)) for r in self.config.rules if via & set(r.targets)]

    def groups_using(self, name: str) -> list[tuple[str, list[str]]]:
        return [(g.name, list(g.nodes)) for g in self.config.groups if name in g.nodes]

    def taken(self) -> list[str]:
        """Names a node may not take: the other nodes' and the groups'."""
        return [n.name for n in self.config.nodes] + [g.name for g in self.config.groups]

    def action_add(self) -> None:
        self.run_worker(self._add(), group="edit", exit_on_error=False)

    async def _add(self) -> None:
        values = await self.app.push_screen_wait(NodeForm(None, self.taken()))
        if values:
            await self._save(lambda cf: cf.add_entry("nodes", values), f"Node {values['name']} added", values["name"])

    def action_edit(self) -> None:
        node = self.node()
        if node is not None:
            self.run_worker(self._edit(node), group="edit", exit_on_error=False)

    async def _edit(self, node: NodeConfig) -> None:
        changes = await self.app.push_screen_wait(NodeForm(node, self.taken()))
        if not changes:
            return
        new_name = changes.get("name", node.name)
        rules, groups = self.rules_using(node.name), self.groups_using(node.name)

        def edit(cf: ConfigFile) -> None:
            cf.update_entry("nodes", node.name, changes)
            if new_name != node.name:
                rename_targets(cf, node.name, new_name, rules, groups)

        await self._save(edit, f"Node {new_name} changed ({', '.join(changes)})", new_name)

    def action_toggle(self) -> None:
        node = self.node()
        if node is not None:
            self.run_worker(self._toggle(node), group="edit", exit_on_error=False)

    async def _toggle(self, node: NodeConfig) -> None:
        on = not node.enabled
        await self._save(lambda cf: cf.update_entry("nodes", node.name, {"enabled": on}),
                         f"Node {node.name} {'enabled' if on else 'disabled'}", node.name)

    def action_delete(self) -> None:
        node = self.node()
        if node is not None:
            self.run_worker(self._delete(node), group="edit", exit_on_error=False)

    async def _delete(self, node: NodeConfig) -> None:
        rules, groups = self.rules_using(node.name), self.groups_using(node.name)
        jobs: list[Any] = [j for j in await asyncio.to_thread(self.api.jobs, True) if j.node == node.name]
        lines = [f"Delete node {node.name} ({node.describe()})?"]
        emptied = {g for g, members in groups if members == [node.name]}
        for group, _ in groups:
            what = "the group is deleted too (no node left)" if group in emptied else f"{node.name} leaves it"
            lines.append(f"• in group {group!r}: {what}")
        gone = {node.name} | emptied
        for rule, targets in rules:
            left = [t for t in targets if t not in gone]
            if left != targets:
                dropped = [t for t in targets if t in gone]
                what = "the rule is deleted too (no target left)" if not left else (
                    f"{' and '.join(dropped)} {'is' if len(dropped) == 1 else 'are'} removed from its targets")
                lines.append(f"• used by rule {rule!r}: {what}")
        for job in jobs:
            lines.append(f"• job {job.id} ({job.label or job.plan_uid}, {job.state}) goes on to the deleted node's "
                         f"address until it ends")
        if len(lines) == 1:
            lines.append("No rule, group or active job uses it.")
        if not await self.app.push_screen_wait(ConfirmDialog("Delete node?", "\n".join(lines), "Delete", "Keep")):
            return
        await self._save(lambda cf: delete_node(cf, node.name, rules, groups), f"Node {node.name} deleted", None)

    # -- echo -------------------------------------------------------------------------------------------------
    def action_echo(self) -> None:
        node = self.node()
        if node is None:
            return
        if why := self.api.status().send_unavailable:
            self.notify(f"Sending is not available: {why}.", title="C-ECHO", severity="warning")
            return
        self.query_one("#nodes-detail", Static).update(plain(f"C-ECHO {node.name} ({node.describe()})…"))
        self.run_worker(self._echo(node.name), group="echo", exit_on_error=False)

    async def _echo(self, name: str) -> None:
        outcome = await asyncio.to_thread(self.api.echo, name)
        self.echoes[name] = outcome
        self.post_message(EchoAnswered(outcome))
        self.refresh_rows()
        self.notify(f"{name}: {describe_echo(outcome)}", title="C-ECHO",
                    severity="information" if outcome.ok else "error", timeout=15)
