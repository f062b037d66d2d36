"""The watched import folder: ZIPs, junk, after_import, half-written files, a missing folder. Real storescp peer and
a real ``rtstation serve`` for the forwarding test; the Station in-process where its state is what we look at."""

from __future__ import annotations

import asyncio
import json
import zipfile
from pathlib import Path

import pytest

from helpers import (BREAST, DATA, Serve, dataset_bytes, free_port, rtstation, station_toml, stored_files, storescu,
                     wait_for, write_config, zip_with_unreadable_member)
from peers import StoreSCP
from waiting import until
from rulestools import audit_records, decisions_for, node_toml, received, rule_toml

from rtstation_tui.engine.intake import watcher as watcher_mod
from rtstation_tui.engine.config.model import load_config
from rtstation_tui.engine.events import ImportFolderState
from rtstation_tui.engine.station import Station
from rtstation_tui.synthetic import make_patient

B1 = "1.2.246.352.71.5.320687012.24189.20090603083342"


def import_toml(folder: Path, after: str = "move", settle: float = 0.3, **extra: object) -> str:
    lines = [f'[import]\nfolder = "{folder}"\nafter_import = "{after}"\nsettle_seconds = {settle}']
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    return "\n".join(lines) + "\n\n"


def jobs(config: Path) -> list[str]:
    return [j["state"] for j in json.loads(rtstation("queue", "--json", config=config).stdout)]


def breast_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for f in BREAST:
            zf.write(f, f"export/{Path(f).name}")
        zf.writestr("export/notes.txt", "exported by hand, see the plan\n")
    return path


def test_zip_in_the_folder_is_forwarded_by_an_import_folder_rule_and_its_junk_quarantined(tmp_path):
    scp = StoreSCP(tmp_path / "qa", aet="QASCP").start()
    folder = tmp_path / "incoming"
    folder.mkdir()
    server = None
    try:
        rules = (rule_toml("network only", ["QA"], source_ae="ECLIPSE")
                 + rule_toml("from the folder", ["QA"], source_ae="IMPORT_FOLDER", when_incomplete="send"))
        extra = import_toml(folder) + node_toml("QA", scp.spec) + rules
        text = station_toml(tmp_path / "var", free_port(), extra=extra)
        config = write_config(tmp_path / "rt.toml", text.replace("settle_seconds = 30", "settle_seconds = 1"))
        server = Serve(config, tmp_path / "serve.log").start()
        breast_zip(tmp_path / "b1.zip").rename(folder / "b1.zip")
        wait_for(lambda: jobs(config) == ["done"], 30, what="B1 (incomplete: 97 CT missing) sent to QA")
        assert sorted(r[1] for r in received(scp.files())) == ["CT", "RTDOSE", "RTPLAN", "RTSTRUCT"]
        d = decisions_for(tmp_path / "var" / "logs", B1)
        assert d["network only"]["failed_condition"] == "source_ae" and "'IMPORT_FOLDER'" in d["network only"]["reason"]
        assert d["from the folder"]["outcome"] == "send" and d["from the folder"]["jobs"][0]["instances"] == 4
        # the text file went to quarantine with its reason; the ZIP was moved out of the folder (after_import)
        quarantine = tmp_path / "var" / "quarantine"
        [reason] = list(quarantine.glob("*.reason.txt"))
        assert "notes.txt" in reason.name and "not DICOM" in reason.read_text()
        wait_for(lambda: (tmp_path / "var" / "imported" / "b1.zip").exists(), 10, what="the ZIP moved")
        assert list(folder.iterdir()) == []
        assert "import folder: quarantined" in server.text() and "b1.zip!export/notes.txt" in server.text()
        assert server.stop() == 0  # the observer and the import worker stop cleanly
        # restart after everything is done: nothing is sent again, nothing imported again
        evaluations = len(audit_records(tmp_path / "var" / "logs"))
        server = Serve(config, tmp_path / "serve2.log").start()
        p = make_patient(tmp_path / "p", "W2", label="W2", slices=1, rows=8, cols=8)
        storescu(int(text.split("port = ")[1].split("\n")[0]), p.files, aet="ECLIPSE")
        wait_for(lambda: jobs(config) == ["done", "done"], 30, what="the new plan routed by the network rule")
        assert len(audit_records(tmp_path / "var" / "logs")) == evaluations + 2
        assert len({r[2] for r in received(scp.files())}) == 8
    finally:
        if server is not None:
            server.kill()
        scp.stop()


