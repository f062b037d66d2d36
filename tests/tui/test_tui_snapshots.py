"""Snapshots (pytest-textual-snapshot) at 80x24 and 120x40 on a deterministic store.

What could change between runs is pinned: received times (fill_store), free disk and log clock (monkeypatched),
the config path (relative, from the temp directory), no receiver (no port in the header), animations off.
Update after a deliberate change with ``pytest tests/test_tui_snapshots.py --snapshot-update`` and look at the
SVGs in ``tests/__snapshots__/`` before committing them.
"""

from __future__ import annotations

import pytest
from tui_support import FakeSender, fill_store, make_app, screen_text, snapshot_config, until

from rtstation_tui.ui.dialogs.send import SendDialog


@pytest.fixture
def config(tmp_path, monkeypatch):
    cfg = snapshot_config(tmp_path, monkeypatch)
    fill_store(cfg, tmp_path)
    return cfg


async def b1_selected(pilot) -> None:
    app = pilot.app
    await until(pilot, lambda: "console started" in screen_text(app), what="start-up log line")
    await until(pilot, lambda: len(app.main.tree.patients) == 2, what="patients")
    await pilot.press("enter")
    await until(pilot, lambda: app.main.tree.plans, what="plans")
    await pilot.press("down")
    await until(pilot, lambda: app.main.query_one("#details").plan_uid, what="details")


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_main_screen_with_plan_b1_selected(config, snap_compare, size):
    assert snap_compare(make_app(config), terminal_size=size, run_before=b1_selected)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_send_dialog(config, snap_compare, size):
    async def run_before(pilot) -> None:
        await b1_selected(pilot)
        await pilot.press("space", "down", "down", "down", "space", "s")
        await until(pilot, lambda: isinstance(pilot.app.screen, SendDialog), what="send dialog")
        await pilot.press("down", "space")

    assert snap_compare(make_app(config, sender=FakeSender()), terminal_size=size, run_before=run_before)


def test_nodes_screen(config, snap_compare):
    async def run_before(pilot) -> None:
        await until(pilot, lambda: pilot.app.main.tree.patients, what="patients")
        await pilot.press("n")

    assert snap_compare(make_app(config), terminal_size=(80, 24), run_before=run_before)


def test_high_contrast_theme(config, snap_compare):
    assert snap_compare(make_app(config, theme="high-contrast"), terminal_size=(80, 24), run_before=b1_selected)
