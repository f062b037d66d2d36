"""The commented reference config edited through each screen keeps every comment and untouched line byte for byte
and gains exactly the change; the running station gets it at once (no restart)."""

from __future__ import annotations

import pytest
from editor_support import changes, copy_sample, fill, open_form, saved
from tui_support import FakeSender, QueueRow, make_app, until

from rtstation_tui.engine.config.model import load_config
from rtstation_tui.ui.dialogs.confirm import ConfirmDialog
from rtstation_tui.ui.dialogs.nodeform import NodeForm
from rtstation_tui.ui.dialogs.ruleform import RuleForm
from rtstation_tui.ui.screens.settings import SettingsScreen



def line(text: str, start: str) -> str:
    """The file's own line starting with ``start`` (its comment as the sample has it today)."""
    return next(x for x in text.splitlines() if x.startswith(start))


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return load_config(copy_sample(tmp_path))


async def test_nodes_screen_edit_add_toggle_each_change_exactly_its_lines(config):
    path = config.path
    app = make_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.ready, what="tree")
        before = path.read_text()
        dialog = await open_form(pilot, ("n", "enter"), NodeForm)
        await fill(pilot, dialog.form, "port", "11201")
        await pilot.press("ctrl+s")
        after = await saved(pilot, path, before)
        assert changes(before, after) == (["port = 11200"], ["port = 11201"])
        assert (path.parent / "rtstation.toml.bak").read_text() == before
        await until(pilot, lambda: app.station.config.node("QA").port == 11201, what="applied live")
        assert app.station.sender.config.node("QA").port == 11201  # the next send (or retry) uses it

        before = after
        dialog = await open_form(pilot, ("a",), NodeForm)
        for key, value in (("name", "TPS2"), ("ae_title", "TPS2AE"), ("host", "localhost"), ("port", "104")):
            await fill(pilot, dialog.form, key, value)
        await pilot.press("ctrl+s")
        after = await saved(pilot, path, before)
        assert changes(before, after) == ([], ["[[nodes]]", 'name = "TPS2"', 'ae_title = "TPS2AE"',
                                               'host = "localhost"', "port = 104", ""])
        assert after.index('name = "TPS2"') < after.index("# Routing rules")
        await until(pilot, lambda: app.screen.selected == "TPS2", what="cursor on the new node")

        before = after
        await pilot.press("k", "space")  # ARCHIVE off
        after = await saved(pilot, path, before)
        assert changes(before, after) == ([], ["enabled = false"])
        assert app.station.config.node("ARCHIVE").enabled is False


async def test_deleting_a_node_names_the_rule_and_the_active_job_and_edits_both(config):
    path = config.path
    sender = FakeSender()
    sender.queue.rows.append(QueueRow(7, "QA", "1.2.3", "B1", "sending", 3, 10))
    app = make_app(config, sender=sender)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.ready, what="tree")
        before = path.read_text()
        await pilot.press("n", "d")
        dialog = await until(pilot, lambda: isinstance(app.screen, ConfirmDialog) and app.screen, what="question")
        message = dialog.message
        assert "used by rule 'QA plans from Eclipse': QA is removed from its targets" in message
        assert "job 7 (B1, sending)" in message
        await pilot.press("y")
        after = await saved(pilot, path, before)
        removed, added = changes(before, after)
        assert 'targets = ["ARCHIVE"]' in added and 'targets = ["QA", "ARCHIVE"]' in removed
        assert 'name = "QA"                # unique name used by rules, the console and `rtstation send --to`' \
            in removed
        for line in before.splitlines():  # every comment outside the deleted node is still there
            if line.lstrip().startswith("#") and "calling_ae_title" not in line:
                assert line in after
        assert [n.name for n in load_config(path).nodes] == ["ARCHIVE"]


async def test_rules_screen_toggle_add_move_edit_each_change_exactly_its_lines(config):
    path = config.path
    app = make_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.ready, what="tree")
        before = path.read_text()
        await pilot.press("r", "space")
        after = await saved(pilot, path, before)
        old = line(before, "enabled = false ")
        assert changes(before, after) == ([old], [old.replace("false", "true", 1)])
        assert app.station.config.rules[0].enabled
        assert app.station.rules.config.rules[0].enabled  # the rules service decides with the new rule

        before = after
        dialog = await open_form(pilot, ("a",), RuleForm)
        await fill(pilot, dialog.form, "name", "archive")
        await fill(pilot, dialog.form, "targets", "ARCHIVE")
        await pilot.press("ctrl+s")
        after = await saved(pilot, path, before)
        assert changes(before, after) == ([], ["", "[[rules]]", 'name = "archive"', 'targets = ["ARCHIVE"]'])

        before = after
        await pilot.press("K")  # the new rule (under the cursor) first
        after = await saved(pilot, path, before)
        assert [r.name for r in load_config(path).rules] == ["archive", "QA plans from Eclipse"]
        assert sorted(before.splitlines()) == sorted(after.splitlines())  # moved, not changed
        assert [r.name for r in app.station.config.rules] == ["archive", "QA plans from Eclipse"]

        before = after
        dialog = await open_form(pilot, ("j", "enter"), RuleForm)
        await fill(pilot, dialog.form, "plan_label", "glob:QA_*")
        await pilot.press("ctrl+s")
        after = await saved(pilot, path, before)
        old = line(before, 'plan_label = "QA"')
        assert changes(before, after) == ([old], [old.replace('"QA"', '"glob:QA_*"', 1)])


