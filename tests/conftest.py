"""Shared fixtures. Peers are real (DCMTK, Orthanc) and a missing one is a failure, never a skip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from helpers import DATA, Serve, free_port, station_toml, wait_for, write_config


@pytest.fixture(scope="session", autouse=True)
def no_user_themes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """An empty $XDG_CONFIG_HOME: a developer's own ~/.config/rtstation/themes never changes what a test sees."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))
        yield


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    """A test that runs the CLI or a console in-process calls ``setup_logging``, which stops the station's loggers
    propagating to the root (where caplog listens) and installs handlers: later tests' caplog then sees nothing.
    Every test leaves the loggers as it found them."""
    import logging

    loggers = [logging.getLogger(name) for name in ("rtstation", "pynetdicom")]
    saved = [(lg, lg.propagate, lg.level, list(lg.handlers), list(lg.filters)) for lg in loggers]
    yield
    for lg, propagate, level, handlers, filters in saved:
        lg.propagate, lg.level = propagate, level
        lg.handlers[:], lg.filters[:] = handlers, filters


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


@pytest.fixture
def config(tmp_path: Path, data_dir: Path, port: int) -> Path:
    return write_config(tmp_path / "rtstation.toml", station_toml(data_dir, port))


@pytest.fixture(params=["fast", "stock"])
def pynetdicom_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once with our fast paths and once with pynetdicom's stock loops (``RTSTATION_STOCK_PYNETDICOM``,
    inherited by every ``rtstation`` process the test starts): the fallback for a pynetdicom upgrade stays tested.
    Ask for it before ``serve`` so the variable is set when the server starts."""
    if request.param == "stock":
        monkeypatch.setenv("RTSTATION_STOCK_PYNETDICOM", "1")
    else:
        monkeypatch.delenv("RTSTATION_STOCK_PYNETDICOM", raising=False)
    return str(request.param)


@pytest.fixture
def serve(config: Path, tmp_path: Path) -> Iterator[Serve]:
    server = Serve(config, tmp_path / "serve.log").start()
    yield server
    server.kill()


class RefSCP:
    """tests/refscp.py in its own process: what a raw receiver got over the wire, per SOP Instance UID."""

    def __init__(self, out: Path, port: int) -> None:
        self.out, self.port = out, port
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "refscp.py"), str(port), str(out)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.proc.stdout is not None
        wait_for(lambda: "REFSCP_READY" in self.proc.stdout.readline(), 30, what="reference SCP")

    def received(self) -> list[dict[str, str]]:
        f = self.out / "received.jsonl"
        return [json.loads(line) for line in f.read_text().splitlines()] if f.exists() else []

    def dataset(self, name: str) -> bytes:
        return (self.out / name).read_bytes()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def refscp(tmp_path: Path) -> Iterator[RefSCP]:
    scp = RefSCP(tmp_path / "ref", free_port())
    yield scp
    scp.stop()


@pytest.fixture
def breast() -> list[Path]:
    return sorted((DATA / "breast_boost").glob("*.dcm"))
