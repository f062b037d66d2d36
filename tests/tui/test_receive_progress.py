"""[CONSOLE] per-association receive progress: a patient being received shows ``receiving N objects…`` in the tree,
live while the association is open (the count follows what arrived), and settles when it ends; a patient not yet
in the tree appears while it is received. Both for the console that runs the station and for one attached to
``rtstation serve`` (the events come through the API's event stream).

The sending TPS is a pynetdicom SCU the test drives step by step, so the association stays open between steps: no
sleeps, the screen is read while the transfer is half done."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE
from pynetdicom.presentation import build_context

from helpers import Serve, free_port, station_toml, write_config
from tui_support import make_app, screen_text, until

from rtstation_tui.engine.config.model import load_config
from rtstation_tui.engine.service.remote import attach
from rtstation_tui.synthetic import make_patient
from rtstation_tui.ui.app import StationApp


class Tps:
    """One association to the station, kept open between ``send`` calls (each call runs in a worker thread)."""

    def __init__(self, port: int, files: list[Path]) -> None:
        ae = AE(ae_title="TPS1")
        pairs = {(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID))
                 for ds in (pydicom.dcmread(f, stop_before_pixels=True) for f in files)}
        ae.requested_contexts = [build_context(cls, ts) for cls, ts in sorted(pairs)]
        self.assoc = ae.associate("127.0.0.1", port, ae_title="RTSTATION")
        assert self.assoc.is_established

    def send(self, files: list[Path]) -> None:
        for f in files:
            status = self.assoc.send_c_store(pydicom.dcmread(f))
            assert status and status.Status == 0

    def release(self) -> None:
        self.assoc.release()


def patient_files(tmp_path: Path) -> list[Path]:
    make_patient(tmp_path / "tps", "LIVE01", name="LIVE^PATIENT", slices=5, label="LIVE", with_dose=False)
    files = sorted((tmp_path / "tps").rglob("*.dcm"))
    return sorted(files, key=lambda f: ("CT" not in f.parts, f.name))  # images first, as a TPS sends


def row(app: StationApp) -> str:
    node = app.main.tree.patient_node("LIVE01")
    return str(node.label) if node is not None else ""


async def receive_and_watch(app: StationApp, pilot, port: int, files: list[Path]) -> None:
    assert not row(app)  # not in the tree before it is received
    tps = await asyncio.to_thread(Tps, port, files)
    try:
        await asyncio.to_thread(tps.send, files[:3])
        await until(pilot, lambda: "receiving 3 objects…" in row(app), 10, what="the patient appears, receiving")
        assert "receiving 3 objects…" in screen_text(app)  # on screen, at 80 columns
        await asyncio.to_thread(tps.send, files[3:])
        await until(pilot, lambda: f"receiving {len(files)} objects…" in row(app), 10, what="the count follows")
    finally:
        await asyncio.to_thread(tps.release)
    # the receiving tag goes when the association ends; the plan count follows once the index has grouped the bundle
    await until(pilot, lambda: "objects…" not in row(app) and "1 plan" in row(app), 10,
                what="settled when the association ends, with its plan counted")


async def test_the_console_running_the_station_shows_receive_progress(tmp_path: Path) -> None:
    files = patient_files(tmp_path)
    port = free_port()
    config = load_config(write_config(tmp_path / "rtstation.toml", station_toml(tmp_path / "var", port)))
    app = make_app(config, listen=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "listening" in screen_text(app) and app.main.ready, 15, what="receiver up")
        await receive_and_watch(app, pilot, port, files)


async def test_an_attached_console_shows_receive_progress_from_the_event_stream(tmp_path: Path) -> None:
    files = patient_files(tmp_path)
    port = free_port()
    path = write_config(tmp_path / "rtstation.toml", station_toml(tmp_path / "var", port))
    serve = Serve(path, tmp_path / "serve.log").start()
    try:
        remote = attach(load_config(path))
        assert remote is not None, "no station answers on the socket"
        app = StationApp(remote.config, station=remote)
        app.animation_level = "none"
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: "listening" in screen_text(app) and app.main.ready, 20, what="attached")
            await receive_and_watch(app, pilot, port, files)
    finally:
        serve.stop()
