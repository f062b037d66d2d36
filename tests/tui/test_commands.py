"""One command registry: on every screen the footer, the command palette and the help screen agree.

Each check visits the real screens (main, log pane, editors, forms, dialogs) and compares what the footer would
show (the screen's active bindings) with what the palette offers there, and the help screen with every key.
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from pathlib import Path

import pytest
from tui_support import FakeSender, fill_store, make_app, make_config, screen_text, until

from rtstation_tui.ui.app import StationApp
from rtstation_tui.ui.commands.registry import BY_ID, COMMANDS, Command, bindings, screen_commands
from rtstation_tui.ui.commands.station import palette_entries
from rtstation_tui.ui.dialogs.confirm import ConfirmDialog
from rtstation_tui.ui.dialogs.help import HelpScreen
from rtstation_tui.ui.dialogs.nodeform import NodeForm
from rtstation_tui.ui.dialogs.ruleform import RuleForm
from rtstation_tui.ui.dialogs.send import SendDialog
from rtstation_tui.ui.screens.metrics import MetricsScreen
from rtstation_tui.ui.screens.nodes import NodesScreen
from rtstation_tui.ui.screens.rules import RulesScreen
from rtstation_tui.ui.screens.settings import SettingsScreen

UI = Path(__file__).resolve().parents[2] / "rtstation_tui" / "ui"
B1 = "1.2.246.352.71.5.320687012.24189.20090603083342"


@pytest.fixture
def config(tmp_path):
    cfg = make_config(tmp_path)
    fill_store(cfg, tmp_path)
    return cfg


def footer_keys(app) -> dict[str, str]:
    """key → action of every binding the footer shows on the screen on top (what Footer itself reads)."""
    return {key: ab.binding.action for key, ab in app.screen.active_bindings.items() if ab.binding.show}


def problems(app) -> list[str]:
    """Where footer, palette and registry disagree on the screen on top (empty: they agree)."""
    screen = app.screen
    entries = palette_entries(screen)
    out = []
    for key, action in footer_keys(app).items():
        if not any(key in c.key_list and c.run == action for _, c in entries):
            out.append(f"{type(screen).__name__}: footer key {key!r} ({action}) has no palette entry")
    for node, c in entries:
        for key in c.key_list:
            bound = [b.action for b in node._bindings.key_to_bindings.get(key, [])]
            if c.run not in bound:
                out.append(f"{type(screen).__name__}: palette entry {c.title!r} names key {key!r}, "
                           f"but {type(node).__name__} does not bind it")
    by_key: dict[str, list[Command]] = defaultdict(list)
    for _, c in screen_commands(screen):
        for key in c.key_list:
            by_key[key].append(c)
    for key, found in by_key.items():
        ids = {c.id for c in found}
        if len(found) > 1 and not all(c.overrides in ids or any(o.overrides == c.id for o in found) for c in found):
            out.append(f"{type(screen).__name__}: key {key!r} is bound by {', '.join(sorted(ids))}")
    return out


async def check_here(pilot, expect: type) -> None:
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, expect), what=expect.__name__)
    await pilot.pause()
    assert footer_keys(app) or not app.screen.query("Footer"), f"{expect.__name__}: empty footer"
    assert problems(app) == []


async def test_footer_and_palette_agree_on_every_screen(config):
    from rtstation_tui.ui.screens.main import MainScreen
    from rtstation_tui.ui.screens.remote import RemoteScreen

    app = make_app(config, sender=FakeSender())
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: len(app.main.tree.patients) == 2, what="patients")
        await check_here(pilot, MainScreen)
        await pilot.press("l")  # the log pane's keys join the footer while it has focus
        await until(pilot, lambda: "f" in footer_keys(app), what="log keys in the footer")
        assert problems(app) == []
        await pilot.press("l", "enter")
        await until(pilot, lambda: B1 in app.main.tree.plans, what="plans of 123456")
        await pilot.press("down", "s")
        await check_here(pilot, SendDialog)
        await pilot.press("escape", "n")
        await check_here(pilot, NodesScreen)
        await pilot.press("a")
        await check_here(pilot, NodeForm)
        await pilot.press("escape", "d")
        await check_here(pilot, ConfirmDialog)
        await pilot.press("n", "escape", "r")
        await check_here(pilot, RulesScreen)
        await pilot.press("a")
        await check_here(pilot, RuleForm)
        await pilot.press("escape", "escape", "S")
        await check_here(pilot, SettingsScreen)
        await pilot.press("f1")
        await check_here(pilot, HelpScreen)
        await pilot.press("escape", "escape", "m")
        await check_here(pilot, MetricsScreen)
        await pilot.press("escape", "R")
        await check_here(pilot, RemoteScreen)


async def test_a_footer_key_without_a_palette_entry_is_found(config):
    """The check above can fail: a binding added beside the registry is reported."""
    app = make_app(config)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.main.tree.patients, what="patients")
        app.main._bindings.bind("x", "toggle_log", "Sneaky")
        app.main.refresh_bindings()
        assert any("'x'" in p for p in problems(app))


def help_text(app) -> str:
    """The whole help list as it reads when scrolled through (the screen shows its top)."""
    from rich.console import Console

    from rtstation_tui.ui.dialogs.help import keys_table

    console = Console(width=app.size.width, record=True, file=io.StringIO())
    console.print(keys_table(app.screen.rows))  # what the screen's Static holds
    return console.export_text()


@pytest.mark.parametrize("screen_key, expect", [("n", "Nodes editor"), ("r", "Rules editor")])
async def test_question_mark_lists_every_key_of_the_screen(config, screen_key, expect):
    app = make_app(config)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.main.tree.patients, what="patients")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help on the main screen")
        text = screen_text(app) + help_text(app)  # the list scrolls: what is below the fold counts
        for title in ("Send plans", "Retry failed sends", "Mark plan", "Search log", "Settings", "Keys of this screen"):
            assert title in text, title
        await pilot.press("escape", screen_key, "question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help on the editor")
        text = screen_text(app)
        assert expect in text and "Send plans" not in text  # the editor's keys, not the main screen's
        for c in COMMANDS:
            if any(s in c.scopes for s in ("entries", screen_key == "n" and "nodes" or "rules")):
                assert c.title in text, c.title
        depth = len(app.screen_stack)
        await pilot.press("question_mark")  # no help of the help
        await pilot.pause()
        assert len(app.screen_stack) == depth
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen), what="help closed")


async def test_f1_opens_help_from_a_form_field_where_question_mark_is_typed(config):
    app = make_app(config)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.main.tree.patients, what="patients")
        await pilot.press("S")
        await until(pilot, lambda: isinstance(app.screen, SettingsScreen), what="settings")
        await pilot.pause()
        await pilot.press("question_mark")  # in the AE title field: a character, not a key of the console
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("f1")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help over the settings")
        assert "Ctrl+S" in screen_text(app)


async def test_palette_offers_the_editor_commands_on_the_editor(config):
    app = make_app(config, sender=FakeSender())
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.main.tree.patients, what="patients")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NodesScreen), what="nodes")
        await pilot.press("ctrl+p", *"c-echo node")
        await until(pilot, lambda: "C-ECHO node  (t)" in screen_text(app), what="palette hit")
        await pilot.press("enter")
        await until(pilot, lambda: "QA" in app.last_echo, what="echo of the node under the cursor")


def test_bindings_are_made_only_by_the_registry():
    """No screen, dialog or widget writes its own Binding(...): the registry is the one table."""
    offenders = [str(p.relative_to(UI)) for p in UI.rglob("*.py")
                 if p.name != "registry.py" and re.search(r"\bBinding\(", p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_each_command_is_complete_and_ids_are_unique():
    assert len(BY_ID) == len(COMMANDS)
    for c in COMMANDS:
        assert c.title and c.help and c.scopes, c.id
        assert (c.message is None) != (not c.action), f"{c.id}: exactly one of action and message"
        assert c.keys or c.palette, f"{c.id}: a command without a key must be in the palette"
        assert not c.overrides or c.overrides in BY_ID, c.id
        if c.message is not None:  # the app has the action the message asks for
            assert callable(getattr(StationApp, f"action_{c.message.ACTION}", None)), c.id
    with pytest.raises(KeyError, match="no commands for scope 'nope'"):
        bindings("nope")


async def test_escape_clears_the_filter_from_the_box_and_leaves_the_log_without_clearing(config):
    """Esc is a registry command now (it was a key_ method): the same two meanings as before, by focus."""
    app = make_app(config)
    async with app.run_test(size=(100, 30)) as pilot:
        tree = app.main.tree
        await until(pilot, lambda: len(tree.patients) == 2, what="patients")
        await pilot.press("slash", *"SYN")
        await until(pilot, lambda: not app.main.filtering and set(tree.patients) == {"SYN001"}, what="filtered")
        await pilot.press("enter", "l", "escape")  # in the log pane Esc is the log's (it closes a log search) …
        await pilot.pause()
        assert app.main.query_one("#log").has_focus and set(tree.patients) == {"SYN001"}  # … the filter stays
        await pilot.press("l")
        await until(pilot, lambda: tree.has_focus, what="back from the log")
        await pilot.press("slash", "escape")  # typing in the box: Esc clears and hides it
        await until(pilot, lambda: not app.main.filtering and len(tree.patients) == 2, what="filter cleared")
        assert not app.main.query_one("#filter").display and tree.has_focus
