"""The send dialog: choose one or more nodes with the keyboard, see what will be sent, confirm.

Returns the chosen node names, or None when cancelled. Why nothing is pre-chosen: "nothing is sent twice by
accident" — a send needs an explicit Space on each node, then Enter. ``a`` on a node cycles through the anonymize
profiles for that node (``transforms`` after the dialog closes): that node gets de-identified copies, the store
keeps the originals. ``[[groups]]`` follow the nodes in the list: choosing a group chooses its enabled nodes (the
"Chosen" line shows them, and the group with what it stands for); the dialog returns node names only.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, SelectionList, Static
from textual.widgets.selection_list import Selection

from ...engine.config.groups import GroupConfig
from ...engine.config.nodes import NodeConfig
from ...engine.config.transforms import describe_chain, encode_chain
from ...engine.plans.queries import SendPreview
from ..commands.registry import CommandScope, bindings
from ..labels import literal, plain, visible


def describe(p: SendPreview) -> Text:
    """Who and what, in send order::

        B1  patient 123456 DOE JOHN
           1 CT, 1 RTSTRUCT, 1 RTPLAN, 1 RTDOSE = 4 objects, 0.6 MB
           incomplete: 97 CT missing

    Label, patient ID and name, every count: the operator checks each plan before it leaves (a filter or a mark
    made earlier must never send a plan nobody looked at). The counts have a line of their own so that a long
    name never pushes a number out of an 80-column dialog."""
    counts = ", ".join(f"{n} {modality}" for modality, n in p.counts)
    name = p.patient_name.replace("^", " ").strip()
    text = Text.assemble((p.label or "(no label)", "bold"), f"  patient {p.patient_id}{'  ' + name if name else ''}"
                         f"\n   {counts} = {p.instances} object{'s' if p.instances != 1 else ''}, "
                         f"{p.nbytes / 1e6:.1f} MB")
    if p.missing:
        text.append(f"\n   incomplete: {literal(p.missing)}", "bold")
    return visible(text)  # a label, a patient ID: as they are (labels.py)


class SendDialog(CommandScope, ModalScreen[list[str] | None]):
    AUTO_FOCUS = "#send-nodes"
    COMMAND_SCOPE = "send"
    BINDINGS = bindings("send")

    def __init__(self, nodes: Sequence[NodeConfig], previews: Sequence[SendPreview],
                 profiles: Sequence[str] = (), echo_failed: Mapping[str, str] | None = None,
                 groups: Sequence[GroupConfig] = ()) -> None:
        super().__init__()
        self.nodes = list(nodes)
        enabled = {n.name for n in self.nodes if n.enabled}
        # group name -> its enabled nodes (what choosing it sends to); listed after the nodes
        self.groups = {g.name: [m for m in g.nodes if m in enabled] for g in groups}
        self.group_members = {g.name: list(g.nodes) for g in groups}
        self.previews = list(previews)
        self.choices = ["", *(f"anonymize:{p}" for p in profiles)]  # "" : the stored bytes as they are
        self.transforms: dict[str, str] = {}  # node name → transform, for the nodes that get copies
        self.echo_failed = dict(echo_failed or {})  # node → why its last C-ECHO failed (this console's)

    def compose(self) -> ComposeResult:
        n = len(self.previews)
        with Vertical(id="send-box", classes="dialog"):
            yield Label(f"Send {n} plan{'s' if n != 1 else ''}", classes="dialog-title")
            yield Static(Text("\n").join(describe(p) for p in self.previews) if self.previews
                         else Text("nothing to send"), id="send-what")
            anonymize = ", a anonymize" if len(self.choices) > 1 else ""  # pressed again: the next profile
            yield Label(f"To (↑↓ move, Space choose{anonymize}, Enter send, Esc cancel):")
            yield SelectionList[str](
                *(Selection(self._prompt(node), node.name, False, disabled=not node.enabled) for node in self.nodes),
                *(Selection(self._group_prompt(name), name, False, disabled=not members)
                  for name, members in self.groups.items()),
                id="send-nodes")
            failed = [n.name for n in self.nodes if n.name in self.echo_failed]
            if failed:  # the reason in full, wrapped under the list (a list row would cut it)
                yield Static(Text("\n").join(plain(f"✗ {name}: last C-ECHO failed: {self.echo_failed[name]}",
                                                   "bold") for name in failed), id="send-echo-failed")
            yield Label("Chosen: none", id="send-chosen")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Send", id="send", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        nodes = self.query_one(SelectionList)
        nodes.focus()
        # the first enabled node under the cursor at once: a Space typed right away must choose it
        nodes.highlighted = next((i for i, n in enumerate(self.nodes) if n.enabled), None)

    def _prompt(self, node: NodeConfig) -> Text:
        # what the node will really get: the profile chosen here, then the node's own transforms (seg adds a SEG);
        # its machine mapping by name only (the table would not fit a line)
        chain = [self.transforms.get(node.name, ""), *node.transforms,
                 "machine_map" if node.machine_map or node.default_machine else ""]
        shown = describe_chain(encode_chain(chain))
        text = plain(f"{node.name}  {node.describe()}" + ("" if node.enabled else "  (disabled)")
                     + (f"  → {shown}" if shown else ""))
        if node.name in self.echo_failed:  # a send would probably wait for retries: say so before it is chosen
            text.append("  ✗ no C-ECHO", "bold red")
        return text

    def _group_prompt(self, name: str) -> Text:
        off = [m for m in self.group_members[name] if m not in self.groups[name]]
        return plain(f"{name}  group: {', '.join(self.group_members[name])}"
                     + (f"  ({', '.join(off)} disabled: left out)" if off else ""))

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged) -> None:  # type: ignore
        self._show_chosen()

    def _show_chosen(self) -> None:
        chosen = [n + (f" ({self.transforms[n]})" if n in self.transforms else "") for n in self.chosen]
        picked = [f"{g} = {', '.join(self.groups[g])}" for g in self._selected() if g in self.groups]
        self.query_one("#send-chosen", Label).update(plain(f"Chosen: {', '.join(chosen) if chosen else 'none'}"
                                                           + (f"  (group {'; '.join(picked)})" if picked else "")))

    def action_anonymize(self) -> None:
        """The next anonymize profile (or none) for the highlighted node."""
        nodes = self.query_one("#send-nodes", SelectionList)
        index = nodes.highlighted
        if len(self.choices) < 2 or index is None or index >= len(self.nodes) or not self.nodes[index].enabled:
            return
        node = self.nodes[index]
        following = self.choices[(self.choices.index(self.transforms.get(node.name, "")) + 1) % len(self.choices)]
        if following:
            self.transforms[node.name] = following
        else:
            self.transforms.pop(node.name, None)
        nodes.replace_option_prompt_at_index(index, self._prompt(node))
        self._show_chosen()

    def _selected(self) -> list[str]:
        return list(self.query_one("#send-nodes", SelectionList).selected)

    @property
    def chosen(self) -> list[str]:
        """The chosen nodes, groups replaced by their enabled nodes, each once, in the list's order."""
        names = {m for name in self._selected() for m in self.groups.get(name, [name])}
        return [n.name for n in self.nodes if n.name in names]

    def action_send(self) -> None:
        if isinstance(self.focused, Button) and self.focused.id == "cancel":
            self.dismiss(None)
            return
        chosen = self.chosen
        if not chosen:
            self.notify("Choose at least one node with Space.", severity="warning")
            return
        if not self.previews:
            self.dismiss(None)
            return
        order = [n.name for n in self.nodes]
        self.dismiss(sorted(chosen, key=order.index))

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "send":
            self.action_send()
        else:
            self.dismiss(None)
