"""Test helpers: real peers (DCMTK by absolute path, Orthanc), a serving rtstation process, polling with deadlines."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from waiting import wait_for  # noqa: F401  (re-exported: most tests import it from here)

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data"
DCMTK = Path("/usr/bin")
BREAST = [str(p) for p in sorted((DATA / "breast_boost").glob("*.dcm"))]
PEER_ENV = {**os.environ, "TCP_NODELAY": "1"}  # DCMTK/Orthanc stall 40 ms per C-STORE without it


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_BELOW_EPHEMERAL = max(20001, min(_ephemeral_low(), 65536) - 1)  # the highest port free_port() picks
_PORTS = random.Random(os.getpid())
_GIVEN: set[int] = set()  # never the same port twice in one run: two free_port() calls before either binds


def free_port() -> int:
    """A port nothing listens on, below the kernel's ephemeral range: a port the kernel handed out (bind to 0) can be
    given again as the local port of any outgoing connection before the peer we start binds it ("Address already
    in use", the peer never comes up); ports below the range are only ever taken by an explicit bind."""
    for _ in range(200):
        port = _PORTS.randint(20000, _BELOW_EPHEMERAL)
        if port in _GIVEN:
            continue
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
    with socket.socket() as s:  # a crowded range: the kernel's choice, as before
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dcmtk(tool: str) -> str:
    path = DCMTK / tool
    if not path.exists():
        raise AssertionError(f"DCMTK {tool} missing at {path}: run `make test` (it installs the peers)")
    return str(path)


def storescu(port: int, files: Iterable[Path | str], *, aet: str = "ECLIPSE", aec: str = "RTSTATION",
             extra: Sequence[str] = (), check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """One association carrying every file, sent by DCMTK's storescu."""
    cmd = [dcmtk("storescu"), "-aet", aet, "-aec", aec, *extra, "127.0.0.1", str(port), *map(str, files)]
    proc = subprocess.run(cmd, env=PEER_ENV, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"storescu failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc


def echoscu(port: int, *, aet: str = "ECHOSCU", aec: str = "RTSTATION", timeout: float = 30) -> subprocess.CompletedProcess[str]:
    cmd = [dcmtk("echoscu"), "-to", "5", "-ta", "5", "-td", "5", "-aet", aet, "-aec", aec, "127.0.0.1", str(port)]
    return subprocess.run(cmd, env=PEER_ENV, capture_output=True, text=True, timeout=timeout)


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def station_toml(data_dir: Path, port: int, *, extra: str = "", receiver: str = "", ae: str = "RTSTATION",
                 metrics: bool = False) -> str:
    """A station on loopback. Plan metrics are off unless asked for: their worker process would compute DVHs of
    every ready plan in every test (CPU the shared machine lacks) and log at times no snapshot can pin."""
    return (f'[station]\nae_title = "{ae}"\nbind = "127.0.0.1"\nport = {port}\ndata_dir = "{data_dir}"\n\n'
            f'[receiver]\nsettle_seconds = 30\nmin_free_mb = 0\ndurability = "os"\n{receiver}\n\n'
            f'[metrics]\nenabled = {str(metrics).lower()}\n\n{extra}\n')


def rtstation(*args: str, config: Path | None = None, timeout: float = 120, check: bool = True,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "rtstation_tui", *args]
    if config is not None:
        cmd += ["--config", str(config)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"rtstation {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def show_json(config: Path) -> list[dict[str, Any]]:
    return json.loads(rtstation("show", "--json", config=config).stdout)


class Serve:
    """``rtstation serve`` as a real process; its stdout goes to ``log`` so tests can read what operators see."""

    def __init__(self, config: Path, log: Path, *, command: Sequence[str] = (sys.executable, "-m", "rtstation_tui"),
                 cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
        """``command``: how to run rtstation (default: this checkout; an installed ``rtstation`` script works too)."""
        self.config, self.log = config, log
        self.command, self.cwd, self.env = list(command), cwd, env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready: str = "serving") -> Serve:
        fh = open(self.log, "ab")
        self.proc = subprocess.Popen([*self.command, "serve", "--config", str(self.config)], cwd=self.cwd,
                                     env=self.env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        fh.close()
        wait_for(lambda: ready in self.text() or self.proc.poll() is not None, 30, what="rtstation serve to start")
        if self.proc.poll() is not None:
            raise AssertionError(f"serve exited ({self.proc.returncode}):\n{self.text()}")
        return self

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"serve did not stop within {timeout} s after signal {sig}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def dataset_bytes(path: Path) -> bytes:
    from rtstation_tui.engine.dicom.header import dataset_offset

    data = Path(path).read_bytes()
    return data[dataset_offset(path):]


def stored_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "store").rglob("*.dcm"))


def zip_with_unreadable_member(path: Path, members: dict[str, bytes], bad: str, kind: str) -> Path:
    """A ZIP whose member ``bad`` cannot be extracted: ``kind`` "encrypted" (the encryption flag set, as a
    password-protected export has it) or "method" (compression method 99, WinZip AES, which Python lacks). The
    other members are stored plainly. Written with zipfile, then the two header fields patched in place."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr(bad, b"\0" * 64)
        info = zf.getinfo(bad)
    data = bytearray(path.read_bytes())
    local = info.header_offset
    central = data.rindex(b"PK\x01\x02")  # the central directory entry of the last member written: ``bad``
    assert data[local:local + 4] == b"PK\x03\x04"
    if kind == "encrypted":
        data[local + 6] |= 0x01
        data[central + 8] |= 0x01
    else:
        data[local + 8:local + 10] = (99).to_bytes(2, "little")
        data[central + 10:central + 12] = (99).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    return path
