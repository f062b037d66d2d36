"""The console with a real receiver: live updates in place, receiver errors in the header, SIGHUP, send progress."""

from __future__ import annotations

import asyncio
import os
import signal
import socket

import waiting
from helpers import BREAST, PEER_ENV, dcmtk, free_port
from tui_support import fill_store, make_app, make_config, screen_text, until

from rtstation_tui.engine.events import JobChanged, JobProgress
from rtstation_tui.engine.store.index import Index
from rtstation_tui.synthetic import make_patient


async def storescu(port: int, files: list) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        dcmtk("storescu"), "-aet", "ECLIPSE", "-aec", "RTSTATION", "127.0.0.1", str(port), *map(str, files),
        env=PEER_ENV, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)


async def test_tree_updates_in_place_keeping_cursor_and_expansion(tmp_path):
    port = free_port()
    config = make_config(tmp_path, port)
    fill_store(config, tmp_path, breast=False)
    app = make_app(config, listen=True)
    async with app.run_test(size=(100, 30)) as pilot:
        tree = app.main.tree
        await until(pilot, lambda: "listening" in screen_text(app), what="header: listening")
        await until(pilot, lambda: "SYN001" in tree.patients, what="SYN001")
        await pilot.press("enter", "down")
        await until(pilot, lambda: tree.cursor_data and tree.cursor_data.kind == "plan", what="cursor on PROST1")
        cursor = tree.cursor_node
        proc = await storescu(port, BREAST)
        assert await proc.wait() == 0, (await proc.stderr.read()).decode()
        await until(pilot, lambda: "123456" in tree.patients, what="123456 appears")
        # inserted above SYN001 (sorted), yet the cursor stays on the same plan and SYN001 stays open
        assert tree.cursor_node is cursor and tree.patient_node("SYN001").is_expanded
        assert [n.data.patient_id for n in tree.root.children] == ["123456", "SYN001"]
        await until(pilot, lambda: app.main.status.today == 4, what="4 received today")
        await until(pilot, lambda: "association" in " ".join(app.main.logpane.log_widget.lines),
                    what="the association's log line in the pane")
        await pilot.press("up", "up", "enter")
        await until(pilot, lambda: tree.find_plan("B1"), what="B1 in the tree")
        await until(pilot, lambda: tree.plans[tree.find_plan("B1")].state != "receiving", what="B1 state")


async def test_a_receiver_that_cannot_listen_shows_error_in_the_header(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        config = make_config(tmp_path, busy.getsockname()[1])
        app = make_app(config, listen=True)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: "✗ error" in screen_text(app), what="header error state")
            assert "cannot listen" in screen_text(app)
            assert app.is_running  # the rest of the console keeps working
            await pilot.press("n")
            await pilot.press("escape", "q", "s")  # quit, stopping the station
            await until(pilot, lambda: not app.is_running, what="exit")


async def test_sighup_ends_the_app_but_never_the_station_or_its_in_flight_stores(tmp_path):
    """SIGHUP is a lost terminal: the app exits, the station it runs goes on (headless) until it is stopped."""
    port = free_port()
    config = make_config(tmp_path, port)
    patient = make_patient(tmp_path / "big", "HUP001", slices=300, rows=32, cols=32)
    app = make_app(config, listen=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: "listening" in screen_text(app), what="listening")
        loop = asyncio.get_running_loop()
        assert signal.SIGHUP in getattr(loop, "_signal_handlers", {}), "no SIGHUP handler: the test would kill pytest"
        proc = await storescu(port, patient.files)
        await until(pilot, lambda: app.arriving, what="association open")
        os.kill(os.getpid(), signal.SIGHUP)
        await until(pilot, lambda: not app.is_running, timeout=60, what="exit after SIGHUP")
    assert app.headless and app.return_code == 0 and app.station._started  # the station still runs
    try:
        assert await proc.wait() == 0, "the in-flight association must finish"
        index = Index(config.data_dir)
        await waiting.until(lambda: index.count_instances() == len(patient.files), 30, "all indexed")
        index.close()
    finally:
        await app.station.stop()


