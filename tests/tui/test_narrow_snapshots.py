"""[CONSOLE] "80 columns must not hide facts": the main screen at 80x24 with a long label and patient name, three
nodes (one failed with a long error), 100 CT slices. Snapshots show it; the Pilot test reads the whole details
pane (as scrolling would) and finds every fact whole: counts never cut to ``1…``, errors word for word.
"""

from __future__ import annotations

import asyncio
import io
import re

import pytest
from rich.console import Console
from tui_support import FIXED_TIME, FakeSender, QueueRow, fill_plans, make_app, screen_text, snapshot_config, until

from rtstation_tui.ui.labels import Palette
from rtstation_tui.ui.widgets.details import render_details

LABEL = "PROSTATE_BOOST_2"  # RTPlanLabel holds 16 characters
ERROR = ("association rejected by ORTHANC: called AE title not recognised (0x03), check the node's ae_title in "
         "[[nodes]] and the peer's list of known modalities")


@pytest.fixture
def config(tmp_path, monkeypatch):
    cfg = snapshot_config(tmp_path, monkeypatch)
    uid = fill_plans(cfg, tmp_path, [("PAT-2026-000123", "VANDERBERGHE-MONTGOMERY^ALEXANDRA^MARIA", LABEL)],
                     slices=100)[LABEL]
    return cfg, uid


def sender_with_history(uid: str) -> FakeSender:
    sender = FakeSender()
    at = {"created": FIXED_TIME}
    sender.queue.rows += [QueueRow(1, "QA", uid, LABEL, "done", 103, 103, origin="rule:to-qa", **at),
                          QueueRow(2, "ARCHIVE", uid, LABEL, "failed", 0, 103, 103, error=ERROR, origin="manual", **at),
                          QueueRow(3, "OLD_TPS", uid, LABEL, "waiting-retry", 40, 103, error="connection refused",
                                   origin="cli", **at)]
    return sender


async def plan_selected(pilot) -> None:
    app = pilot.app
    await until(pilot, lambda: "console started" in screen_text(app), what="start-up log line")
    await until(pilot, lambda: app.main.tree.patients, what="patients")
    await pilot.press("enter")
    await until(pilot, lambda: app.main.tree.plans, what="plans")
    await pilot.press("down")
    await until(pilot, lambda: app.main.query_one("#details").plan_uid, what="details")
    await until(pilot, lambda: "Sends" in screen_text(app), what="send states in the details")


def test_main_screen_at_80x24_with_long_labels_three_nodes_and_a_long_error(config, snap_compare):
    cfg, uid = config
    assert snap_compare(make_app(cfg, sender=sender_with_history(uid)), terminal_size=(80, 24),
                        run_before=plan_selected)


def test_details_scrolled_to_the_chain_and_history_at_80x24(config, snap_compare):
    cfg, uid = config

    async def run_before(pilot) -> None:
        await plan_selected(pilot)
        await pilot.press("tab", "end")  # the details pane takes the focus and scrolls to its end

    assert snap_compare(make_app(cfg, sender=sender_with_history(uid)), terminal_size=(80, 24), run_before=run_before)


async def test_every_fact_is_whole_somewhere_at_80x24(config):
    cfg, uid = config
    app = make_app(cfg, sender=sender_with_history(uid))
    async with app.run_test(size=(80, 24)) as pilot:
        await plan_selected(pilot)
        tree_row = str(app.main.tree.plan_node(uid).label)
        assert LABEL in tree_row  # the label and the first send state at least fit the tree row
        pane = app.main.query_one("#details")
        details = await asyncio.to_thread(app.api.plan_details, uid)
        out = io.StringIO()
        Console(file=out, width=pane.content_region.width, color_system=None).print(render_details(details, Palette()))
        lines = out.getvalue().splitlines()
        text = " ".join(" ".join(lines).split())  # words as read across wrapped lines
        assert max(len(line.rstrip()) for line in lines) <= pane.content_region.width
        assert "…" not in re.sub(r"series …\w+|…[\d.]+", "", text), text  # nothing cut but the UID abbreviations
        assert "CT series 100 ECLIPSE 09:30" in text, text  # the count whole, source and time beside it
        for fact in ("job 1 2026-01-02 09:30 QA done 103/103 by rule to-qa", "by operator", "by CLI (rtstation send)",
                     "QA done 103/103", "ARCHIVE failed 0/103", "OLD_TPS waiting-retry 40/103", ERROR,
                     "PAT-2026-000123 VANDERBERGHE-MONTGOMERY ALEXANDRA MARIA", "2026-01-02 09:30"):
            assert fact in text, (fact, text)
