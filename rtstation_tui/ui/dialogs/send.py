"""The send dialog: choose one or more nodes with the keyboard, see what will be sent, confirm.

Returns the chosen node names, or None when cancelled. Why nothing is pre-chosen: "nothing is sent twice by
accident" — a send needs an explicit Space on each node, then Enter. ``a`` on a node cycles through the anonymize
profiles for that node (``transforms`` after the dialog closes): that node gets de-identified copies, the store
keeps the originals. ``[[groups]]`` follow the nodes in the list: choosing a group chooses its enabled nodes (the
"Chosen" line shows them, and the group with what it stands for); the dialog returns node names only. Every
transform a node's copies will go through is listed (the chosen one, then the node's own ``transforms`` and
``machine_map``, in the order the sender applies them).

What is sent is plans (``SendPreview``) or one tree node that is not a plan (``SelectionPreview``: a patient, a
study, a series, the unconnected objects): either way the dialog names whose it is and every count.
"""

from __future__ import annotations

from typing import Mapping, Sequence, Union

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, SelectionList, Static
from textual.widgets.selection_list import Selection

from ...engine.config.groups import GroupConfig
from ...engine.config.nodes import NodeConfig
from ...engine.api import SelectionPreview, SendPreview
from ...engine.config.transforms import describe_chain, encode_chain
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


Preview = Union[SendPreview, SelectionPreview]


def selection_name(p: SelectionPreview) -> str:
    """'patient', 'study …4567', 'series …4567' or the console's own name of the objects."""
    sel = p.selection
    if sel.level == "objects":
        return sel.what or "objects"
    return f"patient {sel.uid}" if sel.level == "patient" else f"{sel.level} …{sel.uid[-12:]}"


def describe_selection(p: SelectionPreview) -> Text:
    """Whose and what, for a tree node that is not a plan::

        unconnected CT series …123456  patient 123456 DOE JOHN
           1 series: Thorax 3mm
           900 CT = 900 objects, 46.2 MB

    The level first. A patient is everything stored for it (its plans counted), not only what the tree shows
    under a filter: ``patient 123456  DOE JOHN / everything stored: 2 studies, 5 series; 2 plans among them``."""
    name = p.patient_name.replace("^", " ").strip()
    counts = ", ".join(f"{n} {modality}" for modality, n in p.counts)
    patient = f"patient {p.patient_id}{'  ' + name if name else ''}"
    if p.selection.level == "patient":
        text = Text.assemble((patient, "bold"))
        about = f"everything stored: {p.description}"
    else:
        text = Text.assemble((selection_name(p), "bold"), f"  {patient}")
        about = p.description
    plans = f"{p.plans} plan{'s' if p.plans != 1 else ''} among them" if p.plans else ""
    if about or plans:
        text.append("\n   " + "; ".join(filter(None, (about, plans))))
    text.append(f"\n   {counts} = {p.instances} object{'s' if p.instances != 1 else ''}, {p.nbytes / 1e6:.1f} MB")
    return visible(text)


def what_is_sent(previews: Sequence[Preview]) -> str:
    """The dialog's title: 'Send 2 plans', 'Send patient', 'Send unconnected objects'."""
    selections = [p for p in previews if isinstance(p, SelectionPreview)]
    if selections:
        return f"Send {selection_name(selections[0])}"
    n = len(previews)
    return f"Send {n} plan{'s' if n != 1 else ''}"


def node_chain(chosen: str, node: NodeConfig) -> list[str]:
    """What this node will really get, in the sender's order: the profile chosen here, then the node's own
    transforms (seg adds a SEG); its machine mapping by name only (the table would not fit a line)."""
    return [s for s in (chosen, *node.transforms, "machine_map" if node.machine_map or node.default_machine else "")
            if s]


class SendDialog(CommandScope, ModalScreen[list[str] | None]):
    AUTO_FOCUS = "#send-nodes"
    COMMAND_SCOPE = "send"
    BINDINGS = bindings("send")

    def __init__(self, nodes: Sequence[NodeConfig], previews: Sequence[Preview],
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
        with Vertical(id="send-box", classes="dialog"):
            yield Label(plain(what_is_sent(self.previews)), classes="dialog-title")
            yield Static(Text("\n").join(describe(p) if isinstance(p, SendPreview) else describe_selection(p)
                                         for p in self.previews) if self.previews
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
            chains = Static(self._chains(), id="send-transforms")
            chains.display = bool(self._chains().plain)
            yield chains
            yield Label("Chosen: none", id="send-chosen")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Send", id="send", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        nodes = self.query_one(SelectionList)
        nodes.focus()
        # the first enabled node under the cursor at once: a Space typed right away must choose it
        nodes.highlighted = next((i for i, n in enumerate(self.nodes) if n.enabled), None)

    def _chains(self) -> Text:
        """Each enabled node whose copies are transformed, with the whole chain, wrapped (a list row would cut it);
        the stored originals never change."""
        lines = [f"{n.name} gets copies: {', then '.join(chain)}" for n in self.nodes
                 if n.enabled and (chain := node_chain(self.transforms.get(n.name, ""), n))]
        return plain("\n".join(lines), "dim", lines=True)

    def _prompt(self, node: NodeConfig) -> Text:
        shown = describe_chain(encode_chain(node_chain(self.transforms.get(node.name, ""), node)))
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
        chains = self.query_one("#send-transforms", Static)
        chains.update(self._chains())
        chains.display = bool(self._chains().plain)
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
