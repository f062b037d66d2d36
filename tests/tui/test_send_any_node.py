"""[HARDEN2] 19 in the console: any tree node is sent with `s` — a patient (everything stored for it), the
unconnected bin, one unconnected series — through the same dialog as plans: it names the level, the patient and
every count, keeps node choice, failed-echo marks and transforms, and asks before a filter hides part of it."""

from __future__ import annotations

import pytest
from tui_support import NODES, FakeSender, fill_plans, import_settled, make_app, make_config, screen_text, until

from helpers import write_config, station_toml
from rtstation_tui.engine.config.model import load_config
from rtstation_tui.engine.plans.selection import Selection
from rtstation_tui.synthetic import make_ct_bulk
from rtstation_tui.ui.dialogs.confirm import ConfirmDialog
from rtstation_tui.ui.dialogs.send import SendDialog

PLANS = [("PAT01", "DOE^JANE", "LIVE"), ("PAT01", "DOE^JANE", "BIG1")]
# QA has transforms of its own: the dialog lists them after the one chosen with `a`
OWN = NODES.replace('port = 11200\n', 'port = 11200\ntransforms = ["set:StationName=QA_COPY"]\n', 1)


def store_with_loose_ct(tmp_path, count=5):
    config = load_config(write_config(tmp_path / "rtstation.toml", station_toml(tmp_path / "var", 11112, extra=OWN)))
    fill_plans(config, tmp_path, PLANS)
    loose = make_ct_bulk(tmp_path / "loose", count, rows=8, cols=8, patient_id="PAT01", seed="loose-ct")
    import_settled(config, [tmp_path / "loose"])
    return config, loose


async def open_patient_of(pilot, patient_id: str) -> None:
    tree = pilot.app.main.tree
    await until(pilot, lambda: patient_id in tree.patients, what=patient_id)
    tree.move_cursor(tree.patient_node(patient_id))
    await pilot.press("enter")
    await until(pilot, lambda: patient_id in tree.loaded, what=f"{patient_id} plans")


async def open_patient(pilot):
    await open_patient_of(pilot, "PAT01")


async def send_first_loose_series(pilot, patient_id: str) -> None:
    """Open the patient's unconnected bin, put the cursor on its first series and press s."""
    await open_patient_of(pilot, patient_id)
    tree = pilot.app.main.tree
    bin_ = tree._unconnected[patient_id]
    tree.move_cursor(bin_)
    await pilot.press("enter")
    await until(pilot, lambda: bin_.children, what="the loose series")
    tree.move_cursor(bin_.children[0])
    await pilot.press("s")


async def test_an_unconnected_series_is_named_counted_and_sent_with_transforms_and_echo_marks(tmp_path):
    config, loose = store_with_loose_ct(tmp_path)
    sender = FakeSender()
    app = make_app(config, sender=sender)
    async with app.run_test(size=(80, 24)) as pilot:
        tree = app.main.tree
        await open_patient(pilot)
        await pilot.press("e")  # ARCHIVE's C-ECHO fails (FakeSender): the dialog marks it
        await until(pilot, lambda: "ARCHIVE" in app.last_echo, what="echo answers")
        bin_ = tree._unconnected["PAT01"]
        tree.move_cursor(bin_)
        await pilot.press("s")  # the bin itself: every unconnected object of the patient, read as it is now
        await until(pilot, lambda: isinstance(app.screen, SendDialog), what="send dialog of the bin")
        assert "unconnected objects  patient PAT01" in screen_text(app) and "5 CT = 5 objects" in screen_text(app)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, SendDialog), what="dialog closed")
        await pilot.press("enter")
        await until(pilot, lambda: bin_.children, what="the unconnected series listed")
        tree.move_cursor(bin_.children[0])
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SendDialog), what="send dialog")
        text = screen_text(app)
        series = tree.cursor_data.series_uid
        assert f"Send unconnected CT series …{series[-12:]}" in text, text
        assert f"unconnected CT series …{series[-12:]}  patient PAT01" in text
        assert "5 CT = 5 objects" in text
        assert "✗ no C-ECHO" in text and "ARCHIVE: last C-ECHO failed: connection refused" in text
        assert "QA gets copies: set:StationName=QA_COPY" in text
        await pilot.press("a")  # the first profile for QA: chosen first, then the node's own
        first = config.anonymize.profile_names()[0]
        await until(pilot, lambda: f"QA gets copies: anonymize:{first}, then set:StationName=QA_COPY"
                    in screen_text(app), what="the whole chain for QA")
        assert f"→ anonymize:{first}" in screen_text(app)
        await pilot.press("space", "enter")
        await until(pilot, lambda: sender.selections, what="sent")
    [(selection, node, transform)] = sender.selections
    assert (node, transform) == ("QA", f"anonymize:{first}")
    from pydicom import dcmread
    assert sorted(selection.sop_uids) == sorted(dcmread(p).SOPInstanceUID for p in loose)


