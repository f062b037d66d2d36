"""Files are the truth: a restart keeps everything; `index --rebuild` gives identical `show --json`."""

from __future__ import annotations

import json
import signal

from helpers import BREAST, DATA, Serve, rtstation, show_json, stored_files, storescu, wait_for


def test_restart_and_rebuild_give_the_same_listing(config, tmp_path, port):
    server = Serve(config, tmp_path / "serve.log").start()
    files = [*sorted((DATA / "breast_boost").glob("*.dcm")), *sorted((DATA / "slicerrt").glob("*.dcm")),
             DATA / "nelms" / "Linear_AntPost_3mm_Aligned.dcm", DATA / "nelms" / "Linear_SupInf_3mm_Aligned.dcm"]
    storescu(port, files)
    wait_for(lambda: sum(len(p["plans"]) for p in show_json(config)) == 2 and len(show_json(config)) == 3,
             what="all patients indexed")
    before = show_json(config)
    assert server.stop(signal.SIGTERM) == 0
    assert "stopped" in server.text()

    server = Serve(config, tmp_path / "serve2.log").start()
    assert show_json(config) == before
    assert server.stop(signal.SIGTERM) == 0

    out = rtstation("index", "--rebuild", "--json", config=config)
    assert '"indexed": 9' in out.stdout
    assert show_json(config) == before


def test_rebuild_is_refused_while_a_server_runs(serve, config):
    proc = rtstation("index", "--rebuild", config=config, check=False)
    assert proc.returncode == 1
    assert "in use by another rtstation process" in proc.stderr and "stop it before rebuilding" in proc.stderr


def test_index_catches_up_with_files_it_never_saw(config, data_dir, tmp_path):
    """A crash between os.replace and the index commit leaves a file the index lacks; the next start indexes it."""
    rtstation("import", *BREAST, config=config)
    (data_dir / "index.sqlite").unlink()
    for extra in data_dir.glob("index.sqlite-*"):
        extra.unlink()
    server = Serve(config, tmp_path / "serve.log").start()
    try:
        wait_for(lambda: show_json(config) and len(show_json(config)[0]["plans"]) == 1, what="re-indexed")
        assert "indexed 4 stored files the index did not know" in server.text()
    finally:
        server.kill()


def test_a_stored_file_truncated_while_stopped_is_named_at_start_and_left_out_of_a_rebuild(config, data_dir, tmp_path):
    rtstation("import", *BREAST, config=config)
    [dose] = [f for f in stored_files(data_dir) if f.name.startswith("RTDOSE.")]
    with open(dose, "r+b") as fh:
        fh.truncate(dose.stat().st_size // 2)
    server = Serve(config, tmp_path / "serve.log").start()
    try:
        wait_for(lambda: "damaged behind the station's back" in server.text(), what="the damaged file named")
        assert str(dose) in server.text()
    finally:
        server.kill()
    out = json.loads(rtstation("index", "--rebuild", "--json", config=config).stdout)
    assert out["indexed"] == 3 and any(dose.name in u for u in out["unreadable"]), out
