"""Config edits keep every comment and untouched line byte for byte and gain exactly the change."""

from __future__ import annotations

import shutil
from pathlib import Path

from helpers import ROOT

import pytest

from editor_support import changes

from rtstation_tui.engine.config.model import ConfigError, load_config
from rtstation_tui.engine.config.tomlfile import ConfigFile

SAMPLE = ROOT / "sample_config" / "rtstation.toml"


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    return Path(shutil.copy(SAMPLE, tmp_path / "rtstation.toml"))


def test_changing_a_value_keeps_its_comment_and_every_other_line(cfg):
    before = cfg.read_text()
    f = ConfigFile(cfg)
    f.set("station", "port", 11113)
    config = f.save()
    assert config.station.port == 11113 and load_config(cfg).station.port == 11113
    removed, added = changes(before, cfg.read_text())
    assert removed == ["port = 11112               # DICOM port (1-65535); below 1024 needs root or CAP_NET_BIND_SERVICE"]
    assert added == ["port = 11113               # DICOM port (1-65535); below 1024 needs root or CAP_NET_BIND_SERVICE"]
    assert (cfg.parent / "rtstation.toml.bak").read_text() == before


def test_adding_a_node_adds_only_its_lines_above_the_rules_comment(cfg):
    before = cfg.read_text()
    f = ConfigFile(cfg)
    f.add_entry("nodes", {"name": "TPS2", "ae_title": "TPS2", "host": "10.1.2.3", "port": 104})
    f.save()
    after = cfg.read_text()
    removed, added = changes(before, after)
    assert removed == [] and added == ['[[nodes]]', 'name = "TPS2"', 'ae_title = "TPS2"', 'host = "10.1.2.3"',
                                        'port = 104', '']
    assert after.index('name = "TPS2"') < after.index("# Routing rules")
    assert [n.name for n in load_config(cfg).nodes] == ["QA", "ARCHIVE", "TPS2"]


def test_deleting_and_moving_entries_keep_the_comments_where_they_belong(cfg):
    f = ConfigFile(cfg)
    f.delete_entry("nodes", "ARCHIVE")
    f.update_entry("rules", "QA plans from Eclipse", {"targets": ["QA"]})
    f.save()
    text = cfg.read_text()
    assert "ARCHIVE" not in text.split("[[rules]]")[0]
    assert text.count("# Routing rules, evaluated in order") == 1
    assert "# unique name used by rules" in text and 'targets = ["QA"]' in text
    f = ConfigFile(cfg)
    f.add_entry("rules", {"name": "second", "targets": ["QA"]})
    f.move_entry("rules", "second", -1)
    f.save()
    assert [r.name for r in load_config(cfg).rules] == ["second", "QA plans from Eclipse"]
    assert "# switch on once the nodes above exist" in cfg.read_text()


def test_an_invalid_edit_is_refused_and_the_file_untouched(cfg):
    before = cfg.read_text()
    f = ConfigFile(cfg)
    f.set("station", "port", 70000)
    with pytest.raises(ConfigError) as err:
        f.save()
    assert "[station] port" in str(err.value) and "from 1 to 65535" in str(err.value)
    f = ConfigFile(cfg)
    f.delete_entry("nodes", "QA")  # a rule still targets it
    with pytest.raises(ConfigError) as err:
        f.save()
    assert "unknown node 'QA'" in str(err.value)
    assert cfg.read_text() == before


def test_deleting_every_entry_keeps_the_comments_and_writes_no_empty_arrays(cfg):
    before = cfg.read_text()
    f = ConfigFile(cfg)
    f.delete_entry("rules", "QA plans from Eclipse")
    f.delete_entry("nodes", "QA")  # the first node: the comment lines under it stay
    f.delete_entry("nodes", "ARCHIVE")
    f.save()
    after = cfg.read_text()
    assert "nodes = []" not in after and "rules = []" not in after
    assert "[[nodes]]" not in after and "[[rules]]" not in after
    outside = before.split("[[rules]]")[0]  # comments inside the deleted entries go with them
    kept = [line for line in outside.splitlines() if line.startswith("#") and "calling_ae_title" not in line]
    assert [line for line in after.splitlines() if line.startswith("#")] == kept
    config = load_config(cfg)
    assert config.nodes == () and config.rules == ()
    f = ConfigFile(cfg)
    f.add_entry("nodes", {"name": "QA", "ae_title": "QA", "host": "127.0.0.1", "port": 104})
    f.save()
    assert [n.name for n in load_config(cfg).nodes] == ["QA"]
