"""[HARDEN2] 12: values from the network and from files are shown literally, on every screen of the console.

A peer may name a patient ``[/bold]CLOSE^X``: Textual and Rich read a str handed to a widget as markup, so that
name raised MarkupError when its plan was opened (the console, and with it the receiver, exited), ``[bold red]…[/]``
was styled and ``[@click=app.quit]…[/]`` became an action. Here every value the console shows — patient IDs and
names, plan labels and names, machine, beam and ROI names, series descriptions, the calling AE, node names and AE
titles, rule names, job errors, log lines, file names, peers' error texts — is hostile, every screen and dialog is
opened, and each time the console must still run, show the hostile text as it was written, give no part of the
screen the style or the link/action the markup asked for, and send no control character to the terminal.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import UID
from tui_support import FakeSender, QueueRow, import_settled, make_app, screen_segments, screen_text, until

from helpers import station_toml, write_config
from rtstation_tui.engine.config.model import load_config
from rtstation_tui.engine.events import (ImportFolderState, InstanceQuarantined, JobChanged, JobProgress, LogEvent,
                                         ReceiverState)
from rtstation_tui.engine.metrics.update import update_all
from rtstation_tui.engine.station import Station
from rtstation_tui.engine.store.index import Index
from rtstation_tui.synthetic import make_patient
from rtstation_tui.ui.dialogs.confirm import ConfirmDialog
from rtstation_tui.ui.dialogs.help import HelpScreen
from rtstation_tui.ui.dialogs.nodeform import NodeForm
from rtstation_tui.ui.dialogs.ruleform import RuleForm
from rtstation_tui.ui.dialogs.send import SendDialog
from rtstation_tui.ui.screens.metrics import MetricsScreen
from rtstation_tui.ui.screens.nodes import NodesScreen
from rtstation_tui.ui.screens.rules import RulesScreen
from rtstation_tui.ui.screens.settings import SettingsScreen

CLOSE = "[/bold]CLOSE^X"  # a closing tag with nothing open: MarkupError
RED = "[bold red]RED[/]"  # 16 characters: a valid AE title too
CLICK = "[@click=app.quit]Q[/]"
LINK = "[link=file:///etc/passwd]L[/]"
UNBALANCED = "a[b [c"
ESC = "E\x1b[31mSC\x07"  # a terminal escape sequence and a bell
ODD = "$accent {x} Zoë Ωμέγα 中文"
LONG = "W" * 40 + "[i]" + "W" * 200

NODE_A, NODE_B = CLOSE, CLICK  # node names (printable, so the loader takes them)
RULE = CLICK
CONFIG_DIR = "[@click=app.quit]cfg"  # a folder name: the settings title shows the file's path
NODES = f"""
[[nodes]]
name = "{NODE_A}"
ae_title = "{RED}"
host = "127.0.0.1"
port = 11200

[[nodes]]
name = "{NODE_B}"
ae_title = "{CLOSE}"
host = "127.0.0.1"
port = 11201

[[rules]]
name = "{RULE}"
targets = ["{NODE_A}"]
plan_label = "{CLOSE}"
"""


class HostileSender(FakeSender):
    """Every node is down, and the peer's reason is hostile text."""

    def __init__(self) -> None:
        super().__init__(down=(NODE_A, NODE_B))

    def echo(self, node: str):  # type: ignore[no-untyped-def]
        outcome = super().echo(node)
        return type(outcome)(node, False, None, f"peer said {RED} {ESC} {LINK}")


def hostile_patient(root: Path) -> str:
    """One complete synthetic patient whose every shown value is hostile, plus one unconnected CT; its plan UID."""
    p = make_patient(root, RED, name=CLOSE, slices=3, rows=8, cols=8, label=CLICK, machine=ESC, seed="markup")
    for path in root.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.SpecificCharacterSet, ds.SeriesDescription = "ISO_IR 192", LONG
        if ds.Modality == "RTPLAN":
            ds.RTPlanName = f"{LINK} {ODD} {UNBALANCED}"
            for beam, name in zip(ds.BeamSequence, (LINK, UNBALANCED, ODD, ESC)):
                beam.BeamName = name
        elif ds.Modality == "RTSTRUCT":
            add_rois(ds, (CLOSE, RED, CLICK, ESC))
        ds.save_as(path)
    loose = pydicom.dcmread(p.ct[0])  # a CT of another series that nothing references
    loose.SOPInstanceUID = loose.file_meta.MediaStorageSOPInstanceUID = UID("1.2.826.0.1.3680043.10.1.4242.1")
    loose.SeriesInstanceUID = UID("1.2.826.0.1.3680043.10.1.4242")
    loose.save_as(root / "loose.dcm")
    return p.plan_uid


