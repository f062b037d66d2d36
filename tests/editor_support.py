"""Shared pieces of the editor tests: the commented sample config in a temp dir, opening screens, filling forms."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path
from typing import Any

from tui_support import until

from rtstation_tui.ui.widgets.form import Form

SAMPLE = Path(__file__).parent.parent / "sample_config" / "rtstation.toml"


def copy_sample(tmp_path: Path) -> Path:
    """The reference config as shipped (its data_dir ./var lands in tmp_path: the tests chdir there)."""
    return Path(shutil.copy(SAMPLE, tmp_path / "rtstation.toml"))


def changes(before: str, after: str) -> tuple[list[str], list[str]]:
    """Lines removed and added, as a reviewer reading the diff would see them."""
    removed, added = [], []
    for line in difflib.ndiff(before.splitlines(), after.splitlines()):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


async def fill(pilot: Any, form: Form, key: str, value: Any) -> None:
    """Put ``value`` into a field as typing would (the field's Changed message runs its checks)."""
    form.set_raw(key, value)
    await pilot.pause()


async def open_form(pilot: Any, keys: tuple[str, ...], form_type: type) -> Any:
    await pilot.press(*keys)
    return await until(pilot, lambda: isinstance(pilot.app.screen, form_type) and pilot.app.screen, what=form_type)


async def saved(pilot: Any, path: Path, before: str) -> str:
    """Wait until the file differs from ``before`` (saves run in a thread) and return its text."""
    return await until(pilot, lambda: (t := path.read_text()) != before and t, what="the file saved")
