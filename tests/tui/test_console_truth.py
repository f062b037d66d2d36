"""[CONSOLE] "the operator always sees the truth": each test is one wrong or stale thing a user saw on screen.

The filter that led to sending the wrong plan, job changes made by another process, the patient's plan count in
the details, the rules dry run, the log pane's follow, cancelled workers as errors, notifications over buttons.
"""

from __future__ import annotations

import asyncio

import pytest
from editor_support import copy_sample, open_form
from tui_support import FakeSender, fill_plans, fill_store, make_app, make_config, screen_text, until

from helpers import free_port, rtstation
from rtstation_tui.engine.config.model import load_config
from rtstation_tui.engine.config.rules import RuleConfig
from rtstation_tui.engine.outbound.queue import JobQueue
from rtstation_tui.synthetic import make_patient
from rtstation_tui.ui.dialogs.confirm import ConfirmDialog
from rtstation_tui.ui.dialogs.nodeform import NodeForm
from rtstation_tui.ui.dialogs.send import SendDialog
from rtstation_tui.ui.widgets.logpane import LogLine
from textual.widgets._toast import Toast

PLANS = [("PAT01", "DOE^JANE", "LIVE"), ("PAT01", "DOE^JANE", "BIG1"), ("OTHER2", "OTHER^OTTO", "BIG2")]


@pytest.fixture
def two_plans(tmp_path):
    config = make_config(tmp_path)
    return config, fill_plans(config, tmp_path, PLANS)


async def filtered(pilot, text: str) -> None:
    app = pilot.app
    await until(pilot, lambda: len(app.main.tree.patients) == 2, what="patients")
    await pilot.press("slash", *text)
    await until(pilot, lambda: not app.main.filtering and app.main.tree.plans, what=f"filter {text!r} applied")
    await pilot.press("enter")


async def test_a_label_filter_lists_selects_and_sends_only_the_matching_plan(two_plans):
    config, uids = two_plans
    sender = FakeSender()
    app = make_app(config, sender=sender)
    async with app.run_test(size=(80, 24)) as pilot:
        tree = app.main.tree
        await filtered(pilot, "LIVE")
        assert set(tree.plans) == {uids["LIVE"]}  # BIG1, the same patient's other plan, is not listed
        assert "BIG1" not in screen_text(app)
        seen = set()
        for key in ("j", "j", "j", "j", "k", "k", "k", "k", "k"):  # every line the cursor can reach
            await pilot.press(key)
            if tree.cursor_data is not None and tree.cursor_data.kind == "plan":
                seen.add(tree.cursor_data.plan_uid)
        assert seen == {uids["LIVE"]}
        while tree.cursor_data.plan_uid != uids["LIVE"]:
            await pilot.press("j")
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SendDialog), what="send dialog")
        text = screen_text(app)
        assert "LIVE  patient PAT01  DOE JANE" in text, text
        assert "2 CT, 1 RTSTRUCT, 1 RTPLAN, 1 RTDOSE = 5 objects" in text
        assert "BIG1" not in text
        await pilot.press("space", "enter")
        await until(pilot, lambda: sender.sent, what="sent")
        assert sender.sent == [(uids["LIVE"], ["QA"], "manual")]


