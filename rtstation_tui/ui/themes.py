"""Console themes as files: ``themes/<name>.toml`` at the top of the project, chosen by ``[ui] theme`` or
``--theme``. Why files: a site can add its own palette (projector room, colour-blind operator) without touching
code; ``[ui] theme`` may also be a path to such a file.
"""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path

from textual.theme import Theme

THEMES_DIR = Path(__file__).resolve().parents[2] / "themes"
_FIELDS = {f.name for f in fields(Theme)}


class ThemeError(ValueError):
    """A theme that does not exist or does not parse; the message names the file and what is allowed."""


def available_themes(directory: Path = THEMES_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.toml"))


def theme_path(name: str, directory: Path = THEMES_DIR) -> Path:
    candidate = Path(name)
    if candidate.suffix == ".toml":
        return candidate
    return directory / f"{name}.toml"


def load_theme(name: str, directory: Path = THEMES_DIR) -> Theme:
    """The Textual Theme for ``name`` (a file stem in ``directory`` or a path to a .toml file)."""
    path = theme_path(name, directory)
    if not path.is_file():
        allowed = ", ".join(available_themes(directory)) or f"none found in {directory}"
        raise ThemeError(f"[ui] theme: {name!r} is not a theme: allowed {allowed} (or a path to a .toml file)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ThemeError(f"{path}: cannot read theme: {exc}") from None
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ThemeError(f"{path}: unknown theme keys {', '.join(unknown)}; allowed: {', '.join(sorted(_FIELDS))}")
    data.setdefault("name", path.stem)
    if "primary" not in data:
        raise ThemeError(f"{path}: primary is required")
    return Theme(**data)
