"""Plan readiness: ready and complete at the association's end; ready-incomplete after settle_seconds; again when
new objects arrive. Runs the Station in-process to observe its events."""

from __future__ import annotations

import asyncio
from pathlib import Path

from waiting import until
from helpers import PEER_ENV, dcmtk, free_port, station_toml, write_config

from rtstation_tui.engine.config.model import load_config
from rtstation_tui.engine.events import AssociationClosed, BundleChanged, BundleReady
from rtstation_tui.engine.station import Station
from rtstation_tui.synthetic import make_patient


async def send(port: int, files: list[Path]) -> None:
    proc = await asyncio.create_subprocess_exec(
        dcmtk("storescu"), "-aet", "TPS", "-aec", "RTSTATION", "127.0.0.1", str(port), *map(str, files),
        env=PEER_ENV, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()


async def events_matching(events: list, predicate, timeout: float = 20.0) -> list:
    return await until(lambda: [e for e in events if predicate(e)], timeout,
                       what=f"a matching event; got {[type(e).__name__ for e in events]}")


def make_station(tmp_path: Path, settle: float) -> tuple[Station, int]:
    port = free_port()
    text = station_toml(tmp_path / "var", port).replace("settle_seconds = 30", f"settle_seconds = {settle}")
    return Station(load_config(write_config(tmp_path / "rt.toml", text))), port


async def test_complete_synthetic_patient_is_ready_within_a_second_of_association_end(tmp_path):
    patient = make_patient(tmp_path / "p", "READY1", slices=30, label="RDY")
    station, port = make_station(tmp_path, settle=60)
    events: list = []
    station.subscribe(events.extend)
    await station.start()
    try:
        await send(port, patient.files)
        [ready] = await events_matching(events, lambda e: isinstance(e, BundleReady))
        [closed] = [e for e in events if isinstance(e, AssociationClosed)]
        assert ready.plan_uid == patient.plan_uid and ready.complete and ready.reason == "association ended"
        assert ready.at - closed.at < 1.0, f"ready {ready.at - closed.at:.2f} s after the association ended"
    finally:
        await station.stop()


async def test_incomplete_plan_settles_then_completes_when_its_ct_arrives(tmp_path):
    patient = make_patient(tmp_path / "p", "LATE1", slices=5, label="LATE")
    station, port = make_station(tmp_path, settle=1)
    events: list = []
    station.subscribe(events.extend)
    await station.start()
    try:
        await send(port, [f for f in patient.files if f not in patient.ct])
        [waiting] = await events_matching(events, lambda e: isinstance(e, BundleChanged) and e.state == "waiting")
        assert waiting.missing == 5
        [ready] = await events_matching(events, lambda e: isinstance(e, BundleReady))
        assert not ready.complete and ready.reason == "settled" and set(ready.missing) == set(patient.ct_uids)
        events.clear()
        await send(port, patient.ct)
        [again] = await events_matching(events, lambda e: isinstance(e, BundleReady))
        assert again.complete and again.reason == "association ended"
    finally:
        await station.stop()


async def test_restart_does_not_announce_unchanged_bundles_again(tmp_path):
    patient = make_patient(tmp_path / "p", "ONCE1", slices=3, label="ONCE")
    station, port = make_station(tmp_path, settle=60)
    events: list = []
    station.subscribe(events.extend)
    await station.start()
    await send(port, patient.files)
    await events_matching(events, lambda e: isinstance(e, BundleReady))
    await station.stop()

    station2, _ = make_station(tmp_path, settle=60)
    events2: list = []
    station2.subscribe(events2.extend)
    await station2.start()
    try:
        await station2.readiness.step()
        await station2.bus.drain()
        assert not [e for e in events2 if isinstance(e, (BundleReady, BundleChanged))]
    finally:
        await station2.stop()