async def test_a_marked_plan_the_filter_hides_is_named_and_sent_only_if_confirmed(two_plans):
    config, uids = two_plans
    sender = FakeSender()
    app = make_app(config, sender=sender)
    async with app.run_test(size=(80, 24)) as pilot:
        tree = app.main.tree
        await until(pilot, lambda: len(tree.patients) == 2, what="patients")
        await pilot.press("enter")  # OTHER2, its plan BIG2 marked before any filter
        await until(pilot, lambda: uids["BIG2"] in tree.plans, what="BIG2 listed")
        await pilot.press("j", "space")
        assert tree.marked == {uids["BIG2"]}
        await filtered(pilot, "LIVE")
        while tree.cursor_data.kind != "plan":
            await pilot.press("j")
        await pilot.press("space", "s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="asked about the hidden plan")
        text = screen_text(app)
        assert "not shown by the filter" in text and "BIG2  OTHER2 OTHER OTTO" in text, text
        await pilot.press("n")  # leave it out
        await until(pilot, lambda: isinstance(app.screen, SendDialog), what="send dialog")
        assert "BIG2" not in screen_text(app) and "Send 1 plan" in screen_text(app)
        await pilot.press("space", "enter")
        await until(pilot, lambda: sender.sent, what="sent")
        assert sender.sent == [(uids["LIVE"], ["QA"], "manual")]


async def test_clearing_the_filter_keeps_open_patients_open_and_lists_every_plan_again(two_plans):
    config, uids = two_plans
    app = make_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        tree = app.main.tree
        await filtered(pilot, "LIVE")
        await pilot.press("escape")
        await until(pilot, lambda: not app.main.filtering and len(tree.patients) == 2, what="filter cleared")
        await until(pilot, lambda: {uids["LIVE"], uids["BIG1"]} <= set(tree.plans), what="both plans of LIVE01")
        assert tree.patient_node("PAT01").is_expanded


async def test_a_cancel_from_another_shell_reaches_tree_progress_bar_and_details(tmp_path):
    """A node that is down: the job waits for a retry; ``rtstation queue cancel`` runs in another process."""
    extra = f'[[nodes]]\nname = "DOWN"\nae_title = "NOBODY"\nhost = "127.0.0.1"\nport = {free_port()}\n'
    config = make_config(tmp_path, extra=extra)
    uids = fill_plans(config, tmp_path, PLANS[:1])
    app = make_app(config)
    async with app.run_test(size=(120, 40)) as pilot:
        tree = app.main.tree
        await until(pilot, lambda: app.station._started and tree.patients, what="started")
        await pilot.press("enter")
        await until(pilot, lambda: uids["LIVE"] in tree.plans, what="plan listed")
        await pilot.press("down", "s")
        await until(pilot, lambda: isinstance(app.screen, SendDialog), what="send dialog")
        await pilot.press("space", "enter")
        label = lambda: str(tree.plan_node(uids["LIVE"]).label)  # noqa: E731
        await until(pilot, lambda: "DOWN: waiting" in label(), timeout=30, what="waiting for a retry")
        await until(pilot, lambda: "DOWN ← LIVE" in screen_text(app), what="the job's bar")
        [job] = JobQueue(config.data_dir).jobs(active_only=True)
        rtstation("queue", "cancel", str(job.id), config=config.path)
        await until(pilot, lambda: "DOWN: cancelled" in label(), what="the tree heard of the cancel")
        await until(pilot, lambda: not app.main.progress.display, what="the bar went away")
        await until(pilot, lambda: "cancelled by hand" in screen_text(app), what="the details' history")


async def test_a_job_queued_by_another_process_shows_up(tmp_path):
    extra = f'[[nodes]]\nname = "DOWN"\nae_title = "NOBODY"\nhost = "127.0.0.1"\nport = {free_port()}\n'
    config = make_config(tmp_path, extra=extra)
    fill_plans(config, tmp_path, PLANS[:1])
    app = make_app(config)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.station._started and app.main.tree.patients, what="started")
        rtstation("send", "--plan", "LIVE", "--to", "DOWN", config=config.path)
        await until(pilot, lambda: "DOWN ← LIVE" in screen_text(app), timeout=15, what="the CLI's job in the console")


async def test_the_details_of_a_patient_say_what_its_tree_row_says_as_plans_arrive(tmp_path):
    config = make_config(tmp_path)
    fill_plans(config, tmp_path, PLANS[:1])
    app = make_app(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.station._started and app.main.tree.patients, what="started")
        await until(pilot, lambda: "PAT01  DOE JANE: 1 plan." in screen_text(app), what="details: 1 plan")
        make_patient(tmp_path / "more", "PAT01", name="DOE^JANE", slices=2, rows=8, cols=8, label="NEW2",
                     seed="console-more")
        report = await asyncio.to_thread(app.station.importer().run, [tmp_path / "more"], "import", "PACS")
        assert report.stored
        await until(pilot, lambda: "2 plans" in str(app.main.tree.patient_node("PAT01").label), what="row: 2 plans")
        await until(pilot, lambda: "PAT01  DOE JANE: 2 plans." in screen_text(app), what="details: 2 plans")


def test_the_dry_run_says_nothing_would_be_queued_for_a_plan_the_node_already_has(tmp_path):
    config = make_config(tmp_path)
    uids = fill_plans(config, tmp_path, PLANS[:1])
    from rtstation_tui.engine.station import Station

    station = Station(config, receive=False)
    rule = RuleConfig(name="to-qa", targets=("QA",))
    [before] = station.dry_run((rule,))
    assert before.verdicts[0].outcome == "send" and "QA: 5 new" in before.verdicts[0].reason
    station.sender.enqueue_plan(uids["LIVE"], ["QA"])  # queued (not yet sent: the station is not started)
    [after] = station.dry_run((rule,))
    verdict = after.verdicts[0]
    assert verdict.outcome == "nothing-new", verdict
    assert "nothing to queue" in verdict.reason and "5 already there or queued" in verdict.reason


