"""Bad configuration: the message names the file, the key, the bad value and what is allowed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import ROOT

import pytest

from rtstation_tui.engine.config.model import ConfigError, load_config

SAMPLE = ROOT / "sample_config" / "rtstation.toml"

CASES = [
    ("[station]\nport = 70000\n", "[station] port", "70000 is out of range: allowed from 1 to 65535"),
    ("[station]\nport = \"eleven\"\n", "[station] port", "expected an integer"),
    ("[station]\nae_title = \"MUCH_TOO_LONG_AE_TITLE\"\n", "[station] ae_title", "at most 16 characters"),
    ("[station]\nae_title = \"BACK\\\\SLASH\"\n", "[station] ae_title", "except backslash"),
    ("[station]\nprot = 104\n", "[station] prot", "unknown key (did you mean 'port'?)"),
    ("[recevier]\n", "recevier", "unknown key (did you mean 'receiver'?)"),
    ("[receiver]\ndurability = \"never\"\n", "[receiver] durability", "choose one of fsync, os"),
    ("[receiver]\ncheck_called_ae = \"yes\"\n", "[receiver] check_called_ae", "use true or false"),
    ("[receiver]\nallowed_calling_aes = [\"ECLIPSE@10.1.2.0/33\"]\n", "[receiver] allowed_calling_aes[0]",
     "neither an IP address, a CIDR nor a host name"),
    ("[logging]\nlevel = \"LOUD\"\n", "[logging] level", "choose one of DEBUG, INFO, WARNING, ERROR"),
    ("[[nodes]]\nname = \"QA\"\nae_title = \"QA\"\n", "nodes[0].host", "is required"),
    ("[[nodes]]\nname = \"QA\"\nae_title = \"QA\"\nhost = \"h\"\nretry = \"5 times\"\n", "nodes[0].retry",
     "write COUNTxDELAY with a unit"),
    ("[[nodes]]\nname = \"QA\"\nae_title = \"QA\"\nhost = \"h\"\n[[nodes]]\nname = \"QA\"\nae_title = \"B\"\n"
     "host = \"h\"\n", "nodes[1].name", "names must be unique"),
    ("[[rules]]\nname = \"r\"\ntargets = [\"NOWHERE\"]\n", "rules[0] ('r').targets", "unknown node 'NOWHERE'"),
    ("[[nodes]]\nname = \"QA\"\nae_title = \"QA\"\nhost = \"h\"\n[[rules]]\nname = \"r\"\ntargets = [\"QA\"]\n"
     "plan_label = \"re:([\"\n", "rules[0] ('r').plan_label", "bad regular expression"),
    ("[[rules]]\nname = \"r\"\ntargets = [\"QA@h:104\"]\ncolour = \"red\"\n", "rules[0].colour", "unknown key"),
    ("[tls]\nenabled = true\n", "[tls] certificate", "certificate and key are both required"),
    ("[station\nport = 1\n", "", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "key", "message"), CASES, ids=[c[1] or "toml" for c in CASES])
def test_config_error_names_file_key_and_what_is_allowed(tmp_path, text, key, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert key in str(err.value)
    assert message in str(err.value)


def test_missing_file_and_cli_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rtstation_tui", "show", "--config", str(tmp_path / "nope.toml")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "nope.toml: file not found" in proc.stderr


def test_command_line_overrides_are_validated_too(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rtstation_tui", "show", "--port", "0"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "port" in proc.stderr and "from 1 to 65535" in proc.stderr


def test_sample_config_is_valid_and_documents_every_key():
    config = load_config(SAMPLE)
    assert config.station.ae_title == "RTSTATION" and config.station.port == 11112
    text = SAMPLE.read_text()
    from dataclasses import fields

    from rtstation_tui.engine.config.model import SECTIONS

    for section, (_, cls) in SECTIONS.items():
        for f in fields(cls):
            assert f"{f.name.rstrip('_')} =" in text, f"[{section}] {f.name} is not in the sample config"


def test_sample_config_documents_every_rule_key():
    from dataclasses import fields

    from rtstation_tui.engine.config.rules import RuleConfig

    text = SAMPLE.read_text().split("[[rules]]", 1)[1]
    for f in fields(RuleConfig):
        assert f"\n{f.name} =" in text or f"\n# {f.name} =" in text, f"[[rules]] {f.name} is not in the sample config"


@pytest.mark.parametrize(("text", "env", "fast"), [
    ("", None, True),
    ("[network]\nfast_paths = false\n", None, False),
    ("", "1", False),
    ("[network]\nfast_paths = true\n", "yes", False),
    ("[network]\nfast_paths = false\n", "0", True),
    ("[network]\nfast_paths = false\n", "", False),
])
def test_fast_paths_switch_and_the_environment_variable_that_overrides_it(tmp_path, monkeypatch, text, env, fast):
    if env is None:
        monkeypatch.delenv("RTSTATION_STOCK_PYNETDICOM", raising=False)
    else:
        monkeypatch.setenv("RTSTATION_STOCK_PYNETDICOM", env)
    path = tmp_path / "rt.toml"
    path.write_text(text)
    assert load_config(path).network.fast_paths is fast


def test_bad_fast_paths_values_are_named(tmp_path, monkeypatch):
    path = tmp_path / "rt.toml"
    path.write_text('[network]\nfast_paths = "no"\n')
    with pytest.raises(ConfigError, match=r"\[network\] fast_paths: 'no' is not allowed: use true or false"):
        load_config(path)
    path.write_text("")
    monkeypatch.setenv("RTSTATION_STOCK_PYNETDICOM", "maybe")
    with pytest.raises(ConfigError, match="RTSTATION_STOCK_PYNETDICOM='maybe' is not allowed: use 1"):
        load_config(path)