def add_rois(ds: pydicom.Dataset, names: tuple[str, ...]) -> None:
    """Copies of the synthetic outline under hostile names, as organs (shown in the DVH at once)."""
    from copy import deepcopy

    for number, name in enumerate(names, start=2):
        roi, contour, obs = (deepcopy(seq[0]) for seq in (ds.StructureSetROISequence, ds.ROIContourSequence,
                                                            ds.RTROIObservationsSequence))
        roi.ROINumber, roi.ROIName = number, name
        contour.ReferencedROINumber = number
        obs.ObservationNumber, obs.ReferencedROINumber, obs.RTROIInterpretedType = number, number, "ORGAN"
        ds.StructureSetROISequence.append(roi)
        ds.ROIContourSequence.append(contour)
        ds.RTROIObservationsSequence.append(obs)


@pytest.fixture
def hostile(tmp_path, monkeypatch):
    monkeypatch.setattr(Station, "free_disk_mb", lambda self: 123_456.0)
    folder = tmp_path / CONFIG_DIR
    folder.mkdir()
    config = load_config(write_config(folder / "rtstation.toml", station_toml(tmp_path / "var", 11112, extra=NODES)))
    plan_uid = hostile_patient(tmp_path / "syn")
    import_settled(config, [tmp_path / "syn"], source_ae=RED)
    index = Index(config.data_dir)
    assert update_all(index, config) == 1
    index.close()
    sender = HostileSender()
    sender.queue.rows += [QueueRow(101, NODE_A, plan_uid, CLICK, "queued", 0, 5),
                          QueueRow(102, NODE_B, plan_uid, CLICK, "failed", 1, 5, 4, error=f"{ESC} {CLOSE} {LINK}")]
    return config, plan_uid, sender


def check(app, *literals: str, where: str) -> None:  # type: ignore[no-untyped-def]
    """The console runs, shows ``literals`` as written, and no hostile markup or control character took effect."""
    assert app.is_running and app.return_code is None, f"{where}: the console exited"
    text = screen_text(app)
    for literal in literals:
        assert literal in text, f"{where}: {literal!r} is not on screen as written:\n{text}"
    for seg in screen_segments(app):
        style = seg.style
        assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in seg.text), (
            f"{where}: a control character reaches the terminal: {seg.text!r}")
        if style is None:
            continue
        assert not (style.link or "").startswith("file:"), f"{where}: {seg.text!r} links to {style.link}"
        assert "app.quit" not in repr(style.meta), f"{where}: {seg.text!r} carries the action {style.meta}"
        assert not ("RED" in seg.text and style.bold and reddish(style)), f"{where}: {seg.text!r} is styled bold red"


def reddish(style) -> bool:  # type: ignore[no-untyped-def]
    """Rich's ``red`` and Textual's differ (#f4005f, #ff0000); neither theme draws text near either in bold."""
    if style.color is None:
        return False
    r, g, b = style.color.get_truecolor()
    return r >= 180 and g <= 90 and b <= 120


