"""Settings applied live against a real peer: a new port in the settings screen moves the listener at once."""

from __future__ import annotations

import asyncio

from editor_support import fill
from helpers import echoscu, free_port
from tui_support import make_app, make_config, screen_text, until

from rtstation_tui.ui.screens.settings import SettingsScreen


async def test_new_port_in_settings_makes_echoscu_succeed_there_and_fail_on_the_old_one(tmp_path):
    old, new = free_port(), free_port()
    config = make_config(tmp_path, old)
    app = make_app(config, listen=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.station.receiver_state == "listening", what="listening")
        assert (await asyncio.to_thread(echoscu, old)).returncode == 0
        await pilot.press("S")
        screen = await until(pilot, lambda: isinstance(app.screen, SettingsScreen) and app.screen, what="settings")
        await fill(pilot, screen.form, "station.port", str(new))
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.station.receiver is not None
                    and app.station.receiver.address == f"127.0.0.1:{new}"
                    and app.station.receiver_state == "listening", what="listener on the new port")
        await pilot.press("escape")
        await until(pilot, lambda: f"127.0.0.1:{new}  ● listening" in screen_text(app), what="header follows")
        assert (await asyncio.to_thread(echoscu, new)).returncode == 0
        assert (await asyncio.to_thread(echoscu, old)).returncode != 0

        await pilot.press("S")  # a new AE title restarts the listener too; the called-AE check follows it
        screen = await until(pilot, lambda: isinstance(app.screen, SettingsScreen) and app.screen, what="settings")
        await fill(pilot, screen.form, "station.ae_title", "RTNEW")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.station.receiver.ae_title == "RTNEW"
                    and app.station.receiver_state == "listening", what="listener as RTNEW")
        await pilot.press("escape")
        await until(pilot, lambda: "RTNEW" in screen_text(app), what="header shows RTNEW")
        assert (await asyncio.to_thread(echoscu, new, aec="RTNEW")).returncode == 0
        assert (await asyncio.to_thread(echoscu, new, aec="RTSTATION")).returncode != 0
        assert app.is_running  # the same app, never restarted


async def test_t_echoes_a_real_storescp_and_names_the_failure_of_a_closed_port(tmp_path):
    from peers import StoreSCP

    scp = StoreSCP(tmp_path / "scp").start()
    closed = free_port()
    nodes = (f'[[nodes]]\nname = "QA"\nae_title = "STORESCP"\nhost = "127.0.0.1"\nport = {scp.port}\n\n'
             f'[[nodes]]\nname = "GONE"\nae_title = "GONE"\nhost = "127.0.0.1"\nport = {closed}\ntimeout_s = 5\n')
    config = make_config(tmp_path, free_port(), extra=nodes)
    app = make_app(config)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: app.main.ready, what="tree")
            await pilot.press("n", "t")
            table = app.screen.table
            await until(pilot, lambda: "OK" in str(table.get_row("QA")), what="QA answers", timeout=20)
            await until(pilot, lambda: "QA" in app.last_echo, what="QA's answer recorded for the send dialog")
            assert app.last_echo["QA"].ok and app.last_echo["QA"].rtt_ms is not None
            await pilot.press("j", "t")
            await until(pilot, lambda: "FAILED" in str(table.get_row("GONE")), what="GONE fails", timeout=20)
            await until(pilot, lambda: "GONE" in app.last_echo, what="GONE's answer recorded for the send dialog")
            message = app.last_echo["GONE"].message
            assert message == f"connection refused: nothing listening on 127.0.0.1:{closed}"
            assert message in str(app.screen.query_one("#nodes-detail").content)
    finally:
        scp.stop()


async def test_an_association_in_flight_during_the_port_change_finishes_its_stores(tmp_path):
    from pydicom import dcmread
    from pynetdicom import AE

    from helpers import DATA, stored_files

    old, new = free_port(), free_port()
    config = make_config(tmp_path, old)
    app = make_app(config, listen=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.station.receiver_state == "listening", what="listening")
        ae = AE("ECLIPSE")
        ae.add_requested_context("1.2.840.10008.5.1.4.1.1.481.5", "1.2.840.10008.1.2")
        held = await asyncio.to_thread(ae.associate, "127.0.0.1", old, ae_title="RTSTATION")
        assert held.is_established
        await pilot.press("S")
        screen = await until(pilot, lambda: isinstance(app.screen, SettingsScreen) and app.screen, what="settings")
        await fill(pilot, screen.form, "station.port", str(new))
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "restarting the listener" in str(app.main.header.render_text())
                    or app.station.receiver_state == "stopped", what="restart under way")
        status = await asyncio.to_thread(held.send_c_store, dcmread(DATA / "breast_boost" / "rtplan.dcm"))
        assert status.Status == 0  # the old listener still serves the association it had
        await asyncio.to_thread(held.release)
        await until(pilot, lambda: app.station.receiver.address == f"127.0.0.1:{new}"
                    and app.station.receiver_state == "listening", what="listening on the new port", timeout=40)
        assert len(stored_files(config.data_dir)) == 1
        assert (await asyncio.to_thread(echoscu, new)).returncode == 0