async def test_log_follow_shows_the_newest_lines_after_a_search_is_cleared(tmp_path):
    config = make_config(tmp_path)
    app = make_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.ready, what="tree")
        pane = app.main.logpane
        pane.add([LogLine(0, 20, "rtstation.test", f"line {i:03d}{' needle' if i % 50 == 0 else ''}")
                  for i in range(300)])
        await pilot.press("l", "slash", *"needle", "enter")
        await until(pilot, lambda: len(pane.log_widget.lines) == 6, what="search applied")
        await pilot.press("slash", "escape")  # Esc in the search box clears the search
        await until(pilot, lambda: not pane.search and len(pane.log_widget.lines) > 300, what="search cleared")
        assert pane.follow
        await until(pilot, lambda: "line 299" in screen_text(app), what="the newest line in view")


async def test_typing_in_the_filter_never_raises_error_notifications(tmp_path):
    config = make_config(tmp_path)
    fill_store(config, tmp_path)
    app = make_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: len(app.main.tree.patients) == 2, what="patients")
        await pilot.press("slash")
        for ch in "123456":  # each key replaces the pending query (its worker is cancelled)
            await pilot.press(ch)
        await until(pilot, lambda: not app.main.filtering and set(app.main.tree.patients) == {"123456"}, what="filter")
        await pilot.press("backspace", "backspace", "escape")
        await until(pilot, lambda: not app.main.filtering and len(app.main.tree.patients) == 2, what="cleared")
        errors = [n for n in app._notifications if n.severity == "error"]
        assert errors == [], [(n.title, n.message) for n in errors]


