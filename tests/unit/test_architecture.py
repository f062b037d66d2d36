"""The engine never imports Textual (import-linter contract in pyproject.toml), and pynetdicom is the exact version
whose behaviour the receiver relies on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from helpers import ROOT



def test_import_linter_contract_holds():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    proc = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 kept, 0 broken" in proc.stdout


def test_engine_runs_without_textual_installed():
    code = ("import sys; sys.modules['textual'] = None; "
            "import rtstation_tui.engine.station, rtstation_tui.cli.serve; print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "ok", proc.stderr
