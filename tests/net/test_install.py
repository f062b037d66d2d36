"""[ARCH] 12, done when: a plain (non-editable) ``pip install`` into a fresh venv outside the checkout works on its
own: ``rtstation --help``, ``rtstation synth``, ``rtstation serve`` receiving from DCMTK storescu, and the console
under tmux with ``--theme light``. Before, the themes were found beside the checkout, so such an install had no theme
and the console exited 2: whatever the app reads at run time must be package data.

Offline: the venv has no pip and no dependencies of its own; a ``.pth`` file lends it this test venv's
site-packages (plain sys.path entries: the editable install's finder there is not activated), and the package is
built without build isolation. The test asserts that ``rtstation_tui`` then comes from the venv, not the checkout.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import ROOT, Serve, free_port, station_toml, stored_files, storescu, wait_for, write_config
from tmux_session import Tmux, recording_exit, tmux  # noqa: F401  (tmux is a fixture)

# what a clone has that the build does not need (and the test data is large)
NOT_COPIED = {".git", ".venv", "var", "build", "tests", "bench", "docs", ".pytest_cache"}
LIGHT_BACKGROUND = "48;2;244;244;240"  # light.toml: background = "#F4F4F0", as tmux reports the cell colour
DARK_BACKGROUND = "48;2;18;20;24"  # dark.toml: background = "#121418"


@dataclass(frozen=True)
class Installed:
    venv: Path
    cwd: Path  # outside the checkout: nothing may be found relative to the working directory
    env: dict[str, str]

    @property
    def rtstation(self) -> str:
        return str(self.venv / "bin" / "rtstation")

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.rtstation, *args], cwd=self.cwd, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        assert proc.returncode == 0, f"rtstation {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        return proc


def copy_clone(dest: Path) -> Path:
    """The checkout's working tree (uncommitted changes included), minus what the build never reads: building in a
    copy keeps ``build/`` and ``*.egg-info`` out of the checkout."""
    def ignore(folder: str, names: list[str]) -> set[str]:
        top = NOT_COPIED if Path(folder) == ROOT else set()
        return {n for n in names if n in top or n == "__pycache__" or n.endswith(".egg-info")}

    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_NO_CACHE_DIR="1", TCP_NODELAY="1")
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("install")
    assert not work.resolve().is_relative_to(ROOT.resolve()), "the venv must be outside the checkout"
    venv, cwd = work / "venv", work / "run"
    cwd.mkdir()
    env = clean_env(work / "home")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True, env=env).stdout.strip())
    lent = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site / "lent-dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(lent)))
    src = copy_clone(work / "clone")
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-index",
                           "--ignore-installed", "--no-build-isolation", str(src)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"pip install failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    shutil.rmtree(src)  # nothing may be read from the tree it was built from either
    return Installed(venv, cwd, env)


def test_the_installed_copy_is_imported_and_has_its_themes(installed: Installed) -> None:
    code = ("import rtstation_tui, rtstation_tui.ui.themes as t; print(rtstation_tui.__file__); "
            "print(' '.join(t.available_themes()))")
    proc = subprocess.run([str(installed.venv / "bin" / "python"), "-c", code], cwd=installed.cwd,
                          env=installed.env, capture_output=True, text=True, check=True, timeout=60)
    where, themes = proc.stdout.splitlines()
    assert Path(where).is_relative_to(installed.venv), f"rtstation_tui imported from {where}, not the venv"
    assert themes.split() == ["dark", "high-contrast", "light"]


def test_help_and_synth_work_from_the_installed_script(installed: Installed) -> None:
    out = installed.run("--help").stdout
    assert "serve" in out and "synth" in out
    installed.run("synth", "synthetic", "--slices", "3", "--size", "16", "--seed", "install")
    files = sorted((installed.cwd / "synthetic" / "SYN001").rglob("*.dcm"))
    assert len(files) == 6  # 3 CT, RTSTRUCT, RTPLAN, RTDOSE


def test_serve_receives_from_storescu(installed: Installed, tmp_path: Path) -> None:
    installed.run("synth", "incoming", "--slices", "2", "--size", "16", "--seed", "serve")
    files = sorted((installed.cwd / "incoming").rglob("*.dcm"))
    port, data_dir = free_port(), tmp_path / "var"
    config = write_config(tmp_path / "rtstation.toml", station_toml(data_dir, port))
    server = Serve(config, tmp_path / "serve.log", command=[installed.rtstation], cwd=installed.cwd,
                   env=installed.env).start()
    try:
        storescu(port, files)
        wait_for(lambda: len(stored_files(data_dir)) == len(files), 20,
                 what=f"{len(files)} stored files; serve said:\n{server.text()}")
        assert server.stop(signal.SIGTERM) == 0
    finally:
        server.kill()


def test_console_under_tmux_with_the_light_theme(installed: Installed, tmux: Tmux,  # noqa: F811
                                                 tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path / "rtstation.toml", station_toml(tmp_path / "var", port))
    env = {"TERM": "xterm-256color", "COLORTERM": "truecolor", "TEXTUAL_ANIMATIONS": "none",
           "HOME": installed.env["HOME"], "XDG_CONFIG_HOME": installed.env["XDG_CONFIG_HOME"]}
    status = tmp_path / "exit-status"
    tmux.start(recording_exit(status, [installed.rtstation, "--config", str(config), "--theme", "light"]), env,
               cwd=installed.cwd)
    header = f"rtstation  RTSTATION  127.0.0.1:{port}"
    wait_for(lambda: (header in tmux.screen() and "listening" in tmux.screen()) or status.exists(), 30,
             what=f"the console's header; screen:\n{tmux.screen()}")
    assert not status.exists(), f"the console exited at start (status {status.read_text()!r}): no theme?"
    coloured = tmux.run("capture-pane", "-p", "-e", "-t", "rt")
    assert LIGHT_BACKGROUND in coloured and DARK_BACKGROUND not in coloured, "the light theme is not what shows"
    log = tmp_path / "var" / "logs" / "rtstation.log"
    tmux.keys("q")  # the console runs the station: it asks whether to leave it running headless or stop it
    wait_for(lambda: "Stop station (s)" in tmux.screen(), 20, what="the quit question")
    tmux.keys("s")
    try:
        code = wait_for(lambda: status.exists() and status.read_text(), 20, what="the console to quit after q")
    except AssertionError as exc:  # the screen and log as they are now, not as they were when q was pressed
        raise AssertionError(f"{exc}; screen:\n{tmux.screen()}\nlog:\n{log.read_text()[-3000:]}") from None
    assert code == "0", f"the console exited {code}"
    assert "receiver stopped" in log.read_text()
