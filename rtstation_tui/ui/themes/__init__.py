"""Console themes as files. The built-in ones (``dark``, ``light``, ``high-contrast``) are package data beside this
module and are read with ``importlib.resources``, so a plain ``pip install`` (no checkout) has them. A site adds
its own, or replaces a built-in one, in a user themes directory, as posting does: ``[ui] themes_dir``, else
``$XDG_CONFIG_HOME/rtstation/themes`` (``~/.config/rtstation/themes``). ``[ui] theme`` or ``--theme`` names a theme
from either place, or is a path to a ``.toml`` file.

Why files: a projector room or a colour-blind operator gets a palette without touching code. Why a user file of a
built-in's name wins: a site tunes ``dark`` without renaming it in every config; the console logs that it did.
A theme file is checked here, key by key, so a typo names the file and the key instead of failing inside Textual.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Mapping

from textual.color import Color, ColorParseError
from textual.theme import Theme

_KEYS = sorted(f.name for f in fields(Theme))
_COLOURS = ("primary", "secondary", "warning", "error", "success", "accent", "foreground", "background", "surface",
            "panel", "boost")
_FLAGS = ("dark", "ansi")
_FRACTIONS = ("luminosity_spread", "text_alpha")


class ThemeError(ValueError):
    """A theme that does not exist or does not parse; the message names the file, the key and what is allowed."""


@dataclass(frozen=True)
class ThemeFile:
    """One theme file: built-in (package data) or the user's."""

    name: str
    file: Traversable
    builtin: bool

    @property
    def where(self) -> str:
        return f"built-in theme {self.file}" if self.builtin else str(self.file)


def user_themes_dir(configured: Path | None = None) -> Path:
    """``[ui] themes_dir`` if set, else the XDG config directory (a relative $XDG_CONFIG_HOME is ignored, as the
    XDG spec says)."""
    if configured is not None:
        return configured
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".config"
    return root / "rtstation" / "themes"


def builtin_theme_files() -> dict[str, ThemeFile]:
    root = resources.files(__name__)
    return {entry.name.removesuffix(".toml"): ThemeFile(entry.name.removesuffix(".toml"), entry, True)
            for entry in root.iterdir() if entry.name.endswith(".toml") and entry.is_file()}


def user_theme_files(directory: Path) -> dict[str, ThemeFile]:
    """The ``*.toml`` files in ``directory``; none when it does not exist (the default one usually does not)."""
    if not directory.is_dir():
        return {}
    try:
        paths = sorted(p for p in directory.iterdir() if p.suffix == ".toml" and p.is_file())
    except OSError as exc:
        raise ThemeError(f"{directory}: cannot read the user themes directory: {exc.strerror}") from None
    return {p.stem: ThemeFile(p.stem, p, False) for p in paths}


@dataclass(frozen=True)
class ThemeCatalog:
    """Every theme the console can offer: built-ins, with user files of the same name in their place."""

    files: Mapping[str, ThemeFile]
    user_dir: Path
    overrides: tuple[ThemeFile, ...] = ()  # user files that replace a built-in theme (the console logs them)

    @classmethod
    def scan(cls, user_dir: Path | None = None) -> ThemeCatalog:
        directory = user_themes_dir(user_dir)
        builtin, user = builtin_theme_files(), user_theme_files(directory)
        overrides = tuple(user[name] for name in sorted(set(builtin) & set(user)))
        return cls({**builtin, **user}, directory, overrides)

    def names(self) -> list[str]:
        return sorted(self.files)

    def load(self, name: str) -> Theme:
        """The Textual Theme for ``name``: a catalog name, or a path to a ``.toml`` file."""
        if name.endswith(".toml"):
            path = Path(name).expanduser()
            if not path.is_file():
                raise ThemeError(f"[ui] theme: {name}: no such theme file")
            return read_theme(ThemeFile(path.stem, path, False))
        entry = self.files.get(name)
        if entry is None:
            missing = "" if self.user_dir.is_dir() else ", which does not exist"
            raise ThemeError(f"[ui] theme: {name!r} is not a theme: allowed {', '.join(self.names())} (or a path to "
                             f"a .toml file); user themes are read from {self.user_dir}{missing}")
        return read_theme(entry)

    def load_all(self) -> tuple[list[Theme], list[str]]:
        """Every theme that loads, and the problem of each that does not (for the log: one bad file must not keep
        the console from starting with another theme)."""
        themes, problems = [], []
        for name in self.names():
            try:
                themes.append(read_theme(self.files[name]))
            except ThemeError as exc:
                problems.append(str(exc))
        return themes, problems


def read_theme(entry: ThemeFile) -> Theme:
    try:
        text = entry.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ThemeError(f"{entry.where}: cannot read theme: {exc}") from None
    return parse_theme(entry.name, text, entry.where)


def parse_theme(name: str, text: str, where: str) -> Theme:
    """Check every key of one theme file; ``where`` (the file) starts every message."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ThemeError(f"{where}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise ThemeError(f"{where}: unknown theme keys {', '.join(unknown)}; allowed: {', '.join(_KEYS)}")
    if data.setdefault("name", name) != name:
        raise ThemeError(f"{where}: name = {data['name']!r}: must be the file's name {name!r} (or left out)")
    if "primary" not in data:
        raise ThemeError(f"{where}: primary is required (a colour such as \"#4F9FE6\")")
    for key, value in data.items():
        problem = _value_problem(key, value)
        if problem:
            raise ThemeError(f"{where}: {key} = {value!r}: {problem}")
    return Theme(**data)


def _value_problem(key: str, value: Any) -> str | None:
    if key in _COLOURS:
        if not isinstance(value, str):
            return "expected a colour as a string, such as \"#4F9FE6\""
        try:
            Color.parse(value)
        except ColorParseError:
            return "not a colour; use \"#RRGGBB\", \"rgb(r, g, b)\", \"hsl(h, s%, l%)\" or a name such as \"red\""
        return None
    if key in _FLAGS:
        return None if isinstance(value, bool) else "use true or false"
    if key in _FRACTIONS:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1
        return None if ok else "expected a number from 0 to 1"
    if key == "variables":
        ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
        return None if ok else "expected a table of Textual CSS variables with string values"
    return None


def available_themes(user_dir: Path | None = None) -> list[str]:
    return ThemeCatalog.scan(user_dir).names()


def load_theme(name: str, user_dir: Path | None = None) -> Theme:
    """The Textual Theme for ``name`` (a built-in or user theme name, or a path to a .toml file)."""
    return ThemeCatalog.scan(user_dir).load(name)