async def test_every_screen_shows_hostile_values_literally(hostile):
    config, plan_uid, sender = hostile
    app = make_app(config, sender=sender)
    async with app.run_test(size=(220, 60)) as pilot:
        main = app.main
        tree = main.tree
        await until(pilot, lambda: tree.patients and app._starting and app._starting.done(), what="patients")
        check(app, "[bold red]RED[/]  [/bold]CLOSE X", where="tree")

        # the patient, its plan (details: facts, beams, chain with the calling AE, send history) and unconnected
        await pilot.press("enter")
        await until(pilot, lambda: plan_uid in tree.plans, what="the plan in the tree")
        await pilot.press("down")
        await until(pilot, lambda: main.query_one("#details").plan_uid == plan_uid, what="the plan's details")
        check(app, CLICK, CLOSE.replace("^", " "), LINK, UNBALANCED, ODD, "E␛[31mSC␇  APPROVED",
              "[link=file:///etc/passwd]L[/] $accent {x} Zoë Ωμέγα 中文 a[b [c", "E␛[31mSC␇ [/bold]CLOSE^X", where="plan")
        await pilot.press("down", "enter")  # the unconnected objects, with the AE that sent them
        await until(pilot, lambda: any("4242" in str(n.label) for n in tree._unconnected[RED].children),
                    what="the unconnected CT")
        check(app, f"series …{'1.3680043.10.1.4242'[-12:]}  from {RED}", where="unconnected")

        # engine events: a progress bar, the header, the log pane, a notification
        app.apply_events([
            JobChanged(7, NODE_A, plan_uid, CLICK, "sending", 1, 5, 0),
            JobProgress(7, NODE_A, plan_uid, CLICK, 2, 5, 2_000_000, 5_000_000, 3.0),
            ReceiverState("error", "127.0.0.1:11112", detail=f"bind failed: {CLOSE} {ESC}"),
            ImportFolderState("error", "/srv/[@click=app.quit]in", detail=f"{RED} {ESC}"),
            LogEvent(logging.WARNING, "rtstation.receiver", f"association from {RED}@{CLICK}: {ESC} {LINK}"),
            InstanceQuarantined(f"{CLOSE}.dcm", f"{RED} {ESC}", RED),
        ])
        await until(pilot, lambda: len(app._notifications) >= 1, what="the quarantine notification")
        await pilot.pause()
        check(app, f"{NODE_A} ←", f"{NODE_A}: sending 40%", f"bind failed: {CLOSE} E␛[31mSC␇", "import [@click=app.quit]in: error ([bold red]RED[/] E␛[31mSC␇)",
              f"association from {RED}@{CLICK}: E␛[31mSC␇ {LINK}", where="events")

        await pilot.press("e")  # C-ECHO every node: their names, and each peer's (hostile) reason
        await until(pilot, lambda: sum(n.title == "C-ECHO" for n in app._notifications) >= 3, what="echo results")
        await pilot.pause()
        check(app, where="notifications")
        messages = [n.message for n in app._notifications]
        assert all(not n.markup for n in app._notifications)
        assert f"{CLOSE}.dcm: quarantined ({RED} E␛[31mSC␇)" in messages
        assert f"{NODE_B}: FAILED peer said {RED} E␛[31mSC␇ {LINK}" in messages
        app.clear_notifications()

        await pilot.press("up", "space", "s")  # mark the plan, then send it: the dialog names the nodes
        await until(pilot, lambda: isinstance(app.screen, SendDialog), what="the send dialog")
        await pilot.press("space")
        await pilot.pause()
        check(app, f"{CLICK}  patient {RED}", f"{NODE_A}  {RED}@127.0.0.1:11200", f"Chosen: {NODE_A}", where="send dialog")
        await pilot.press("escape")

        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        check(app, "Keys", where="help")
        await pilot.press("escape")

        app.clear_notifications()
        tree.move_cursor(tree.plan_node(plan_uid))
        await pilot.press("D")  # delete from the store: refused while job 101 is queued, with the names as they are
        await until(pilot, lambda: any(n.title == "Delete refused" for n in app._notifications), what="the refusal")
        [refusal] = [n for n in app._notifications if n.title == "Delete refused"]
        assert not refusal.markup and f"plan {CLICK} of patient {RED} is not deleted" in refusal.message
        assert f"job 101 to {NODE_A} (queued, {CLICK})" in refusal.message
        app.clear_notifications()

        await pilot.press("n")  # nodes: table, detail, delete question (rule and job named), the form's errors
        await until(pilot, lambda: isinstance(app.screen, NodesScreen), what="nodes")
        await pilot.pause()
        check(app, NODE_A, NODE_B, RED, f"{NODE_A}: {RED}@127.0.0.1:11200 as RTSTATION", where="nodes")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the delete question")
        check(app, f"Delete node {NODE_A}", f"used by rule {RULE!r}", f"job 101 ({CLICK}, queued)", where="confirm")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NodesScreen), what="nodes again")
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, NodeForm), what="the node form")
        await pilot.press("ctrl+a", "ctrl+k", *NODE_B)
        await pilot.pause()
        check(app, f"Edit node {NODE_A}", f"✗ {NODE_B!r} is already the name of another", where="node form")
        await pilot.press("escape", "escape")

        await pilot.press("r")  # rules: table, dry run (rule names, labels, reasons), the form
        await until(pilot, lambda: isinstance(app.screen, RulesScreen) and app.screen.dry_run, what="rules")
        await pilot.pause()
        check(app, RULE, NODE_A, f"label={CLOSE}", f"{CLICK}  {RED}", where="rules")
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, RuleForm), what="the rule form")
        check(app, f"Edit rule {RULE}", where="rule form")
        await pilot.press("escape", "escape")

        await pilot.press("S")
        await until(pilot, lambda: isinstance(app.screen, SettingsScreen), what="settings")
        await pilot.press("down", "down", "down", "down", "down")
        await pilot.pause()
        check(app, CONFIG_DIR, where="settings")
        await pilot.press("escape")

        await pilot.press("m")  # metrics: the plans table, beams, the ROI list and the readout under the DVH
        await until(pilot, lambda: isinstance(app.screen, MetricsScreen) and app.screen.curves, what="metrics")
        await pilot.pause()
        check(app, CLICK, RED, LINK, UNBALANCED, "E␛[31mSC␇", CLOSE, where="metrics")
        readout = str(app.screen.query_one("#metrics-readout").render())
        assert CLOSE in readout and CLICK in readout and "E␛[31mSC␇" in readout
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is main, what="back on the main screen")
        check(app, where="main again")