async def test_progress_area_shows_one_bar_per_active_job(tmp_path):
    config = make_config(tmp_path)
    fill_store(config, tmp_path, synthetic=False)
    app = make_app(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.main.tree.patients, what="patients")
        area = app.main.progress
        assert not area.display
        uid = "1.2.246.352.71.5.320687012.24189.20090603083342"
        app.apply_events([JobChanged(1, "QA", uid, "B1", "queued", 0, 4, 0),
                          JobChanged(2, "ARCHIVE", uid, "B1", "queued", 0, 4, 0)])
        await pilot.press("enter")
        app.apply_events([JobProgress(1, "QA", uid, "B1", 2, 4, 300_000, 600_000, 25.0)])
        await until(pilot, lambda: "2/4  0.3/0.6 MB  25/s" in screen_text(app), what="progress row")
        text = screen_text(app)
        assert "QA ← B1" in text and "ARCHIVE ← B1" in text and "0/4  queued" in text
        assert "QA: sending 50%" in str(app.main.tree.plan_node(uid).label)
        app.apply_events([JobChanged(1, "QA", uid, "B1", "done", 4, 4, 0),
                          JobChanged(2, "ARCHIVE", uid, "B1", "failed", 0, 4, 4, error="refused")])
        await until(pilot, lambda: not area.display, what="finished jobs leave the area")
        assert area.counts() == (0, 1)
        label = str(app.main.tree.plan_node(uid).label)
        assert "QA: done" in label and "ARCHIVE: failed" in label


async def test_send_to_storescp_progress_reaches_100(tmp_path):
    """The real sender to a real DCMTK storescp: dialog → job → bar at 4/4 → tree and details say done."""
    from peers import StoreSCP

    qa = StoreSCP(tmp_path / "qa").start()
    try:
        extra = f'[[nodes]]\nname = "QA"\nae_title = "STORESCP"\nhost = "127.0.0.1"\nport = {qa.port}\n'
        config = make_config(tmp_path, extra=extra)
        fill_store(config, tmp_path, synthetic=False)
        app = make_app(config)
        seen: list[tuple[int, int]] = []
        async with app.run_test(size=(120, 40)) as pilot:
            area = app.main.progress
            original = area.job_progress
            area.job_progress = lambda ev: (seen.append((ev.done, ev.total)), original(ev))  # type: ignore
            await until(pilot, lambda: app.station._started and app.main.tree.patients, what="started")
            await pilot.press("enter", "down", "s")
            await until(pilot, lambda: "Send 1 plan" in screen_text(app), what="send dialog")
            await pilot.press("space", "enter")
            await until(pilot, lambda: len(qa.files()) == 4, timeout=30, what="storescp got the bundle")
            uid = app.main.tree.find_plan("B1")
            await until(pilot, lambda: "QA: done" in str(app.main.tree.plan_node(uid).label), what="QA: done")
            assert (4, 4) in seen, seen
            await until(pilot, lambda: "Send history" in screen_text(app), what="history in the details")
            await until(pilot, lambda: app.main.status.jobs == (0, 0), what="no job waiting in the status line")
    finally:
        qa.stop()


async def test_a_data_dir_in_use_exits_with_a_message(tmp_path):
    from rtstation_tui.engine.store.lock import DataDirLock

    config = make_config(tmp_path)
    lock = DataDirLock(config.data_dir)
    lock.acquire()
    try:
        app = make_app(config)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: not app.is_running, what="exit")
        assert app.return_code == 1 and app.return_value == 1
    finally:
        lock.release()


async def test_quit_at_once_waits_for_the_start_and_leaves_nothing_running(tmp_path):
    port = free_port()
    app = make_app(make_config(tmp_path, port), listen=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q", "s")  # typically before the receiver is listening
        await until(pilot, lambda: not app.is_running, what="exit")
    assert not app.station._started
    with socket.socket() as s:  # the port is free again: no receiver left behind
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


async def test_rule_hold_and_import_folder_state_are_shown(tmp_path):
    """A rule that holds incomplete plans: B1 (CTs missing) shows 'held by'; the watched folder is in the header."""
    port = free_port()
    (tmp_path / "incoming").mkdir()
    extra = ('[import]\nfolder = "%s"\n\n[[nodes]]\nname = "QA"\nae_title = "STORESCP"\nhost = "127.0.0.1"\n'
             'port = 11200\n\n[[rules]]\nname = "to QA"\ntargets = ["QA"]\nwhen_incomplete = "hold"\n'
             % (tmp_path / "incoming"))
    config = make_config(tmp_path, port, extra=extra)
    from dataclasses import replace

    config = replace(config, receiver=replace(config.receiver, settle_seconds=0.5))
    app = make_app(config, listen=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: "import incoming: watching" in screen_text(app), what="import folder watching")
        proc = await storescu(port, BREAST)
        assert await proc.wait() == 0
        tree = app.main.tree
        await until(pilot, lambda: "123456" in tree.patients, what="123456")
        await pilot.press("enter")
        await until(pilot, lambda: tree.find_plan("B1"), what="B1")
        uid = tree.find_plan("B1")
        await until(pilot, lambda: "held by to QA" in str(tree.plan_node(uid).label), timeout=20, what="held label")
        await pilot.press("down")
        await until(pilot, lambda: "Held by rule to QA" in screen_text(app), what="held in the details")
