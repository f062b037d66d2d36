"""Snapshots of the three editor screens and a form at 80x24 and 120x40, on the commented sample config and the
deterministic store (see test_tui_snapshots.py for what is pinned and how to update)."""

from __future__ import annotations

import pytest
from editor_support import copy_sample
from tui_support import fill_store, make_app, until

from rtstation_tui.engine.config.model import load_config
from rtstation_tui.ui.dialogs.nodeform import NodeForm
from rtstation_tui.engine.station import Station
from rtstation_tui.ui.screens.settings import SettingsScreen
from rtstation_tui.ui.widgets import logpane

SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(Station, "free_disk_mb", lambda self: 123_456.0)
    monkeypatch.setattr(logpane, "clock", lambda ts: "09:30:00")
    copy_sample(tmp_path)
    cfg = load_config("rtstation.toml")
    fill_store(cfg, tmp_path)
    return cfg


async def ready(pilot) -> None:
    await until(pilot, lambda: pilot.app.main.ready, what="tree")


@SIZES
def test_nodes_editor(config, snap_compare, size):
    async def run_before(pilot) -> None:
        await ready(pilot)
        await pilot.press("n", "j")

    assert snap_compare(make_app(config), terminal_size=size, run_before=run_before)


@SIZES
def test_rules_editor_with_dry_run(config, snap_compare, size):
    async def run_before(pilot) -> None:
        await ready(pilot)
        await pilot.press("r")
        await until(pilot, lambda: len(pilot.app.screen.dry_run) == 2, what="dry run")

    assert snap_compare(make_app(config), terminal_size=size, run_before=run_before)


@SIZES
def test_settings_screen(config, snap_compare, size):
    async def run_before(pilot) -> None:
        await ready(pilot)
        await pilot.press("S")
        screen = await until(pilot, lambda: isinstance(pilot.app.screen, SettingsScreen) and pilot.app.screen,
                             what="settings")
        screen.form.set_raw("station.port", "99999")  # one error line shown, as the operator would see it
        await pilot.pause()

    assert snap_compare(make_app(config), terminal_size=size, run_before=run_before)


@SIZES
def test_node_form(config, snap_compare, size):
    async def run_before(pilot) -> None:
        await ready(pilot)
        await pilot.press("n", "enter")
        await until(pilot, lambda: isinstance(pilot.app.screen, NodeForm), what="node form")
        await pilot.pause()

    assert snap_compare(make_app(config), terminal_size=size, run_before=run_before)