async def test_an_error_notification_never_covers_the_forms_save_and_cancel(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(copy_sample(tmp_path))
    app = make_app(config)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:  # toasts are drawn (off by default)
        await until(pilot, lambda: app.main.ready, what="tree")
        dialog = await open_form(pilot, ("n", "enter"), NodeForm)
        for i in range(3):
            dialog.notify(f"could not save: a long reason number {i} that wraps over two lines of the toast",
                          severity="error", timeout=60)
        await until(pilot, lambda: len(dialog.query(Toast)) >= 3, what=f"three toasts")
        await pilot.pause()
        buttons = [dialog.query_one("#save"), dialog.query_one("#cancel")]
        for button in buttons:  # what is drawn on every cell of each button is the button
            r = button.region
            for x in range(r.x, r.right):
                for y in range(r.y, r.bottom):
                    on_top, _ = dialog.get_widget_at(x, y)
                    assert on_top is button or button in on_top.ancestors, (x, y, on_top)


async def test_the_footer_at_80_columns_holds_setup_and_help(tmp_path):
    app = make_app(make_config(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.ready, what="tree")
        # the footer draws after the tree is ready: wait for it to be drawn, then every key must be in it
        footer = await until(pilot, lambda: screen_text(app).splitlines()[-1].strip(), what="the footer drawn")
        for key in ("s Send", "/ Filter", "S Setup", "q Quit", "? Help"):
            assert key in footer, footer


async def test_an_empty_store_says_how_to_send_data_in(tmp_path):
    port = free_port()
    app = make_app(make_config(tmp_path, port=port), listen=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.main.ready, what="tree")
        text = " ".join(str(app.main.query_one("#details").content).split())
        assert f"Send DICOM to AE title RTSTATION at 127.0.0.1 port {port}" in text, text
        assert f"storescu -aec RTSTATION 127.0.0.1 {port}" in text


async def test_the_send_dialog_marks_a_node_whose_last_echo_failed(tmp_path):
    config = make_config(tmp_path)
    fill_store(config, tmp_path)
    sender = FakeSender(down=("ARCHIVE",))
    app = make_app(config, sender=sender)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: len(app.main.tree.patients) == 2, what="patients")
        await pilot.press("e")
        await until(pilot, lambda: "ARCHIVE" in app.last_echo and "QA" in app.last_echo, what="echoes")
        await pilot.press("enter", "down", "s")
        await until(pilot, lambda: isinstance(app.screen, SendDialog), what="send dialog")
        text = screen_text(app)
        assert "ARCHIVE  ORTHANC@127.0.0.1:4242  ✗ no C-ECHO" in text, text
        assert "last C-ECHO failed: connection refused" in text
        assert "QA  STORESCP@127.0.0.1:11200  ✗" not in text


async def test_enter_in_the_log_pane_shows_a_long_line_whole(tmp_path):
    from rtstation_tui.ui.dialogs.logreader import LogReader

    long = ("association from ECLIPSE_PLANNING_01 rejected: called AE title 'RTSTATION_TEST' is not ours, and the "
            "calling AE is missing from [receiver] allowed_ae_titles (edit it with S, then Save) — end of line")
    app = make_app(make_config(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.ready, what="tree")
        app.main.logpane.add([LogLine(0, 30, "rtstation.receiver", long)])
        assert "end of line" not in screen_text(app)  # cut at the pane's edge
        await pilot.press("l", "enter")
        await until(pilot, lambda: isinstance(app.screen, LogReader), what="the log reader")
        await pilot.pause()
        reader = app.screen.query_one("#log-reader-text")
        assert long in str(reader.content)
        assert reader.size.height >= 5  # two records, wrapped over several rows inside the 80 columns
        assert "end of line" in screen_text(app)
        await pilot.press("escape")
        assert app.screen is app.main


async def test_a_send_of_what_the_node_has_asks_and_resends_with_force(tmp_path):
    config = make_config(tmp_path)
    fill_store(config, tmp_path)
    B1 = "1.2.246.352.71.5.320687012.24189.20090603083342"
    sender = FakeSender()
    sender.has.add((B1, "QA"))
    app = make_app(config, sender=sender)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: len(app.main.tree.patients) == 2, what="patients")
        await pilot.press("enter", "down", "s")
        await until(pilot, lambda: isinstance(app.screen, SendDialog), what="send dialog")
        await pilot.press("space", "enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="asked to send again")
        text = " ".join(screen_text(app).split())
        assert "QA already has every object of B1 (4 objects)" in text, text
        assert not sender.sent
        await pilot.press("y")
        await until(pilot, lambda: sender.forced == [(B1, "QA")], what="sent again with force")


async def test_what_the_filter_matched_is_highlighted_in_the_tree(two_plans):
    config, uids = two_plans
    app = make_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await filtered(pilot, "ive")
        label = app.main.tree.plan_node(uids["LIVE"]).label
        marked = [label.plain[s.start:s.end] for s in label.spans if "underline" in str(s.style)]
        assert marked == ["IVE"], label.spans  # case-insensitive, as the filter
        patient = app.main.tree.patient_node("PAT01").label
        assert not [s for s in patient.spans if "underline" in str(s.style)]  # PAT01 DOE JANE has no "ive"


async def test_an_empty_stores_first_screen_flags_nodes_that_do_not_answer_c_echo(tmp_path):
    """[CONSOLE] day one: UP is this station's own receiver (it answers C-ECHO), nothing listens at DOWN's port. The
    first screen names both with their C-ECHO result; the send dialog's marks get the same outcomes."""
    port, dead = free_port(), free_port()
    nodes = (f'[[nodes]]\nname = "UP"\nae_title = "RTSTATION"\nhost = "127.0.0.1"\nport = {port}\n\n'
             f'[[nodes]]\nname = "DOWN"\nae_title = "DOWN"\nhost = "127.0.0.1"\nport = {dead}\n')
    app = make_app(make_config(tmp_path, port=port, extra=nodes), listen=True)
    async with app.run_test(size=(80, 24)) as pilot:
        details = app.main.query_one("#details")
        await until(pilot, lambda: "✗ DOWN" in str(details.content) and "✓ UP" in str(details.content), 15,
                    what="C-ECHO flags on the first screen")
        text = " ".join(str(details.content).split())
        assert f"✗ DOWN (DOWN@127.0.0.1:{dead}): FAILED: connection refused" in text, text
        assert f"✓ UP (RTSTATION@127.0.0.1:{port}): OK" in text
        assert "storescu -aec RTSTATION" in text  # still the how-to-send-in hint
        await until(pilot, lambda: {"DOWN", "UP"} <= set(app.last_echo), what="the answers recorded for the dialog")
        assert not app.last_echo["DOWN"].ok and app.last_echo["UP"].ok