async def test_a_patient_half_hidden_by_the_filter_is_sent_whole_only_after_a_question(tmp_path):
    config = make_config(tmp_path)
    fill_plans(config, tmp_path, PLANS)
    sender = FakeSender()
    app = make_app(config, sender=sender)
    async with app.run_test(size=(80, 24)) as pilot:
        tree = app.main.tree
        await until(pilot, lambda: "PAT01" in tree.patients, what="PAT01")
        await pilot.press("slash", *"LIVE", "enter")
        await until(pilot, lambda: not app.main.filtering and tree.plans, what="filter applied")
        tree.move_cursor(tree.patient_node("PAT01"))
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the question")
        assert "The filter shows 1 of the 2 plans of patient PAT01" in screen_text(app)
        await pilot.press("escape")  # kept: nothing sent, no dialog
        await until(pilot, lambda: not isinstance(app.screen, ConfirmDialog), what="question gone")
        assert not isinstance(app.screen, SendDialog) and not sender.selections
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the question again")
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, SendDialog), what="send dialog")
        text = screen_text(app)
        assert "Send patient PAT01" in text and "patient PAT01  DOE JANE" in text, text
        assert "everything stored: 2 studies, 8 series; 2 plans among them" in text
        assert "4 CT, 2 RTSTRUCT, 2 RTPLAN, 2 RTDOSE = 10 objects" in text
        await pilot.press("space", "enter")
        await until(pilot, lambda: sender.selections, what="sent")
    [(selection, node, _)] = sender.selections
    assert (selection.level, selection.uid, node) == ("patient", "PAT01", "QA")


async def test_an_attached_console_sends_an_unconnected_ct_series_and_storescp_gets_exactly_it(tmp_path):
    """The whole way: console → RemoteStation → /api/v1/selection/send → the station's sender → DCMTK storescp."""
    import pydicom
    from helpers import Serve, free_port, rtstation
    from peers import StoreSCP
    from test_attach import attached_app
    from rtstation_tui.synthetic import make_patient

    qa = StoreSCP(tmp_path / "qa").start()
    serve = None
    try:
        node = f'[[nodes]]\nname = "QA"\nae_title = "STORESCP"\nhost = "127.0.0.1"\nport = {qa.port}\n'
        config = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", free_port(), extra=node))
        make_patient(tmp_path / "plan", "PAT02", slices=2, rows=8, cols=8, label="P2", seed="any-node-plan")
        loose = make_ct_bulk(tmp_path / "loose", 6, rows=8, cols=8, patient_id="PAT02", seed="any-node-loose")
        rtstation("import", str(tmp_path / "plan"), str(tmp_path / "loose"), config=config)
        serve = Serve(config, tmp_path / "serve.log").start()
        app, _ = attached_app(config)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: "PAT02" in app.main.tree.patients, 20, what="PAT02")
            await send_first_loose_series(pilot, "PAT02")
            await until(pilot, lambda: "6 CT = 6 objects" in screen_text(app), what="the dialog names 6 CT")
            await pilot.press("space", "enter")
            await until(pilot, lambda: any(n.message == "1 job queued to QA" for n in app._notifications),
                        what="the console says so")
            await until(pilot, lambda: len(qa.files()) >= 6, 30, what="storescp got the series")
            # what the API answers for what is not there, as the in-process station does
            remote = app.api
            assert remote.selection_preview(Selection("objects", sop_uids=("1.2.3.4",))) is None
            with pytest.raises(ValueError, match="NOPE"):
                remote.send_selection(Selection("patient", "PAT02"), ["NOPE"])
        sent = sorted(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in qa.files())
        assert sent == sorted(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in loose)
    finally:
        if serve is not None:
            serve.stop()
        qa.stop()


def test_snapshot_the_send_dialog_of_an_unconnected_series_at_80x24(tmp_path, monkeypatch, snap_compare):
    """What the operator reads before 3 loose CT leave: level, patient, counts, nodes, marks — in 80x24."""
    from tui_support import fill_store, snapshot_config

    config = snapshot_config(tmp_path, monkeypatch)
    fill_store(config, tmp_path, breast=False)
    make_ct_bulk(tmp_path / "loose", 3, rows=8, cols=8, patient_id="SYN001", seed="snapshot-loose-ct")
    import_settled(config, [tmp_path / "loose"])

    async def run_before(pilot) -> None:
        app = pilot.app
        await until(pilot, lambda: "console started" in screen_text(app), what="start-up log line")
        await send_first_loose_series(pilot, "SYN001")
        await until(pilot, lambda: isinstance(app.screen, SendDialog), what="send dialog")
        await pilot.press("space")

    assert snap_compare(make_app(config, sender=FakeSender()), terminal_size=(80, 24), run_before=run_before)
