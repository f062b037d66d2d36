"""The Patient → Plan tree.

Why it never rebuilds: operators keep a patient open and the cursor on a plan while a TPS is still sending; a
rebuild on every event would lose both. Nodes are found by patient ID / plan UID and re-labelled, added (in sorted
position) or removed one by one; Textual's Tree keeps the cursor on the same node when lines move.
Children load lazily (``LoadChildren`` on first expand), so opening the tree costs one row per patient.
With a filter on (``tree_filter``), a patient lists only the plans the filter shows (``treefilter.TreeFilter``:
label words, source AE, modality, send state…): the cursor, marks by Space and a send can never land on a plan the
filter hides. New patients go where the main screen's sort (``sort_key``) puts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from rich.text import Text, TextType
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from ...engine.plans.queries import LooseObject, PatientRow, PlanRow
from ...engine.plans.treefilter import TreeFilter, sort_patients
from ..commands.registry import CommandScope, bindings
from ..labels import JobState, Palette, patient_label, plan_label, plain, unconnected_label, visible


@dataclass(frozen=True)
class NodeData:
    kind: str  # "patient", "plan", "unconnected", "member"
    patient_id: str
    plan_uid: str = ""
    series_uid: str = ""  # member: the unconnected series it lists
    sop_uids: tuple[str, ...] = ()  # member: exactly the objects its row counts (what a send of it takes)
    modality: str = ""


class PlanTree(CommandScope, Tree[NodeData]):
    COMMAND_SCOPE = "tree"
    BINDINGS = bindings("tree")

    class LoadChildren(Message):
        """A patient was expanded for the first time: its plans must be read (in a worker)."""

        def __init__(self, patient_id: str) -> None:
            super().__init__()
            self.patient_id = patient_id

    class LoadUnconnected(Message):
        def __init__(self, patient_id: str) -> None:
            super().__init__()
            self.patient_id = patient_id

    class MarksChanged(Message):
        def __init__(self, marked: frozenset[str]) -> None:
            super().__init__()
            self.marked = marked

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("patients", id=id)
        self.show_root = False
        self.auto_expand = True
        self.palette = Palette()
        self.patients: dict[str, PatientRow] = {}
        self.plans: dict[str, PlanRow] = {}
        self.marked: set[str] = set()
        self.sends: dict[str, dict[str, JobState]] = {}
        self.loaded: set[str] = set()  # patients whose plans are in the tree
        self.tree_filter = TreeFilter()  # the main screen's filter: plans it hides are not in the tree (nor ``plans``)
        self.sort_key = "received"  # treefilter.SORTS
        self.receiving: dict[str, dict[int, int]] = {}  # patient ID → open association → objects received so far
        self._pnodes: dict[str, TreeNode[NodeData]] = {}
        self._plan_nodes: dict[str, TreeNode[NodeData]] = {}
        self._unconnected: dict[str, TreeNode[NodeData]] = {}

    def process_label(self, label: TextType) -> Text:
        """Every label shows DICOM values (and calling AE titles): a str is never read as markup, control
        characters are shown (labels.py)."""
        return super().process_label(plain(label) if isinstance(label, str) else visible(label))

    # -- queries ------------------------------------------------------------------------------------------------
    @property
    def cursor_data(self) -> NodeData | None:
        node = self.cursor_node
        return node.data if node is not None else None

    def patient_node(self, patient_id: str) -> TreeNode[NodeData] | None:
        return self._pnodes.get(patient_id)

    def plan_node(self, plan_uid: str) -> TreeNode[NodeData] | None:
        return self._plan_nodes.get(plan_uid)

    def find_plan(self, label: str) -> str | None:
        return next((uid for uid, p in self.plans.items() if p.label == label), None)

    def expanded_patients(self) -> list[str]:
        return [pid for pid, node in self._pnodes.items() if node.is_expanded]

    def shows(self, row: PlanRow) -> bool:
        """The filter lets this plan be listed (and so selected)."""
        return self.tree_filter.shows(self.patients.get(row.patient_id), row)

    # -- updates (all on the event loop) -----------------------------------------------------------------------
    def show_patients(self, rows: Iterable[PatientRow]) -> None:
        """Replace the top level (start-up and filter changes only; events use ``upsert_patients``)."""
        self.clear()
        self.patients.clear()
        self.plans.clear()
        self.loaded.clear()
        self._pnodes.clear()
        self._plan_nodes.clear()
        self._unconnected.clear()
        for row in rows:
            self.patients[row.patient_id] = row
            self._pnodes[row.patient_id] = self.root.add(self._patient_text(row),
                                                         NodeData("patient", row.patient_id))
        if self._pnodes and self.cursor_line < 0:
            self.cursor_line = 0

    def upsert_patients(self, rows: Iterable[PatientRow]) -> None:
        for row in rows:
            self.patients[row.patient_id] = row
            node = self._pnodes.get(row.patient_id)
            label = self._patient_text(row)
            if node is not None:
                node.set_label(label)  # a row stays where it is (the cursor with it) until the next sort or filter
                continue
            order = [p.patient_id for p in sort_patients(self.patients.values(), self.sort_key)]
            after = order[order.index(row.patient_id) + 1:]
            before = next((self._pnodes[pid] for pid in after if pid in self._pnodes), None)
            self._pnodes[row.patient_id] = self.root.add(label, NodeData("patient", row.patient_id), before=before)
        if self._pnodes and self.cursor_line < 0:
            self.cursor_line = 0

    def set_plans(self, patient_id: str, rows: list[PlanRow]) -> None:
        """The patient's plans as they are now: re-label, add in label order, drop what vanished."""
        pnode = self._pnodes.get(patient_id)
        if pnode is None:
            return
        self.loaded.add(patient_id)
        rows = [r for r in rows if self.shows(r)]
        wanted = {r.plan_uid for r in rows}
        for uid in [u for u, n in self._plan_nodes.items() if n.data and n.data.patient_id == patient_id]:
            if uid not in wanted:
                self._remove_plan(uid)
        for row in rows:  # rows arrive sorted by label
            self.plans[row.plan_uid] = row
            if row.sends and row.plan_uid not in self.sends:  # events, once any arrived, are newer
                committed = dict(row.commitments)
                self.sends[row.plan_uid] = {n: JobState(n, st, d, t, committed.get(n, ""))
                                            for n, st, d, t in row.sends}
            node = self._plan_nodes.get(row.plan_uid)
            if node is not None:
                node.set_label(self._plan_text(row))
                continue
            later = [n for n in pnode.children if n.data and n.data.kind == "plan"
                     and (self.plans[n.data.plan_uid].label, n.data.plan_uid) > (row.label, row.plan_uid)]
            before = later[0] if later else self._unconnected.get(patient_id)
            self._plan_nodes[row.plan_uid] = pnode.add_leaf(
                self._plan_text(row), NodeData("plan", patient_id, row.plan_uid), before=before)
        if patient_id not in self._unconnected:
            self._unconnected[patient_id] = pnode.add(unconnected_label(None, self.palette),
                                                      NodeData("unconnected", patient_id))

    def set_unconnected(self, patient_id: str, members: list[LooseObject]) -> None:
        node = self._unconnected.get(patient_id)
        if node is None:
            return
        node.set_label(unconnected_label(len(members), self.palette))
        node.remove_children()
        groups: dict[tuple[str, str, str], list[str]] = {}
        for m in members:
            groups.setdefault((m.modality or "?", m.series_uid, m.source), []).append(m.sop_uid)
        for (modality, series, source), sops in sorted(groups.items()):
            node.add_leaf(f"{modality} ×{len(sops)}  series …{series[-12:]}  from {source or '?'}",
                          NodeData("member", patient_id, series_uid=series, sop_uids=tuple(sops), modality=modality))
        if not members:
            node.allow_expand = False

    def remove_patient(self, patient_id: str) -> None:
        """A patient deleted from the store (nothing of it left) leaves the tree, its plans with it."""
        for uid in [u for u, n in self._plan_nodes.items() if n.data and n.data.patient_id == patient_id]:
            self._remove_plan(uid)
        node = self._pnodes.pop(patient_id, None)
        self.patients.pop(patient_id, None)
        self.loaded.discard(patient_id)
        self._unconnected.pop(patient_id, None)
        if node is not None:
            self._cursor_off(node)
            node.remove()
            self._lines_now()  # the last row gone leaves no cursor rather than a stale one

    def _cursor_off(self, node: TreeNode[NodeData]) -> None:
        """The cursor stands on ``node`` (or inside it), which is about to go: put it on the next row at that level
        (else the one before) now. Left to the tree, the cursor would keep the removed node until the next redraw
        and then move without a highlight event, so the details would describe what is gone."""
        at = self.cursor_node
        while at is not None and at is not node:
            at = at.parent
        if at is None or node.parent is None:
            return
        self._lines_now()  # move_cursor finds each row where it is drawn
        siblings = list(node.parent.children)
        i = siblings.index(node)
        rest = siblings[i + 1:] + siblings[:i][::-1]
        self.move_cursor(rest[0] if rest else None)

    def _lines_now(self) -> None:
        """The tree's rows (and so the cursor's node) rebuilt now, not at the next redraw: Textual rebuilds them
        lazily, when a line is asked for."""
        self.get_node_at_line(0)

    def remove_plan(self, plan_uid: str) -> None:
        self._remove_plan(plan_uid)

    def _remove_plan(self, uid: str) -> None:
        node = self._plan_nodes.pop(uid, None)
        self.plans.pop(uid, None)
        self.marked.discard(uid)
        if node is not None:
            if self.cursor_node is node and node.parent is not None:
                self.move_cursor(node.parent)
            node.remove()

    def set_sends(self, plan_uid: str, jobs: dict[str, JobState]) -> None:
        self.sends[plan_uid] = jobs
        self._relabel(plan_uid)

    def _plan_text(self, row: PlanRow) -> Text:
        sends = tuple(self.sends.get(row.plan_uid, {}).values())
        return self._marked_match(plan_label(row, self.palette, marked=row.plan_uid in self.marked, sends=sends))

    def _patient_text(self, row: PatientRow) -> Text:
        return self._marked_match(patient_label(row, self.palette, self.receiving_count(row.patient_id)))

    def receiving_count(self, patient_id: str) -> int | None:
        """Objects of this patient that open associations brought so far (None: none is open for it)."""
        counts = self.receiving.get(patient_id)
        return sum(counts.values()) if counts else None

    def set_receiving(self, patient_id: str, assoc_id: int, received: int | None) -> bool:
        """An open association's count for a patient (None: that association ended). True if the patient has a
        row (relabelled); False if it is not in the tree (yet, or hidden by the filter)."""
        counts = self.receiving.setdefault(patient_id, {})
        if received is None:
            counts.pop(assoc_id, None)
        else:
            counts[assoc_id] = received
        if not counts:
            del self.receiving[patient_id]
        node, row = self._pnodes.get(patient_id), self.patients.get(patient_id)
        if node is None or row is None:
            return False
        node.set_label(self._patient_text(row))
        return True

    def clear_receiving(self) -> None:
        """The station's events were interrupted (an attached console reconnects): no count is known to be live."""
        for pid, counts in list(self.receiving.items()):
            for assoc_id in list(counts):
                self.set_receiving(pid, assoc_id, None)

    def association_ended(self, assoc_id: int) -> None:
        """Whatever its last progress said (an attached console may have missed it): no longer receiving."""
        for pid in [pid for pid, counts in self.receiving.items() if assoc_id in counts]:
            self.set_receiving(pid, assoc_id, None)

    def _marked_match(self, text: Text) -> Text:
        """What the filter matched, underlined in the label: the operator sees why a row is listed."""
        words = self.tree_filter.highlights()
        if words:
            text.highlight_words(words, f"underline bold {self.palette.accent}", case_sensitive=False)
        return text

    def relabel_all(self) -> None:
        """After a theme change: every label again in the new palette."""
        for pid, node in self._pnodes.items():
            node.set_label(self._patient_text(self.patients[pid]))
        for uid in self._plan_nodes:
            self._relabel(uid)

    def unconnected_open(self, patient_id: str) -> bool:
        node = self._unconnected.get(patient_id)
        return node is not None and node.is_expanded

    def _relabel(self, uid: str) -> None:
        node, row = self._plan_nodes.get(uid), self.plans.get(uid)
        if node is not None and row is not None:
            node.set_label(self._plan_text(row))

    # -- keys and expansion ------------------------------------------------------------------------------------
    def action_toggle_mark(self) -> None:
        data = self.cursor_data
        if data is None or data.kind != "plan":
            self.app.bell()
            return
        self.marked.symmetric_difference_update({data.plan_uid})
        self._relabel(data.plan_uid)
        self.post_message(self.MarksChanged(frozenset(self.marked)))
        self.action_cursor_down()

    def _on_tree_node_expanded(self, event: Tree.NodeExpanded[NodeData]) -> None:
        data = event.node.data
        if data is None:
            return
        if data.kind == "patient" and data.patient_id not in self.loaded:
            self.post_message(self.LoadChildren(data.patient_id))
        elif data.kind == "unconnected" and not event.node.children:
            self.post_message(self.LoadUnconnected(data.patient_id))
