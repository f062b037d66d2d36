"""The console attaches to a station served by another process (``rtstation serve``): the tree, the header and
the live updates come through the control API and its event stream; quitting detaches and the station goes on."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from helpers import BREAST, Serve, echoscu, free_port, station_toml, storescu, write_config
from tui_support import screen_text, until
from waiting import until as until_plain
from peers import StoreSCP

from rtstation_tui.engine.config.model import load_config
from rtstation_tui.engine.events import AssociationClosed, JobChanged, ReceiverState
from rtstation_tui.engine.service.remote import RemoteStation, attach
from rtstation_tui.ui.app import StationApp


def start_serve(tmp_path: Path) -> tuple[Path, int, Serve]:
    """``rtstation serve`` on a fresh data_dir: (its config file, its port, the process)."""
    port = free_port()
    config = write_config(tmp_path / "rtstation.toml", station_toml(tmp_path / "var", port))
    return config, port, Serve(config, tmp_path / "serve.log").start()


def attached_app(config: Path) -> tuple[StationApp, RemoteStation]:
    remote = attach(load_config(config))
    assert remote is not None, "no station answers on the socket"
    app = StationApp(remote.config, station=remote)
    app.animation_level = "none"
    return app, remote


async def test_console_attaches_to_serve_sees_live_receives_and_detaches(tmp_path: Path) -> None:
    config, port, serve = start_serve(tmp_path)
    try:
        app, remote = attached_app(config)
        async with app.run_test(size=(120, 30)) as pilot:
            tree = app.main.tree
            await until(pilot, lambda: f"attached pid {serve.proc.pid}" in screen_text(app)
                        and "listening" in screen_text(app), 20, what="header")
            assert str(port) in screen_text(app)
            assert (await asyncio.to_thread(storescu, port, BREAST)).returncode == 0
            await until(pilot, lambda: "123456" in tree.patients, 20, what="the received patient in the tree")
            await until(pilot, lambda: "association" in " ".join(app.main.logpane.log_widget.lines), 20,
                        what="the station's log line in this console's pane")
            await pilot.press("enter")
            await until(pilot, lambda: tree.find_plan("B1"), what="B1 in the tree")
            await pilot.press("q")  # an attached console only detaches
        assert serve.proc.poll() is None  # the station goes on receiving
        assert (await asyncio.to_thread(echoscu, port)).returncode == 0
        assert f"attached to the station of pid {serve.proc.pid}" not in serve.text()  # the console logs it, not serve
    finally:
        serve.stop()


async def test_a_console_running_the_station_says_so_and_serves_the_api(tmp_path: Path) -> None:
    port = free_port()
    config = load_config(write_config(tmp_path / "rtstation.toml", station_toml(tmp_path / "var", port)))
    app = StationApp(config)
    app.animation_level = "none"
    async with app.run_test(size=(80, 24)) as pilot:  # the owner and its pid readable at 80 columns
        await until(pilot, lambda: f"here pid {os.getpid()}" in screen_text(app).splitlines()[0], what="header")
        await until(pilot, lambda: "listening" in screen_text(app), what="listening")
        other = await asyncio.to_thread(attach, config)  # a second console would attach to this one
        assert other is not None and other.pid == os.getpid()
        assert (await asyncio.to_thread(other.status)).receiver_state == "listening"


async def test_two_attached_consoles_see_each_others_sends_and_catch_up_after_a_restart(tmp_path: Path) -> None:
    """Two RemoteStations (what two attached consoles use) on one serve; the service restarts under them."""
    config, port, serve = start_serve(tmp_path)
    scp = StoreSCP(tmp_path / "scp").start()
    a, b = attach(load_config(config)), attach(load_config(config))
    assert a is not None and b is not None
    seen: dict[str, list] = {"a": [], "b": []}
    a.subscribe(seen["a"].extend)
    b.subscribe(seen["b"].extend)
    await a.start()
    await b.start()
    try:
        assert (await asyncio.to_thread(storescu, port, BREAST)).returncode == 0
        await until_plain(lambda: all(any(isinstance(e, AssociationClosed) for e in s) for s in seen.values()))
        await until_plain(lambda: b.plans_of("123456"), what="B1 indexed")
        jobs = await asyncio.to_thread(a.send, [b.plans_of("123456")[0].plan_uid], [scp.spec])  # sent from "A"

        def done(who: str) -> bool:
            return any(isinstance(e, JobChanged) and e.job_id == jobs[0] and e.state == "done" for e in seen[who])

        await until_plain(lambda: done("a") and done("b"), what="both see the job done")
        serve.stop()
        await until_plain(lambda: any(isinstance(e, ReceiverState) and e.state == "reconnecting" for e in seen["b"]),
                          what="B says reconnecting")
        serve = Serve(config, tmp_path / "serve2.log").start()
        await until_plain(lambda: b.connected and b.pid == serve.proc.pid, what="B reconnected to the new run")
        assert (await asyncio.to_thread(storescu, port, BREAST)).returncode == 0

        def closed(who: str) -> list[AssociationClosed]:
            return [e for e in seen[who] if isinstance(e, AssociationClosed)]

        await until_plain(lambda: len(closed("a")) == 2 and len(closed("b")) == 2, what="both catch up")
        assert closed("b")[1].duplicates == 4
        assert (await asyncio.to_thread(b.status)).receiver_state == "listening"
    finally:
        await a.stop()
        await b.stop()
        scp.stop()
        serve.stop()


async def test_rtstation_stop_stops_the_station_a_console_runs(tmp_path: Path) -> None:
    from helpers import rtstation

    port = free_port()
    path = write_config(tmp_path / "rtstation.toml", station_toml(tmp_path / "var", port))
    app = StationApp(load_config(path))
    app.animation_level = "none"
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: "listening" in screen_text(app), what="listening")
        proc = await asyncio.to_thread(rtstation, "stop", config=path)
        assert f"stopped (pid {os.getpid()})" in proc.stdout
        await until(pilot, lambda: not app.is_running, what="the console to exit")
    assert (await asyncio.to_thread(echoscu, port)).returncode != 0  # nobody listens any more


async def test_attached_console_shows_reconnecting_while_the_service_restarts(tmp_path: Path) -> None:
    config, port, serve = start_serve(tmp_path)
    try:
        app, remote = attached_app(config)
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: "listening" in screen_text(app), 20, what="listening")
            await asyncio.to_thread(serve.stop)
            await until(pilot, lambda: "reconnecting" in screen_text(app), 20, what="the header: reconnecting")
            serve = await asyncio.to_thread(Serve(config, tmp_path / "serve2.log").start)
            await until(pilot, lambda: f"attached pid {serve.proc.pid}" in screen_text(app)
                        and "listening" in screen_text(app), 20, what="the header: the new run, listening")
            assert (await asyncio.to_thread(storescu, port, BREAST)).returncode == 0
            await until(pilot, lambda: "123456" in app.main.tree.patients, 20, what="the new run's receive")
    finally:
        serve.stop()


async def test_an_attached_consoles_editor_saves_go_through_the_station(tmp_path: Path) -> None:
    """The editors' save on an attached console: the station edits its own file (POST /api/v1/config/edit), its
    loader checks it, it applies it; a bad value is refused by name and changes nothing."""
    config, port, serve = start_serve(tmp_path)
    try:
        app, remote = attached_app(config)
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: f"attached pid {serve.proc.pid}" in screen_text(app), 20, what="header")
            saved = await app.save_config(lambda cf: cf.add_entry(
                "nodes", {"name": "QA", "ae_title": "STORESCP", "host": "127.0.0.1", "port": 11200}), "Added QA")
            assert saved is not None and [n.name for n in saved.nodes] == ["QA"]
            assert [n.name for n in app.config.nodes] == ["QA"] and 'name = "QA"' in config.read_text()
            assert "api: POST /api/v1/config/edit" in serve.text()
            assert [n.name for n in remote.config.nodes] == ["QA"]  # read back from the station's GET /config
            before = config.read_text()
            refused = await app.save_config(lambda cf: cf.set("receiver", "min_free_mb", -5), "Changed min_free_mb")
            assert refused is None and config.read_text() == before
            assert any("min_free_mb" in n.message for n in app._notifications)
            await pilot.press("q")
        assert serve.proc.poll() is None
    finally:
        serve.stop()
