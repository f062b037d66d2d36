"""Storage retention removes only old bundles whose sends are all done; never anything unsent or failed."""

from __future__ import annotations

import json

from helpers import free_port, rtstation, show_json, station_toml, write_config
from peers import StoreSCP

from rtstation_tui.synthetic import make_patient


def test_cleanup_removes_only_delivered_bundles_and_dry_run_removes_nothing(tmp_path):
    scp = StoreSCP(tmp_path / "scp").start()
    down = free_port()
    nodes = (f'[[nodes]]\nname = "QA"\nae_title = "STORESCP"\nhost = "127.0.0.1"\nport = {scp.port}\n'
             f'[[nodes]]\nname = "DOWN"\nae_title = "X"\nhost = "127.0.0.1"\nport = {down}\nretry = ""\n'
             f'timeout_s = 2\n')
    config = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", free_port(), extra=nodes))
    for pid, label in (("SENT", "DONE1"), ("NEVER", "NEW1"), ("FAIL", "BAD1")):
        make_patient(tmp_path / pid, pid, slices=2, rows=8, cols=8, label=label)
        rtstation("import", str(tmp_path / pid), config=config)
    try:
        rtstation("send", "--plan", "DONE1", "--to", "QA", "--wait", config=config)
        rtstation("send", "--plan", "BAD1", "--to", "DOWN", "--wait", config=config, check=False)
    finally:
        scp.stop()

    dry = json.loads(rtstation("cleanup", "--days", "0.000001", "--dry-run", "--json", config=config).stdout)
    assert [r["label"] for r in dry["remove"]] == ["DONE1"] and dry["files_removed"] == 0
    why = {k["label"]: k["why"] for k in dry["kept"]}
    assert why == {"NEW1": "never sent", "BAD1": "last send to DOWN did not complete"}
    assert len(show_json(config)) == 3

    out = json.loads(rtstation("cleanup", "--days", "0.000001", "--json", config=config).stdout)
    assert out["files_removed"] == 5
    assert sorted(p["patient_id"] for p in show_json(config)) == ["FAIL", "NEVER"]
    assert not list((tmp_path / "var" / "store").glob("SENT/*/*.dcm"))
    audit = (tmp_path / "var" / "logs").glob("audit-*.jsonl")
    removed = [json.loads(line) for f in audit for line in f.read_text().splitlines() if '"removed"' in line]
    assert [(r["label"], r["files"]) for r in removed] == [("DONE1", 5)]
    # by size: a tiny limit, but what is left is unsent or failed: nothing goes, the station says it stays over
    size = rtstation("cleanup", "--max-gb", "0.000001", "--json", config=config)
    out = json.loads(size.stdout)
    assert out["remove"] == [] and out["files_removed"] == 0 and out["over_limit_bytes"] > 0
    assert "is never removed" in size.stderr
    assert "retention is off" in rtstation("cleanup", config=config, check=False).stderr
