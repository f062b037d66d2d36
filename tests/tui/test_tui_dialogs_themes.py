"""The send dialog's choice and return value (without any sender), the quit question, and the theme files."""

from __future__ import annotations

import pytest
from rich.color import Color, ColorSystem
from textual.app import App
from tui_support import make_config

from rtstation_tui.ui.app import run_console
from rtstation_tui.ui.dialogs.confirm import ConfirmDialog
from rtstation_tui.ui.dialogs.send import SendDialog
from rtstation_tui.engine.plans.queries import SendPreview
from rtstation_tui.ui.themes import ThemeError, available_themes, load_theme

PREVIEW = SendPreview("1.2.3", "123456", "B1", (("CT", 97), ("RTSTRUCT", 1), ("RTPLAN", 1), ("RTDOSE", 1)), 100,
                      52_000_000, "")


class Host(App[None]):
    """An empty app that opens one dialog and keeps what it returned."""

    def __init__(self, screen) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.dialog = screen
        self.results: list[object] = []

    def on_mount(self) -> None:
        self.push_screen(self.dialog, self.results.append)


@pytest.fixture
def nodes(tmp_path):
    return make_config(tmp_path).nodes


@pytest.mark.parametrize("keys, expected", [
    (["space", "enter"], ["QA"]),
    (["down", "space", "enter"], ["ARCHIVE"]),
    (["down", "space", "up", "space", "enter"], ["QA", "ARCHIVE"]),  # config order, not key order
    (["space", "escape"], None),
    (["space", "space", "enter", "escape"], None),  # unchosen again: Enter refused, Esc cancels
    (["up", "space", "enter"], ["ARCHIVE"]),  # wraps around, skipping the disabled OLD_TPS
    (["space", "tab", "tab", "enter"], None),  # Enter on the Cancel button cancels
])
async def test_send_dialog_returns_the_chosen_nodes(nodes, keys, expected):
    app = Host(SendDialog(nodes, [PREVIEW]))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press(*keys)
        await pilot.pause()
    assert app.results == [expected]


async def test_send_dialog_says_what_will_be_sent_in_send_order(nodes):
    dialog = SendDialog(nodes, [PREVIEW, SendPreview("4.5", "SYN001", "PROST1", (("RTPLAN", 1),), 1, 20_000,
                                                     "3 CT missing")])
    app = Host(dialog)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = str(dialog.query_one("#send-what").render())
        assert "B1 (123456): 97 CT, 1 RTSTRUCT, 1 RTPLAN, 1 RTDOSE = 100 objects, 52.0 MB" in text
        assert "incomplete: 3 CT missing" in text
        assert "Send 2 plans" in str(dialog.query_one(".dialog-title").render())


@pytest.mark.parametrize("key, expected", [("y", True), ("n", False), ("escape", False)])
async def test_confirm_dialog_answers(key, expected):
    app = Host(ConfirmDialog("Quit?", "objects are arriving"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press(key)
        await pilot.pause()
    assert app.results == [expected]


def test_the_three_theme_files_exist_and_load():
    assert {"dark", "light", "high-contrast"} <= set(available_themes())
    for name in ("dark", "light", "high-contrast"):
        assert load_theme(name).name == name


@pytest.mark.parametrize("name", ["dark", "light", "high-contrast"])
def test_themes_stay_legible_on_16_colours(name):
    """Quantized to the 16 ANSI colours, text stays distinct from its background and the states from each other."""
    t = load_theme(name)

    def ansi(colour: str | None) -> int:
        assert colour is not None
        c = Color.parse(colour).downgrade(ColorSystem.STANDARD)
        return c.number if c.number is not None else -1

    background = ansi(t.background)
    for key in ("foreground", "primary", "warning", "error", "success"):
        assert ansi(getattr(t, key)) != background, f"{name}: {key} vanishes into the background on 16 colours"
    assert len({ansi(t.warning), ansi(t.error), ansi(t.success)}) == 3, f"{name}: states merge on 16 colours"


def test_unknown_theme_is_a_configuration_error(tmp_path, capsys):
    from dataclasses import replace

    config = make_config(tmp_path)
    config = replace(config, ui=replace(config.ui, theme="neon"))
    assert run_console(config) == 2
    err = capsys.readouterr().err
    assert "'neon' is not a theme" in err and "dark, high-contrast, light" in err
    with pytest.raises(ThemeError):
        load_theme("neon")
