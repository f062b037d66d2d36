"""Every form of the editors, driven with Pilot: each invalid input shows its message at the field as it is typed,
a form with a problem is not saved, a valid one returns exactly the changed fields."""

from __future__ import annotations

import pytest
from editor_support import copy_sample, fill, open_form
from tui_support import FakeSender, make_app, until

from rtstation_tui.engine.config.model import load_config
from rtstation_tui.ui.dialogs.nodeform import NodeForm
from rtstation_tui.ui.dialogs.ruleform import RuleForm
from rtstation_tui.ui.screens.settings import SettingsScreen


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return load_config(copy_sample(tmp_path))


NODE_BAD = [
    ("name", "", "'' is not allowed: expected a non-empty printable name of at most 64 characters"),
    ("name", "ARCHIVE", "'ARCHIVE' is already the name of another node"),
    ("ae_title", "", "an AE title must not be empty or only spaces"),
    ("ae_title", "A" * 17, "an AE title has at most 16 characters, this one has 17"),
    ("ae_title", "BACK\\SLASH", "an AE title may hold printable ASCII except backslash; found '\\\\'"),
    ("host", "", "expected a host name or IP address"),
    ("host", "two words", "expected a host name or IP address"),
    ("port", "abc", "'abc' is not allowed: expected an integer from 1 to 65535"),
    ("port", "0", "0 is out of range: allowed from 1 to 65535"),
    ("port", "65536", "65536 is out of range: allowed from 1 to 65535"),
    ("calling_ae_title", "X" * 20, "an AE title has at most 16 characters, this one has 20"),
    ("max_associations", "17", "17 is out of range: allowed from 1 to 16"),
    ("retry", "often", "bad retry step 'often': write COUNTxDELAY with a unit"),
    ("timeout_s", "0", "0 is out of range: allowed from 1 to 86400"),
    ("timeout_s", "soon", "'soon' is not allowed: expected a number from 1 to 86400"),
]


async def test_node_form_shows_every_invalid_input_at_its_field_and_refuses_to_save(config):
    app = make_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.ready, what="tree")
        dialog = await open_form(pilot, ("n", "enter"), NodeForm)
        form = dialog.form
        for key, value, expected in NODE_BAD:
            good = form.raw(key)
            await fill(pilot, form, key, value)
            assert expected in form.error_text(key), (key, value, form.error_text(key))
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert app.screen is dialog  # not saved
            await fill(pilot, form, key, good)
            assert form.error_text(key) == ""
        await fill(pilot, form, "port", "11201")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is not dialog, what="form closed")


async def test_node_form_resolves_the_host_in_a_worker_and_shows_the_failure(config):
    app = make_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.ready, what="tree")
        dialog = await open_form(pilot, ("n", "a"), NodeForm)
        form = dialog.form
        await fill(pilot, form, "host", "no-such-host.invalid")
        await until(pilot, lambda: "cannot resolve 'no-such-host.invalid'" in form.error_text("host"),
                    what="resolver failure at the field")
        await fill(pilot, form, "host", "localhost")
        await until(pilot, lambda: form.error_text("host") == "", what="localhost resolves")


async def test_new_node_returns_the_required_keys_and_only_changed_options(config):
    app = make_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.ready, what="tree")
        dialog = await open_form(pilot, ("n", "a"), NodeForm)
        results: list = []
        dialog.dismiss = results.append  # type: ignore[method-assign]
        for key, value in (("name", "TPS2"), ("ae_title", "TPS2"), ("host", "127.0.0.1"), ("port", "1104"),
                           ("timeout_s", "45")):
            await fill(pilot, dialog.form, key, value)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: results, what="form result")
        assert results == [{"name": "TPS2", "ae_title": "TPS2", "host": "127.0.0.1", "port": 1104, "timeout_s": 45}]


RULE_BAD = [
    ("name", "", "expected a non-empty printable name"),
    ("targets", "QA, NOPE", "unknown node 'NOPE'; nodes: QA, ARCHIVE (or AET@host:port)"),
    ("targets", "", "a rule needs at least one target node"),
    ("source_ae", "re:(", "bad regular expression: missing ), unterminated subpattern"),
    ("plan_label", "re:[QA", "bad regular expression: unterminated character set"),
    ("machine", "re:*x", "bad regular expression: nothing to repeat"),
    ("patient_id", "(", "bad regular expression: missing ), unterminated subpattern"),
    ("modality", "re:(", "bad regular expression"),
    ("include", "plan, xrays", "'xrays' is not allowed: choose one of images, structures, plan, doses, registrations"),
]


async def test_rule_form_shows_every_invalid_input_at_its_field(config):
    app = make_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.ready, what="tree")
        dialog = await open_form(pilot, ("r", "a"), RuleForm)
        form = dialog.form
        await fill(pilot, form, "name", "second")
        await fill(pilot, form, "name", "QA plans from Eclipse")
        assert "'QA plans from Eclipse' is already the name of another rule" in form.error_text("name")
        for key, value, expected in RULE_BAD:
            await fill(pilot, form, key, value)
            assert expected in form.error_text(key), (key, value, form.error_text(key))
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is dialog
        assert form.has_focus_within and app.focused is form.query_one("#f-name")  # the first problem


async def test_rule_form_offers_node_names_and_returns_the_new_rule(config):
    app = make_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.ready, what="tree")
        dialog = await open_form(pilot, ("r", "a"), RuleForm)
        results: list = []
        dialog.dismiss = results.append  # type: ignore[method-assign]
        form = dialog.form
        await fill(pilot, form, "name", "archive all")
        form.focus_field("targets")
        await pilot.press("A", "R", "right")  # the suggester completes the node name; → accepts it
        await until(pilot, lambda: form.raw("targets") == "ARCHIVE", what="ARCHIVE completed")
        await fill(pilot, form, "plan_label", "glob:B*")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: results, what="form result")
        assert results == [{"name": "archive all", "targets": ["ARCHIVE"], "plan_label": "glob:B*"}]


