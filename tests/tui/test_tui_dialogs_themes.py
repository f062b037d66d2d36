"""The send dialog's choice and return value (without any sender), the quit question, and the theme files: the
built-in ones (package data) and a site's own (``[ui] themes_dir`` or ``$XDG_CONFIG_HOME/rtstation/themes``)."""

from __future__ import annotations

import pytest
from rich.color import Color, ColorSystem
from textual.app import App
from tui_support import make_app, make_config, until

from rtstation_tui.ui.app import run_console
from rtstation_tui.ui.dialogs.confirm import ConfirmDialog
from rtstation_tui.ui.dialogs.send import SendDialog
from rtstation_tui.engine.plans.queries import SendPreview
from rtstation_tui.ui.themes import ThemeCatalog, ThemeError, available_themes, load_theme

PREVIEW = SendPreview("1.2.3", "123456", "B1", (("CT", 97), ("RTSTRUCT", 1), ("RTPLAN", 1), ("RTDOSE", 1)), 100,
                      52_000_000, "", "DOE^JOHN")


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


async def test_a_group_in_the_send_dialog_chooses_its_enabled_nodes_and_says_so(nodes):
    """Groups follow the nodes (↑ from the first row wraps to the last group); choosing one returns its enabled
    nodes, each once and in the config's order, and the dialog shows what the group stands for."""
    from rtstation_tui.engine.config.groups import GroupConfig

    groups = [GroupConfig("QA-ALL", ("ARCHIVE", "OLD_TPS", "QA")), GroupConfig("DARK", ("OLD_TPS",))]
    dialog = SendDialog(nodes, [PREVIEW], groups=groups)
    app = Host(dialog)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await pilot.press("space", "up", "space")  # QA, then the group (DARK, all disabled, is skipped)
        await pilot.pause()
        chosen = str(dialog.query_one("#send-chosen").render())
        assert "Chosen: QA, ARCHIVE" in chosen and "group QA-ALL = ARCHIVE, QA" in chosen
        rows = [str(dialog.query_one("#send-nodes").get_option_at_index(i).prompt) for i in (3, 4)]
        assert rows == ["QA-ALL  group: ARCHIVE, OLD_TPS, QA  (OLD_TPS disabled: left out)",
                        "DARK  group: OLD_TPS  (OLD_TPS disabled: left out)"]
        await pilot.press("enter")
        await pilot.pause()
    assert app.results == [["QA", "ARCHIVE"]]


async def test_send_dialog_says_what_will_be_sent_in_send_order(nodes):
    dialog = SendDialog(nodes, [PREVIEW, SendPreview("4.5", "SYN001", "PROST1", (("RTPLAN", 1),), 1, 20_000,
                                                     "3 CT missing")])
    app = Host(dialog)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = str(dialog.query_one("#send-what").render())
        assert "B1  patient 123456  DOE JOHN\n   97 CT, 1 RTSTRUCT, 1 RTPLAN, 1 RTDOSE = 100 objects, 52.0 MB" in text
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


# -- user themes: a directory of the site's own files, beside the built-ins ----------------------------------------
SITE_LIGHT = 'dark = false\nprimary = "#004488"\nbackground = "#FFFFFF"\nforeground = "#000000"\n'


def test_a_user_theme_in_the_xdg_directory_is_offered_and_one_named_like_a_builtin_replaces_it(tmp_path, monkeypatch):
    user = tmp_path / "xdg" / "rtstation" / "themes"
    user.mkdir(parents=True)
    (user / "projector.toml").write_text('primary = "#FFFF00"\nbackground = "#000000"\n')
    (user / "light.toml").write_text(SITE_LIGHT)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert available_themes() == ["dark", "high-contrast", "light", "projector"]
    assert load_theme("projector").primary == "#FFFF00"
    assert load_theme("light").primary == "#004488"
    assert load_theme("dark").primary == "#4F9FE6"  # the built-in: nothing replaced it
    assert [e.name for e in ThemeCatalog.scan().overrides] == ["light"]


