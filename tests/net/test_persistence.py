"""Files are the truth: a restart keeps everything; `index --rebuild` gives identical `show --json`."""

from __future__ import annotations

import json
import signal
from pathlib import Path

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


def serve_once(config) -> tuple[int, str]:
    """``rtstation serve`` that is expected to refuse to start: its exit code and what it printed."""
    proc = rtstation("serve", config=config, check=False, timeout=60)
    return proc.returncode, proc.stdout + proc.stderr


def test_a_damaged_index_at_start_is_named_with_what_to_do_and_a_rebuild_recovers(config, data_dir, tmp_path):
    rtstation("import", *BREAST, config=config)
    with open(data_dir / "index.sqlite", "r+b") as fh:
        fh.write(b"this is not SQLite" * 6)  # the header is gone
    code, text = serve_once(config)
    assert code == 1 and "Traceback" not in text, text
    assert f"{data_dir / 'index.sqlite'}: the index database is damaged" in text
    assert "rtstation index --rebuild" in text
    out = json.loads(rtstation("index", "--rebuild", "--json", config=config).stdout)
    assert out["indexed"] == 4
    [patient] = show_json(config)
    assert len(patient["plans"]) == 1


def damage_an_index_page(db: Path, name: str) -> None:
    """Overwrite the b-tree page of one SQL index: the tables stay readable, PRAGMA quick_check fails."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name=?", (name,)).fetchone()[0]
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(db, "r+b") as fh:
        fh.seek((root - 1) * page_size)
        fh.write(b"\xee" * page_size)


def test_a_damaged_queue_is_named_and_repair_keeps_the_delivery_history(config, data_dir, tmp_path):
    from peers import StoreSCP

    scp = StoreSCP(tmp_path / "scp").start()
    try:
        text = config.read_text() + (f'\n[[nodes]]\nname = "QA"\nae_title = "STORESCP"\nhost = "127.0.0.1"\n'
                                     f'port = {scp.port}\n')
        config.write_text(text)
        rtstation("import", *BREAST, config=config)
        rtstation("send", "--plan", "B1", "--to", "QA", "--wait", config=config)
        damage_an_index_page(data_dir / "queue.sqlite", "ix_items_sop")
        code, out = serve_once(config)
        assert code == 1 and "Traceback" not in out, out
        assert f"{data_dir / 'queue.sqlite'}: the queue database is damaged" in out and "queue repair" in out
        repaired = rtstation("queue", "repair", config=config).stdout
        assert "kept 1 jobs and 4 instance records" in repaired and "queue.sqlite.damaged-" in repaired
        [job] = json.loads(rtstation("queue", "--json", config=config).stdout)
        assert (job["state"], job["done"], job["total"]) == ("done", 4, 4)
        again = rtstation("send", "--plan", "B1", "--to", "QA", config=config).stdout
        assert "no job, 0 instances, 4 already delivered" in again  # the history still prevents a resend
        server = Serve(config, tmp_path / "serve.log").start()
        server.stop()
    finally:
        scp.stop()
    assert list(data_dir.glob("queue.sqlite.damaged-*")), "the damaged queue must be kept"


def test_a_disk_that_cannot_be_written_at_start_is_said_in_words(config, data_dir):
    """RLIMIT_FSIZE = 0 on ``serve``: every write fails as on a full disk (EFBIG, as ENOSPC would)."""
    import resource
    import subprocess
    import sys

    rtstation("import", *BREAST, config=config)
    for extra in data_dir.glob("*.sqlite-*"):
        extra.unlink()

    def no_writes() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    proc = subprocess.run([sys.executable, "-m", "rtstation_tui", "serve", "--config", str(config)],
                          preexec_fn=no_writes, capture_output=True, text=True, timeout=60)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in text, text
    assert "index.sqlite: cannot read or write the index database" in text and "the disk may be full" in text
    assert "is damaged" not in text  # a sound file must not be called damaged
