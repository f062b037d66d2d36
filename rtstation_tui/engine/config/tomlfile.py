"""Editing the config file from the console: comments, key order and formatting the user wrote are kept.

tomlkit keeps a value's own comment when the value changes. What it does not do for us: comments and blank lines
*above* a table header are stored at the end of the previous table, so adding, deleting or moving ``[[nodes]]`` /
``[[rules]]`` entries, or adding a key to a table, must carry that trailing decoration along ("trailer" below), or a
comment would end up above the wrong entry or vanish. Every save validates the new text with the normal loader,
writes atomically and keeps the previous file as ``<name>.bak``.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import AoT, Comment, Table, Whitespace

from .model import Config, parse_config

TrailItem = tuple[Any, Any]
_OWN_LINE = re.compile(r"[ \t]|#\s*[A-Za-z0-9_.\"-]+\s*=")  # a continued comment, or a commented-out key


def _trailer_start(table: Table) -> int:
    """Where the lines that belong to the *next* table begin, after the entry's own last lines.

    Comment lines right after the last key, with no blank line between, are the entry's own: a key's continued
    comment (``when_incomplete = "hold"   # ...`` and its indented next line) or commented-out keys. From the
    first blank line on, comments sit above the next table. Comments with no blank line anywhere touch the next
    header: continuations (indented) and commented-out keys (``# tag = "x"``) stay with the entry, prose from the
    first other line on is the next table's."""
    body = table.value.body
    start = max((i for i, (k, _) in enumerate(body) if k is not None), default=-1) + 1
    own = start
    while own < len(body) and isinstance(body[own][1], Comment):
        own += 1
    if own < len(body):  # a blank line ends the entry's own comments
        return own
    while start < len(body) and _OWN_LINE.match(body[start][1].as_string()):
        start += 1
    return start


def pop_trailer(table: Table) -> list[TrailItem]:
    """Remove and return the blank lines and comments after the table's own last lines (they sit above the next
    table)."""
    body = table.value.body
    start = _trailer_start(table)
    trailer = body[start:]
    del body[start:]
    return trailer


def push_trailer(table: Table, trailer: list[TrailItem]) -> None:
    table.value.body.extend(trailer)


class ConfigFile:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.original = self.path.read_text(encoding="utf-8")
        self.doc = tomlkit.parse(self.original)

    # -- plain keys ------------------------------------------------------------------------------------------
    def set(self, section: str, key: str, value: Any) -> None:
        """Set ``[section] key``; a new key goes after the table's existing keys, above the next table's comments."""
        if section not in self.doc:
            table = tomlkit.table()
            table.add(key, value)
            self.doc.add(tomlkit.nl())
            self.doc.add(section, table)
            return
        table = self.doc[section]
        if key in table:
            table[key] = value
            return
        trailer = pop_trailer(table)
        table.add(key, value)
        push_trailer(table, trailer)

    def unset(self, section: str, key: str) -> None:
        if section in self.doc and key in self.doc[section]:
            del self.doc[section][key]

    # -- arrays of tables ([[nodes]], [[rules]]) --------------------------------------------------------------
    def entries(self, array: str) -> list[Table]:
        aot = self.doc.get(array)
        return list(aot) if isinstance(aot, AoT) else []

    def index_of(self, array: str, name: str) -> int:
        for i, t in enumerate(self.entries(array)):
            if t.get("name") == name:
                return i
        raise KeyError(f"no entry named {name!r} in [[{array}]]")

    def update_entry(self, array: str, name: str, values: dict[str, Any]) -> None:
        """Change the given keys of one entry; ``None`` removes a key. Untouched keys and comments stay."""
        table = self.entries(array)[self.index_of(array, name)]
        for key, value in values.items():
            if value is None:
                if key in table:
                    del table[key]
            elif key in table:
                if table[key] != value:
                    table[key] = value
            else:
                trailer = pop_trailer(table)
                table.add(key, value)
                push_trailer(table, trailer)

    def add_entry(self, array: str, values: dict[str, Any]) -> None:
        """Append an entry after the last one of its array (or at the end of the file for the first one)."""
        new = tomlkit.table()
        for key, value in values.items():
            if value is not None:
                new.add(key, value)
        aot = self.doc.get(array)
        if not isinstance(aot, AoT) or len(aot) == 0:
            self.doc.add(tomlkit.nl())
            self.doc.add(array, tomlkit.aot())
            self.doc[array].append(new)
            return
        last = aot[-1]
        trailer = pop_trailer(last)
        last.value.body.append((None, Whitespace("\n")))
        aot.append(new)
        push_trailer(new, trailer)

    def delete_entry(self, array: str, name: str) -> None:
        """Delete one entry. The gap above it goes; comments below it (above the next table) stay where they were.

        The first entry has no entry above it to carry those comments: they go to the end of whatever precedes
        the array. The last entry of an array takes the array with it (tomlkit would otherwise write an empty
        ``nodes = []`` at the top of the file)."""
        aot = self.doc[array]
        i = self.index_of(array, name)
        trailer = pop_trailer(aot[i])
        if i > 0:
            pop_trailer(aot[i - 1])  # the gap above the deleted entry goes; the one below it stays
            push_trailer(aot[i - 1], trailer)
        elif len(aot) == 1 or any(isinstance(item, Comment) for _, item in trailer):
            before = self._before(array)
            if before is not None:
                push_trailer(before, trailer)
        if len(aot) == 1:
            del self.doc[array]
        else:
            del aot[i]

    def _before(self, array: str) -> Table | None:
        """The table whose trailing lines sit right above ``array`` in the file (None: the array comes first)."""
        prev: Any = None
        for key, item in self.doc.body:
            if key is not None and str(key) == array:
                break
            if isinstance(item, Table):
                prev = item
            elif isinstance(item, AoT) and len(item):
                prev = item[-1]
        return prev

    def move_entry(self, array: str, name: str, delta: int) -> None:
        """Move an entry up (-1) or down (+1). Comments inside entries move with them; the gaps stay in place."""
        aot = self.doc[array]
        i = self.index_of(array, name)
        j = i + delta
        if not 0 <= j < len(aot):
            return
        ti, tj = pop_trailer(aot[i]), pop_trailer(aot[j])
        body = aot.body
        body[i], body[j] = body[j], body[i]
        push_trailer(aot[i], ti)
        push_trailer(aot[j], tj)

    # -- saving ----------------------------------------------------------------------------------------------
    def text(self) -> str:
        return tomlkit.dumps(self.doc)

    def validate(self) -> Config:
        """The new text through the normal loader: a bad edit raises ConfigError naming the key."""
        return parse_config(tomlkit.parse(self.text()).unwrap(), str(self.path))

    def save(self) -> Config:
        config = self.validate()
        text = self.text()
        backup = self.path.with_name(self.path.name + ".bak")
        shutil.copy2(self.path, backup)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        shutil.copymode(self.path, tmp)
        os.replace(tmp, self.path)
        self.original = text
        return config
