"""``contrib/rtstation.service`` is a valid, hardened unit; what ``serve`` writes is never readable by others."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

from helpers import ROOT, BREAST, storescu, wait_for

UNIT = ROOT / "contrib" / "rtstation.service"


def unit_settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_verifies_and_has_the_promised_settings(tmp_path: Path) -> None:
    analyze = Path("/usr/bin/systemd-analyze")
    assert analyze.exists(), "systemd-analyze missing: run `make test` (scripts/install-peers.sh installs systemd)"
    # verify checks that ExecStart exists: point it at this checkout's venv
    rtstation = Path(sys.executable).parent / "rtstation"
    unit = tmp_path / "rtstation.service"
    unit.write_text(UNIT.read_text().replace("/opt/rtstation/bin/rtstation", str(rtstation)))
    proc = subprocess.run([str(analyze), "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    s = unit_settings()
    assert s["User"] == ["rtstation"] and s["UMask"] == ["0027"]
    assert s["ExecStart"] == ["/opt/rtstation/bin/rtstation serve"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"] and s["KillSignal"] == ["SIGTERM"]
    assert s["WorkingDirectory"] == ["/var/lib/rtstation"] and s["ProtectSystem"] == ["strict"]
    assert s["NoNewPrivileges"] == ["yes"] and s["ReadWritePaths"] == ["/var/lib/rtstation"]
    # the control API's socket: AF_UNIX allowed, in the data_dir (the state directory) where consoles look for it
    assert "AF_UNIX" in s["RestrictAddressFamilies"][0].split() and s["StateDirectory"] == ["rtstation"]


def test_nothing_serve_writes_is_readable_by_other_users(serve, port, data_dir) -> None:
    storescu(port, BREAST, extra=["-xi"])
    wait_for(lambda: len(list((data_dir / "store").rglob("*.dcm"))) == 4, what="stored")
    wait_for(lambda: list((data_dir / "logs").glob("audit-*.jsonl")), what="audit log")
    exposed = [p for p in data_dir.rglob("*") if p.stat().st_mode & (stat.S_IRWXO)]
    assert not exposed, f"readable by others: {exposed[:5]}"