SETTINGS_BAD = [
    ("station.ae_title", "A" * 17, "an AE title has at most 16 characters, this one has 17"),
    ("station.bind", "", "expected a host name or IP address"),
    ("station.port", "70000", "70000 is out of range: allowed from 1 to 65535"),
    ("station.port", "x", "'x' is not allowed: expected an integer from 1 to 65535"),
    ("receiver.allowed_calling_aes", "ECLIPSE@10.0.0.0/99", "'10.0.0.0/99' is neither an IP address, a CIDR"),
    ("receiver.settle_seconds", "-1", "-1 is out of range: allowed from 0 to 86400"),
    ("receiver.min_free_mb", "-5", "-5 is out of range: allowed of at least 0"),
    ("import.settle_seconds", "4000", "4000 is out of range: allowed from 0 to 3600"),
    ("import.source_ae", "", "an AE title must not be empty or only spaces"),
]


async def test_settings_show_every_invalid_input_and_nothing_is_saved(config):
    before = config.path.read_text()
    app = make_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.ready, what="tree")
        await pilot.press("S")
        screen = await until(pilot, lambda: isinstance(app.screen, SettingsScreen) and app.screen, what="settings")
        form = screen.form
        for key, value, expected in SETTINGS_BAD:
            good = form.raw(key)
            await fill(pilot, form, key, value)
            assert expected in form.error_text(key), (key, value, form.error_text(key))
            await pilot.press("ctrl+s")
            await pilot.pause()
            await fill(pilot, form, key, good)
            assert form.error_text(key) == ""
        assert config.path.read_text() == before
        await pilot.press("escape")
        assert app.screen is app.main  # nothing changed: Esc leaves at once


async def test_t_echoes_the_selected_node_and_shows_time_or_the_exact_failure(config):
    app = make_app(config, sender=FakeSender(down=("ARCHIVE",)))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.ready, what="tree")
        await pilot.press("n", "t")
        table = app.screen.table
        await until(pilot, lambda: "OK 2 ms" in str(table.get_row("QA")), what="QA echoed")
        await pilot.press("j", "t")
        await until(pilot, lambda: "FAILED: connection refused" in str(table.get_row("ARCHIVE")), what="ARCHIVE")
        assert "last C-ECHO: FAILED: connection refused" in str(app.screen.query_one("#nodes-detail").content)


async def test_dry_run_pane_says_which_rules_match_and_why_the_others_do_not(config, tmp_path):
    from tui_support import fill_store

    fill_store(config, tmp_path)
    app = make_app(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.main.ready, what="tree")
        await pilot.press("r")
        screen = app.screen
        await until(pilot, lambda: len(screen.dry_run) == 2, what="two plans evaluated")
        dialog = await open_form(pilot, ("a",), RuleForm)
        for key, value in (("name", "B plans"), ("targets", "ARCHIVE"), ("plan_label", "b"),
                           ("when_incomplete", "send")):
            await fill(pilot, dialog.form, key, value)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is screen and len(app.config.rules) == 2, what="rule saved")
        await until(pilot, lambda: len(screen.dry_run[0].verdicts) == 2, what="dry run with both rules")
        by_label = {p.label: {v.rule: v for v in p.verdicts} for p in screen.dry_run}
        assert by_label["B1"]["B plans"].outcome == "send"  # incomplete, but when_incomplete = send
        assert by_label["PROST1"]["B plans"].outcome == "no-match"
        assert "plan_label: the label 'PROST1' does not contain 'b'" in by_label["PROST1"]["B plans"].reason
        assert by_label["B1"]["QA plans from Eclipse"].outcome == "disabled"
        text = str(screen.query_one("#dry-run-text").content)
        assert "nothing is sent" in text and "✓ B plans: matched: send to ARCHIVE" in text


async def test_settings_move_with_arrows_and_esc_asks_before_dropping_changes(config):
    from rtstation_tui.ui.dialogs.confirm import ConfirmDialog

    app = make_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.ready, what="tree")
        await pilot.press("S")
        screen = await until(pilot, lambda: isinstance(app.screen, SettingsScreen) and app.screen, what="settings")
        await pilot.press("down", "down")
        assert app.focused is screen.form.query_one("#f-station-port")
        await pilot.press("up")
        assert app.focused is screen.form.query_one("#f-station-bind")
        await pilot.press("end", "1")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="discard question")
        await pilot.press("n")
        await until(pilot, lambda: app.screen is screen, what="still in settings")
        await pilot.press("escape", "y")
        await until(pilot, lambda: app.screen is app.main, what="back to the tree")


def test_convert_writes_what_the_operator_typed_in_the_loaders_types():
    from rtstation_tui.engine.config.nodes import NodeConfig
    from rtstation_tui.engine.config.rules import RuleConfig
    from rtstation_tui.ui.widgets.form import FieldSpec, convert

    timeout = FieldSpec("timeout_s", NodeConfig, "timeout_s", "Timeout")
    assert convert(timeout, " 30 ") == (30, None) and convert(timeout, "2.5") == (2.5, None)
    assert convert(FieldSpec("approval", RuleConfig, "approval", "Approval"), "any") == ("ANY", None)
    assert convert(FieldSpec("calling_ae_title", NodeConfig, "calling_ae_title", "AE"), " ") == (None, None)
    assert convert(FieldSpec("include", RuleConfig, "include", "Include"), "plan, doses") == (["plan", "doses"], None)
    assert convert(FieldSpec("tls", NodeConfig, "tls", "TLS"), True) == (True, None)