def test_themes_dir_in_the_config_wins_over_xdg_and_is_made_absolute(tmp_path, monkeypatch):
    (tmp_path / "site-themes").mkdir()
    (tmp_path / "site-themes" / "ward.toml").write_text('primary = "#00AA00"\n')
    monkeypatch.chdir(tmp_path)
    config = make_config(tmp_path, extra='[ui]\ntheme = "ward"\nthemes_dir = "site-themes"\n')
    assert config.ui.themes_dir == tmp_path / "site-themes"
    assert ThemeCatalog.scan(config.ui.themes_dir).load("ward").primary == "#00AA00"
    with pytest.raises(ThemeError, match="'ward' is not a theme"):
        load_theme("ward")  # not in the default directory


async def test_the_console_logs_a_replaced_builtin_and_a_bad_user_file(tmp_path):
    user = tmp_path / "site-themes"
    user.mkdir()
    (user / "light.toml").write_text(SITE_LIGHT)
    (user / "broken.toml").write_text('primary = "#12345G"\n')
    config = make_config(tmp_path, extra=f'[ui]\ntheme = "light"\nthemes_dir = "{user}"\n')
    app = make_app(config)
    async with app.run_test(size=(120, 40)) as pilot:
        lines = lambda: " ".join(app.main.logpane.log_widget.lines)  # noqa: E731
        await until(pilot, lambda: "broken.toml" in lines(), what="the bad theme file in the log pane")
        assert f"theme light: using {user / 'light.toml'} instead of the built-in one" in lines()
        assert "primary = '#12345G': not a colour" in lines()
        assert app.current_theme.primary == "#004488"
        assert "broken" not in app.available_themes


@pytest.mark.parametrize("text, message", [
    ('primary = "#12345G"\n', "primary = '#12345G': not a colour"),
    ('primary = "#123456"\nbackgrund = "#000000"\n', "unknown theme keys backgrund; allowed: accent, ansi"),
    ('primary = "#123456"\ndark = "yes"\n', "dark = 'yes': use true or false"),
    ('primary = "#123456"\ntext_alpha = 2\n', "text_alpha = 2: expected a number from 0 to 1"),
    ('primary = "#123456"\nname = "other"\n', "name = 'other': must be the file's name 'site'"),
    ('background = "#000000"\n', "primary is required"),
    ('primary = #123456\n', "not valid TOML"),
])
def test_a_bad_theme_file_stops_the_console_naming_the_file_and_the_key(tmp_path, capsys, text, message):
    from dataclasses import replace

    (tmp_path / "themes").mkdir()
    (tmp_path / "themes" / "site.toml").write_text(text)
    config = make_config(tmp_path)
    config = replace(config, ui=replace(config.ui, theme="site", themes_dir=tmp_path / "themes"))
    assert run_console(config) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'themes' / 'site.toml'}: " in err and message in err


def test_a_theme_given_as_a_path_loads_and_a_missing_one_is_named(tmp_path):
    (tmp_path / "mine.toml").write_text('primary = "#336699"\n')
    assert load_theme(str(tmp_path / "mine.toml")).name == "mine"
    with pytest.raises(ThemeError, match="nothere.toml: no such theme file"):
        load_theme(str(tmp_path / "nothere.toml"))


async def test_a_theme_file_added_while_the_console_runs_is_offered_by_settings_and_applied(tmp_path, monkeypatch):
    from editor_support import fill, saved

    from rtstation_tui.ui.screens.settings import SettingsScreen

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    config = make_config(tmp_path)
    app = make_app(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.main.ready, what="tree")
        user = tmp_path / "xdg" / "rtstation" / "themes"
        user.mkdir(parents=True)
        (user / "ward.toml").write_text('primary = "#00AA00"\nbackground = "#101010"\n')
        before = config.path.read_text()
        await pilot.press("S")
        screen = await until(pilot, lambda: isinstance(app.screen, SettingsScreen) and app.screen, what="settings")
        assert "ward" in screen.form.specs["ui.theme"].choices
        await fill(pilot, screen.form, "ui.theme", "ward")
        await pilot.press("ctrl+s")
        assert 'theme = "ward"' in await saved(pilot, config.path, before)
        await until(pilot, lambda: app.theme == "ward", what="the new theme applied")
        assert app.current_theme.primary == "#00AA00"
