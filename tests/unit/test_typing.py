"""The console's interface to the station is type-checked: ``Station`` and the test doubles implement
``engine/api.py: StationAPI`` and the ui modules that take it use only what it declares.

Why a test: a Protocol nobody checks drifts — a double that lacks a method, or a screen that reaches past the
interface, would only show once a remote station ([ATTACH]) stands behind it. The checked set is kept small so it
passes cleanly; the mixins typed as ``StationApp`` (ui/actions.py, ui/editing.py, the editor screens) are left out
until the command registry replaces them.
"""

from __future__ import annotations

import subprocess
import sys

from helpers import ROOT

CHECKED = [  # the in-process Station and the attached console's RemoteStation both implement StationAPI
    "rtstation_tui/engine/api.py",
    "rtstation_tui/engine/plans/queries.py",
    "rtstation_tui/engine/plans/selection.py",
    "rtstation_tui/engine/outbound/dryrun.py",
    "rtstation_tui/engine/station.py",
    "rtstation_tui/engine/service/remote.py",
    "rtstation_tui/engine/service/jsonable.py",
    "tests/tui_support.py",
    "rtstation_tui/ui/screens/main.py",
    "rtstation_tui/ui/widgets/details.py",
    "rtstation_tui/ui/widgets/plantree.py",
    "rtstation_tui/ui/dialogs/send.py",
    "rtstation_tui/ui/labels.py",
    "rtstation_tui/ui/screens/remote.py",
    "rtstation_tui/engine/qr/pull.py",
    "rtstation_tui/engine/metrics/views.py",
    "rtstation_tui/ui/screens/metrics.py",
    "rtstation_tui/ui/widgets/dvhplot.py",
    "rtstation_tui/engine/outbound/deletion.py",  # [CONSOLE] delete: the preview crosses the API as frozen data
    "rtstation_tui/engine/outbound/autodelete.py",
    "rtstation_tui/engine/store/removal.py",
    "rtstation_tui/ui/dialogs/delete.py",
]


def test_station_and_doubles_implement_the_console_interface(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy"), *CHECKED],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"no issues found in {len(CHECKED)} source files" in proc.stdout
