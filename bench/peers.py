"""The receivers and the sender the benchmark runs: DCMTK, Orthanc, pynetdicom's app and ``rtstation serve``.

Why a module of its own: every peer must be started the same careful way (loopback, absolute paths because
pynetdicom installs tools of the same names, ``TCP_NODELAY=1`` or DCMTK/Orthanc stall ~40 ms per C-STORE, a
fresh output folder per round, readiness checked by a real C-ECHO, not a sleep) and stopped by its own pid.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

DCMTK = Path("/usr/bin")
ORTHANC = Path("/usr/sbin/Orthanc")
PEER_ENV = {**os.environ, "TCP_NODELAY": "1"}


def tool(path: Path) -> str:
    if not path.exists():
        raise SystemExit(f"bench: {path} is missing: run `make test` once (it installs DCMTK and Orthanc)")
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    """One receiver process: where it listens, what it calls itself, where it writes, how to count its files."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    aet: str
    out: Path
    count: Callable[[], int]
    log: Path
    extra: dict[str, float] = field(default_factory=dict)

    def peak_rss_mb(self) -> float:
        """The kernel's high-water mark of resident memory (VmHWM) for this process."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def cpu_s(self) -> tuple[float, float]:
        """(user, system) CPU seconds this process has used so far (``/proc/<pid>/stat``): load-robust, unlike
        wall time on a shared machine."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan"), float("nan")
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def echo(port: int, aec: str) -> bool:
    cmd = [tool(DCMTK / "echoscu"), "-to", "2", "-ta", "2", "-td", "2", "-aet", "BENCH", "-aec", aec,
           "127.0.0.1", str(port)]
    return subprocess.run(cmd, env=PEER_ENV, capture_output=True, timeout=20).returncode == 0


def _start(name: str, cmd: list[str], out: Path, port: int, aet: str, count: Callable[[], int],
           env: dict[str, str] | None = None, cwd: Path | None = None) -> Running:
    out.mkdir(parents=True, exist_ok=True)
    log = out.parent / f"{out.name}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env or PEER_ENV, cwd=cwd,
                                start_new_session=True)
    running = Running(name, proc, port, aet, out, count, log)
    deadline = time.monotonic() + 60
    while not echo(port, aet):
        if proc.poll() is not None or time.monotonic() > deadline:
            running.stop()
            raise SystemExit(f"bench: {name} did not start (see {log}):\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    return running


def _files(folder: Path, pattern: str = "*") -> Callable[[], int]:
    return lambda: sum(1 for p in folder.rglob(pattern) if p.is_file())


def dcmtk_storescp(out: Path, fork: bool = False) -> Running:
    """DCMTK's storescp; ``fork``: a child process per association (``--fork``), else one association at a time."""
    port = free_port()
    cmd = [tool(DCMTK / "storescp"), "--aetitle", "STORESCP", "--max-pdu", "131072", *(["--fork"] if fork else []),
           "-od", str(out), str(port)]
    return _start("DCMTK storescp", cmd, out, port, "STORESCP", _files(out))


def pynetdicom_storescp(out: Path) -> Running:
    port = free_port()
    cmd = [sys.executable, "-m", "pynetdicom", "storescp", "-aet", "STORESCP", "-ba", "127.0.0.1", "-od", str(out),
           str(port)]
    return _start("pynetdicom storescp", cmd, out, port, "STORESCP", _files(out), env=dict(os.environ))


def orthanc(out: Path) -> Running:
    """Orthanc with a config written here: DICOM only (no HTTP server), no plugins, every store accepted."""
    port = free_port()
    storage = out / "storage"
    config = {
        "Name": "rtstation-bench", "StorageDirectory": str(storage), "IndexDirectory": str(storage),
        "StorageCompression": False, "Plugins": [], "HttpServerEnabled": False, "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "DicomServerEnabled": True, "DicomAet": "ORTHANC", "DicomPort": port,
        "DicomCheckCalledAet": False, "DicomCheckModalityHost": False, "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True, "UnknownSopClassAccepted": True,
        "AcceptedTransferSyntaxes": ["1.2.840.10008.1.*"], "DicomScpTimeout": 30, "OverwriteInstances": True,
        "SaveJobs": False, "ConcurrentJobs": 2, "DicomModalities": {},
    }
    out.mkdir(parents=True, exist_ok=True)
    cfg = out / "orthanc.json"
    cfg.write_text(json.dumps(config, indent=1))
    count = lambda: sum(1 for p in storage.glob("??/??/*") if p.is_file())  # noqa: E731 (attachments only)
    return _start("Orthanc", [tool(ORTHANC), str(cfg)], out, port, "ORTHANC", count, cwd=out)


def rtstation_toml(data_dir: Path, port: int, durability: str, settle: float = 10.0) -> str:
    return (f'[station]\nae_title = "RTSTATION"\nbind = "127.0.0.1"\nport = {port}\ndata_dir = "{data_dir}"\n\n'
            f'[receiver]\ndurability = "{durability}"\nsettle_seconds = {settle}\n\n'
            f'[logging]\nlevel = "INFO"\n')


def rtstation_serve(out: Path, durability: str) -> Running:
    port = free_port()
    data_dir = out / "var"
    out.mkdir(parents=True, exist_ok=True)
    cfg = out / "rtstation.toml"
    cfg.write_text(rtstation_toml(data_dir, port, durability))
    cmd = [sys.executable, "-m", "rtstation_tui", "serve", "--config", str(cfg)]
    return _start(f"rtstation serve ({durability})", cmd, out, port, "RTSTATION", _files(data_dir / "store", "*.dcm"),
                  env=dict(os.environ))


def storescu(port: int, aec: str, files: list[Path], timeout: float = 1800, streams: int = 1) -> float:
    """Seconds for DCMTK storescu to send every file (start to the last exit): one association, or ``streams``
    storescu processes at once, each sending its share of the files over its own association."""
    shares = [files[i::streams] for i in range(streams)]
    cmds = [[tool(DCMTK / "storescu"), "-aet", f"BENCHSCU{i}" if streams > 1 else "BENCHSCU", "-aec", aec,
             "127.0.0.1", str(port), *map(str, share)] for i, share in enumerate(shares) if share]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=PEER_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for cmd in cmds]
    errors = [(p.returncode, err) for p in procs for _, err in [p.communicate(timeout=timeout)] if p.returncode]
    seconds = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"bench: storescu to {aec}:{port} failed ({errors[0][0]}): {errors[0][1][-2000:]}")
    return seconds
