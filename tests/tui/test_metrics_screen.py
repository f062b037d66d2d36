"""The console's Metrics screen: plans with their metrics, beams, and a DVH plot readable at 80x24 and 120x40.

The store is the deterministic one of the other console tests (breast B1 and a synthetic plan, received times
pinned); metrics are computed in-process before the app starts, as ``rtstation metrics --update`` would.
Update the snapshots after a deliberate change with ``--snapshot-update`` and look at the SVGs first.
"""

from __future__ import annotations

import pytest
from tui_support import fill_store, make_app, screen_text, until

from helpers import station_toml, write_config
from rtstation_tui.engine.config.model import load_config
from rtstation_tui.engine.metrics.update import update_all
from rtstation_tui.engine.station import Station
from rtstation_tui.engine.store.index import Index
from rtstation_tui.ui.screens.metrics import MetricsScreen
from rtstation_tui.ui.widgets import logpane


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(Station, "free_disk_mb", lambda self: 123_456.0)
    monkeypatch.setattr(logpane, "clock", lambda ts: "09:30:00")
    write_config(tmp_path / "rtstation.toml", station_toml(tmp_path / "var", 11112))
    cfg = load_config("rtstation.toml")
    fill_store(cfg, tmp_path)
    index = Index(cfg.data_dir)
    assert update_all(index, cfg) == 2
    index.close()
    return cfg


async def open_metrics(pilot) -> MetricsScreen:
    app = pilot.app
    await until(pilot, lambda: app.main.tree.patients, what="patients")
    await pilot.press("m")
    await until(pilot, lambda: isinstance(app.screen, MetricsScreen) and app.screen.curves, what="DVH curves")
    await pilot.pause()
    return app.screen


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_metrics_screen_with_b1_dvh(config, snap_compare, size):
    assert snap_compare(make_app(config), terminal_size=size, run_before=open_metrics)


async def test_toggle_cursor_and_filter(config):
    app = make_app(config)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_metrics(pilot)
        assert screen.shown_plan is not None and [p.label for p in screen.plans][0] == "B1"
        text = screen_text(app)
        assert "3 RAO" in text and "10X" in text and "97" in text  # beams of B1
        assert "Tumor Bed" in screen.shown_rois and "BODY" not in screen.shown_rois  # the outline starts hidden
        before = screen.cursor_gy
        await pilot.press("full_stop", "full_stop")
        assert screen.cursor_gy > before
        readout = str(app.screen.query_one("#metrics-readout").render())
        assert f"at {screen.cursor_gy:.1f} Gy" in readout and "Tumor Bed 100.0 %" in readout

        await pilot.press("a")  # all ROIs on (BODY too)
        await until(pilot, lambda: "BODY" in screen.shown_rois, what="BODY shown")

        await pilot.press("slash", *"machine=tx* and max_dose>15Gy", "enter")
        await until(pilot, lambda: "0 plans (machine=tx* and max_dose>15Gy)" in screen_text(app),
                    what="B1 is not above 15 Gy")
        await pilot.press("slash", "ctrl+a", "ctrl+k", *"dose>1", "enter")
        await until(pilot, lambda: "unknown field 'dose'" in screen_text(app), what="the filter's error")
        await pilot.press("slash", "ctrl+a", "ctrl+k", *"label~b1", "enter")
        await until(pilot, lambda: [p.label for p in screen.plans] == ["B1"], what="B1 alone")
        await pilot.press("escape")
        assert not isinstance(app.screen, MetricsScreen)


async def test_metrics_stored_while_the_screen_is_open_show_up(config):
    from rtstation_tui.engine.events import MetricsComputed
    from rtstation_tui.engine.metrics import tables

    app = make_app(config)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_metrics(pilot)
        assert len(screen.plans) == 2
        index = Index(config.data_dir)
        [prost] = [p for p in screen.plans if p.label == "PROST1"]
        tables.forget(index.conn, [prost.plan_uid])  # as if recomputed: the server rewrote its rows
        index.close()
        app.apply_events([MetricsComputed(prost.plan_uid, "SYN001", "PROST1", "ok", 1.0)])
        await until(pilot, lambda: [p.label for p in screen.plans] == ["B1"], what="the table re-read")