async def test_settings_screen_changes_exactly_the_port_line_and_the_theme_line(config):
    path = config.path
    app = make_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.ready, what="tree")
        before = path.read_text()
        await pilot.press("S")
        screen = await until(pilot, lambda: isinstance(app.screen, SettingsScreen) and app.screen, what="settings")
        await fill(pilot, screen.form, "station.port", "11113")
        await fill(pilot, screen.form, "ui.theme", "light")
        await pilot.press("ctrl+s")
        after = await saved(pilot, path, before)
        port, theme = line(before, "port = 11112 "), line(before, 'theme = "dark" ')
        assert changes(before, after) == ([port, theme], [port.replace("11112", "11113", 1),
                                                          theme.replace('"dark"', '"light"', 1)])
        await until(pilot, lambda: app.theme == "light", what="theme applied")
        assert "0.0.0.0:11113" in str(app.main.header.render_text())


async def test_renaming_a_node_renames_it_in_rules_and_deleting_a_rules_only_target_deletes_the_rule(config):
    path = config.path
    app = make_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.ready, what="tree")
        before = path.read_text()
        dialog = await open_form(pilot, ("n", "j", "enter"), NodeForm)
        await fill(pilot, dialog.form, "name", "PACS")
        await pilot.press("ctrl+s")
        after = await saved(pilot, path, before)
        assert changes(before, after) == (['name = "ARCHIVE"', 'targets = ["QA", "ARCHIVE"]'],
                                          ['name = "PACS"', 'targets = ["QA", "PACS"]'])

        before = after
        await pilot.press("k", "d")
        dialog = await until(pilot, lambda: isinstance(app.screen, ConfirmDialog) and app.screen, what="question")
        assert "QA is removed from its targets" in dialog.message
        await pilot.press("y")
        before = await saved(pilot, path, before)
        await pilot.press("d")
        dialog = await until(pilot, lambda: isinstance(app.screen, ConfirmDialog) and app.screen, what="question")
        assert "the rule is deleted too (no target left)" in dialog.message
        await pilot.press("y")
        after = await saved(pilot, path, before)
        assert "[[rules]]" not in after and "[[nodes]]" not in after
        assert "# Routing rules, evaluated in order" in after  # the comments above the arrays stay
        assert app.station.config.nodes == () and app.station.config.rules == ()


async def test_without_a_config_file_the_editors_say_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app(load_config(None))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.ready, what="tree")
        await pilot.press("S")
        screen = await until(pilot, lambda: isinstance(app.screen, SettingsScreen) and app.screen, what="settings")
        await fill(pilot, screen.form, "station.port", "11113")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: any("start it with --config FILE" in n.message for n in app._notifications),
                    what="the reason")
        assert app.config.station.port == 11112


async def test_a_new_rule_goes_below_the_last_rules_own_comments_and_above_the_next_tables(tmp_path, monkeypatch):
    """[CONSOLE] comment blocks stay with their entry when the rules editor inserts a ``[[rules]]``: the sample's last
    rule ends with an indented continuation of its last key's comment, here also with a commented-out key; a prose
    block after a blank line belongs to the table below the rules. The new rule goes between the two, and the rest
    of the file is unchanged, byte for byte. (Before: the continuation and the commented-out key moved below the
    new rule, under the wrong entry.)"""
    monkeypatch.chdir(tmp_path)
    path = copy_sample(tmp_path)
    own = '# export_format = "zip"   # commented out, still this rule\'s\n'
    below = '\n# Research exports: ask the physicist on duty before changing\n[anonymize]\nkey_file = "anon.key"\n'
    head = path.read_text() + own
    path.write_text(head + below)
    app = make_app(load_config(path))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.ready, what="tree")
        before = path.read_text()
        dialog = await open_form(pilot, ("r", "a"), RuleForm)
        await fill(pilot, dialog.form, "name", "archive")
        await fill(pilot, dialog.form, "targets", "ARCHIVE")
        await pilot.press("ctrl+s")
        after = await saved(pilot, path, before)
    assert after == head + '\n[[rules]]\nname = "archive"\ntargets = ["ARCHIVE"]\n' + below, after[len(head) - 300:]
