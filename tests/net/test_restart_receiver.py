"""A new port or AE title restarts the listener in place: the station keeps running, the old port is closed."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from helpers import echoscu, free_port, station_toml, write_config

from rtstation_tui.engine.config.model import load_config
from rtstation_tui.engine.station import Station


def test_restart_receiver_moves_the_listener_to_the_new_port_and_ae_title(tmp_path: Path, port: int) -> None:
    config = load_config(write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", port)))
    new_port = free_port()
    new = replace(config, station=replace(config.station, port=new_port, ae_title="RTNEW"))

    async def run() -> list[str]:
        station = Station(config)
        await station.start()
        try:
            assert (await asyncio.to_thread(echoscu, port)).returncode == 0
            changed = await station.restart_receiver(new)
            assert station.receiver is not None and station.receiver.address == f"127.0.0.1:{new_port}"
            assert station.receiver_state == "listening" and station.config.station.port == new_port
            assert (await asyncio.to_thread(echoscu, new_port, aec="RTNEW")).returncode == 0
            assert (await asyncio.to_thread(echoscu, port)).returncode != 0
            return changed
        finally:
            await station.stop()

    assert set(asyncio.run(run())) >= {"station.port", "station.ae_title"}