async def start_station(tmp_path: Path, folder: Path, **kw: object) -> tuple[Station, list, int]:
    port = free_port()
    config = load_config(write_config(tmp_path / "rt.toml",
                                      station_toml(tmp_path / "var", port, extra=import_toml(folder, **kw))))
    station = Station(config)
    events: list = []
    station.subscribe(events.extend)
    await station.start()
    return station, events, port


async def test_a_file_still_being_written_is_not_imported_half(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    station, events, _ = await start_station(tmp_path, folder, settle=3, after="delete")
    try:
        data = Path(BREAST[2]).read_bytes()
        target = folder / "plan.dcm"
        with open(target, "wb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
            await until(lambda: station.watcher.pending == 1 and not station.watcher._incoming, what="file seen")
            assert stored_files(tmp_path / "var") == [] and not list((tmp_path / "var" / "quarantine").iterdir())
            fh.write(data[len(data) // 2:])
        await until(lambda: len(stored_files(tmp_path / "var")) == 1, what="the whole file imported")
        [stored] = stored_files(tmp_path / "var")
        assert dataset_bytes(stored) == dataset_bytes(Path(BREAST[2]))
        assert not list((tmp_path / "var" / "quarantine").iterdir())
        await until(lambda: not target.exists(), what="after_import = delete")
    finally:
        await station.stop()


async def test_keep_leaves_files_and_never_imports_them_again(tmp_path, monkeypatch):
    monkeypatch.setattr(watcher_mod, "RESCAN_SECONDS", 0.1)
    monkeypatch.setattr(watcher_mod, "HOLD_SECONDS", 1.0)  # broken files written just before the start: held 1 s
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for f in BREAST:
        (folder / "sub" / Path(f).name).write_bytes(Path(f).read_bytes())  # there before the station starts
    (folder / "skip.part").write_bytes(Path(BREAST[0]).read_bytes())  # excluded by the default globs
    (folder / "junk.txt").write_text("not DICOM\n")  # broken input is moved to quarantine even with keep
    (folder / "cut.dcm").write_bytes((DATA / "pydicom" / "rtplan_truncated.dcm").read_bytes())
    station, _, _ = await start_station(tmp_path, folder, after="keep")
    log_dir = tmp_path / "var" / "logs"
    try:
        await until(lambda: len(audit_records(log_dir, "import_folder")) == 6, what="six files handled")
        assert not (folder / "junk.txt").exists() and not (folder / "cut.dcm").exists()
        quarantine = tmp_path / "var" / "quarantine"
        reasons = {p.name.split("-", 3)[-1]: p.read_text() for p in quarantine.glob("*.reason.txt")}
        assert "not DICOM" in reasons["junk.txt.reason.txt"] and "truncated" in reasons["cut.dcm.reason.txt"]
        scans = station.watcher
        for _ in range(5):  # several rescans of the folder later, still imported once
            mark = scans._next_rescan
            await until(lambda: scans._next_rescan != mark, what="a rescan")
        records = audit_records(log_dir, "import_folder")
        assert len(records) == 6 and sorted(r["action"] for r in records) == ["kept"] * 4 + ["quarantined"] * 2
        assert len(list((folder / "sub").iterdir())) == 4 and len(stored_files(tmp_path / "var")) == 4
    finally:
        await station.stop()
    # a restart remembers them too
    station, _, _ = await start_station(tmp_path, folder, after="keep")
    try:
        mark = station.watcher._next_rescan
        await until(lambda: station.watcher._next_rescan != mark and station.watcher.state == "watching",
                    what="the first scan")
        await until(lambda: station.watcher.pending == 0, what="nothing pending")
        assert len(audit_records(log_dir, "import_folder")) == 6
    finally:
        await station.stop()


@pytest.mark.parametrize("problem", ["missing", "a file"])
async def test_a_missing_folder_is_an_error_state_that_does_not_stop_the_receiver(tmp_path, problem):
    folder = tmp_path / "in"
    if problem == "a file":
        folder.write_text("not a folder")
    station, events, port = await start_station(tmp_path, folder)
    try:
        await until(lambda: station.watcher.state == "error", what="error state")
        why = "does not exist" if problem == "missing" else "is not a folder"
        assert why in station.watcher.detail and str(folder) in station.watcher.detail
        await until(lambda: any(isinstance(e, ImportFolderState) and e.state == "error" for e in events),
                    what="the state event")
        assert station.receiver_state == "listening"
        proc = await asyncio.to_thread(storescu, port, BREAST[:1], aet="ECLIPSE")
        assert proc.returncode == 0
        folder.unlink(missing_ok=True)
        folder.mkdir()  # it appears later: watched from then on
        await until(lambda: station.watcher.state == "watching", 10, what="watching once the folder exists")
        (folder / "x.dcm").write_bytes(Path(BREAST[1]).read_bytes())
        await until(lambda: len(stored_files(tmp_path / "var")) == 2, what="the file imported")
    finally:
        await station.stop()


@pytest.mark.parametrize("after", ["delete", "keep"])
async def test_a_zip_is_handled_per_after_import(tmp_path, after):
    folder = tmp_path / "in"
    folder.mkdir()
    station, _, _ = await start_station(tmp_path, folder, after=after)
    try:
        breast_zip(tmp_path / "b1.zip").rename(folder / "b1.zip")
        log_dir = tmp_path / "var" / "logs"
        await until(lambda: audit_records(log_dir, "import_folder"), what="the ZIP imported")
        [rec] = audit_records(log_dir, "import_folder")
        assert rec["outcome"] == "zip" and rec["action"] == {"delete": "deleted", "keep": "kept"}[after]
        assert (folder / "b1.zip").exists() == (after == "keep")
        assert len(stored_files(tmp_path / "var")) == 4
        assert len(list((tmp_path / "var" / "quarantine").glob("*notes.txt.reason.txt"))) == 1
        assert not (tmp_path / "var" / "imported").exists()
    finally:
        await station.stop()


@pytest.mark.parametrize("recursive", [True, False])
async def test_a_folder_moved_in_whole_is_imported_only_when_recursive(tmp_path, recursive):
    folder = tmp_path / "in"
    folder.mkdir()
    station, _, _ = await start_station(tmp_path, folder, after="move", recursive=recursive)
    try:
        await until(lambda: station.watcher.state == "watching", what="watching")
        export = tmp_path / "export"
        export.mkdir()
        for f in BREAST:
            (export / Path(f).name).write_bytes(Path(f).read_bytes())
        export.rename(folder / "export")  # one event for the folder, none for its files
        (folder / "top.dcm").write_bytes(Path(BREAST[0]).read_bytes())
        log_dir = tmp_path / "var" / "logs"
        await until(lambda: len(audit_records(log_dir, "import_folder")) == (5 if recursive else 1), what="imports")
        moved = sorted(p.relative_to(tmp_path / "var" / "imported").as_posix()
                       for p in (tmp_path / "var" / "imported").rglob("*.dcm"))
        if recursive:
            assert moved == sorted(["top.dcm"] + [f"export/{Path(f).name}" for f in BREAST])
        else:
            assert moved == ["top.dcm"] and len(list((folder / "export").iterdir())) == 4
    finally:
        await station.stop()


async def test_an_encrypted_zip_is_quarantined_with_its_reason_and_the_folder_goes_on(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    station, _, _ = await start_station(tmp_path, folder, after="delete")
    try:
        zip_with_unreadable_member(tmp_path / "locked.zip", {"a/ct.dcm": Path(BREAST[0]).read_bytes()}, "a/rp.dcm",
                                   "encrypted").rename(folder / "locked.zip")
        quarantine = tmp_path / "var" / "quarantine"
        await until(lambda: list(quarantine.glob("*locked.zip.reason.txt")), what="the archive quarantined")
        [reason] = list(quarantine.glob("*locked.zip.reason.txt"))
        assert "a/rp.dcm: encrypted (password required)" in reason.read_text()
        assert not (folder / "locked.zip").exists()  # moved out of the folder, never tried again
        (folder / "later.dcm").write_bytes(Path(BREAST[1]).read_bytes())
        await until(lambda: len(stored_files(tmp_path / "var")) == 2, what="a later file imported")
        await until(lambda: not (folder / "later.dcm").exists(), what="after_import = delete")
        [rec] = [r for r in audit_records(tmp_path / "var" / "logs", "import_folder") if "locked" in r["file"]]
        assert rec["outcome"] == "quarantined"
    finally:
        await station.stop()


async def test_symlinks_out_of_the_folder_are_not_followed_and_quarantine_never_widens_a_mode(tmp_path, monkeypatch):
    monkeypatch.setattr(watcher_mod, "HOLD_SECONDS", 1.0)  # private.txt is broken and there before the start
    folder, outside = tmp_path / "in", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    target = outside / "elsewhere.dcm"
    target.write_bytes(Path(BREAST[0]).read_bytes())
    secret = outside / "shadow"
    secret.write_text("root:$6$secret\n")
    secret.chmod(0o600)
    (folder / "link.dcm").symlink_to(target)
    (folder / "secret").symlink_to(secret)
    private = folder / "private.txt"  # a broken file of the folder itself, readable by its owner only
    private.write_text("not DICOM\n")
    private.chmod(0o600)
    station, _, _ = await start_station(tmp_path, folder, after="delete")
    try:
        (folder / "good.dcm").write_bytes(Path(BREAST[1]).read_bytes())
        await until(lambda: not (folder / "good.dcm").exists() and not private.exists(), what="the folder handled")
        quarantine = tmp_path / "var" / "quarantine"
        await until(lambda: len(audit_records(tmp_path / "var" / "logs", "import_folder")) >= 4,
                    what="every path accounted for")
    finally:
        await station.stop()
    [stored] = stored_files(tmp_path / "var")
    assert dataset_bytes(stored) == dataset_bytes(Path(BREAST[1]))  # the link's target was not imported
    kept = [p for p in quarantine.iterdir() if not p.name.endswith(".reason.txt")]
    assert [p.name.split("-", 3)[3] for p in kept] == ["private.txt"]  # the linked secret was not copied
    assert kept[0].stat().st_mode & 0o777 == 0o600
    assert (folder / "link.dcm").is_symlink() and (folder / "secret").is_symlink()  # left alone
    assert target.exists() and secret.read_text().startswith("root:")
    refused = [r for r in audit_records(tmp_path / "var" / "logs", "import_folder") if r["outcome"] == "refused"]
    assert sorted(Path(r["file"]).name for r in refused) == ["link.dcm", "secret"]


def test_a_one_shot_import_copies_a_private_file_into_quarantine_without_widening_its_mode(tmp_path):
    config = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", free_port()))
    private = tmp_path / "private.txt"
    private.write_text("not DICOM\n")
    private.chmod(0o600)
    rtstation("import", str(private), config=config, check=False)
    [kept] = [p for p in (tmp_path / "var" / "quarantine").iterdir() if not p.name.endswith(".reason.txt")]
    assert kept.read_text() == "not DICOM\n" and private.exists()
    assert kept.stat().st_mode & 0o777 == 0o600


async def test_a_file_written_slowly_with_long_pauses_is_held_not_quarantined_and_stored_whole(tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="rtstation.watcher")
    folder = tmp_path / "in"
    folder.mkdir()
    station, _, _ = await start_station(tmp_path, folder, settle=0.3, after="delete")
    quarantine = tmp_path / "var" / "quarantine"
    try:
        data = Path(BREAST[2]).read_bytes()
        target = folder / "slow.dcm"
        with open(target, "wb") as fh:
            for n, part in enumerate((data[: len(data) // 3], data[len(data) // 3: 2 * len(data) // 3])):
                fh.write(part)
                fh.flush()
                # a pause far longer than settle_seconds: the watcher looks at the fragment (and holds it)
                looked = ("looks incomplete", "still incomplete")[n]
                await until(lambda: looked in caplog.text or list(quarantine.iterdir()) or not target.exists(),
                            what="the watcher looking at the fragment")
                assert not list(quarantine.iterdir()) and target.exists(), "a fragment was quarantined"
            fh.write(data[2 * len(data) // 3:])
        await until(lambda: len(stored_files(tmp_path / "var")) == 1, what="the whole file imported")
        [stored] = stored_files(tmp_path / "var")
        assert dataset_bytes(stored) == dataset_bytes(Path(BREAST[2]))
        assert not list(quarantine.iterdir())
        await until(lambda: not target.exists(), what="after_import = delete")
    finally:
        await station.stop()


@pytest.mark.parametrize("how", ["closed", "unchanged"])
async def test_a_broken_file_is_quarantined_once_it_is_complete(tmp_path, monkeypatch, how):
    """Complete: its writer closed it after its last change, or it has not changed for the hold time."""
    monkeypatch.setattr(watcher_mod, "HOLD_SECONDS", 1.0)
    folder = tmp_path / "in"
    folder.mkdir()
    data = Path(DATA / "pydicom" / "rtplan_truncated.dcm").read_bytes()
    if how == "unchanged":  # there before the station: no close event will come
        (folder / "broken.dcm").write_bytes(data)
    station, _, _ = await start_station(tmp_path, folder, settle=0.1, after="delete")
    quarantine = tmp_path / "var" / "quarantine"
    try:
        if how == "closed":
            (folder / "broken.dcm").write_bytes(data)
        await until(lambda: list(quarantine.glob("*broken.dcm.reason.txt")), what="the broken file quarantined")
        [reason] = list(quarantine.glob("*broken.dcm.reason.txt"))
        assert "truncated" in reason.read_text()
        assert not (folder / "broken.dcm").exists() and len(list(quarantine.glob("*broken.dcm"))) == 1
    finally:
        await station.stop()
