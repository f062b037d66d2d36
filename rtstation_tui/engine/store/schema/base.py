"""The machinery of versioned schemas: ``PRAGMA user_version`` plus an ordered list of migrations per database.

Why ``user_version``: it lives in the database header, costs nothing to read, and changes inside the same
transaction as the migration's DDL — so a database is either wholly at the old version or wholly at the new one.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

log = logging.getLogger("rtstation.schema")


class SchemaError(RuntimeError):
    """A database this code must not open or could not upgrade; the message names the file and the versions."""


@dataclass(frozen=True)
class Migration:
    """One step from version ``version - 1`` to ``version``: SQL statements, then an optional Python step.

    ``sql``: a script, one or more statements, each ending with ``;`` at the end of a line. ``python``: for what
    SQL cannot say (copying data between shapes, a condition on the legacy file); it gets the connection inside the
    migration's transaction and must not commit."""

    version: int
    description: str
    sql: str = ""
    python: Callable[[sqlite3.Connection], None] | None = None
    statements: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "statements", split_statements(self.sql))


def split_statements(script: str) -> tuple[str, ...]:
    """Statements one by one: ``executescript`` would COMMIT first and break the one-transaction promise."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        raise ValueError(f"incomplete SQL statement in a migration (no ';' at a line end): {buf.strip()[:80]!r}")
    return tuple(out)


@dataclass(frozen=True)
class Schema:
    """The versions of one database file (``name`` is how messages call it, e.g. ``index``)."""

    name: str
    migrations: tuple[Migration, ...]

    def __post_init__(self) -> None:
        numbers = [m.version for m in self.migrations]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"{self.name} schema: migrations must be numbered 1, 2, 3, … in order, got {numbers}")

    @property
    def version(self) -> int:
        """The version this code writes and knows."""
        return len(self.migrations)

    def upgrade(self, conn: sqlite3.Connection, path: Path) -> int:
        """Bring the database on ``conn`` to ``self.version``; returns the version it had. No-op when current.

        All pending migrations run in one BEGIN IMMEDIATE transaction (other processes wait on the busy
        timeout, then see the new version and do nothing); any failure rolls everything back. A file from a
        newer version is refused, never downgraded."""
        found = user_version(conn)
        self._refuse_newer(found, path)
        if found == self.version:
            return found
        conn.execute("BEGIN IMMEDIATE")
        try:
            found = user_version(conn)  # another process may have upgraded it while we waited for the lock
            self._refuse_newer(found, path)
            self._run(conn, path, found)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if found != self.version:
            log.info("%s: %s schema upgraded from version %d to %d", path, self.name, found, self.version)
        return found

    def refuse_newer_file(self, path: Path) -> None:
        """For code that replaces a file instead of opening it (``index --rebuild``): no silent downgrade either."""
        found = file_version(path)
        if found is not None:
            self._refuse_newer(found, path)

    def _refuse_newer(self, found: int, path: Path) -> None:
        if found > self.version:
            raise SchemaError(
                f"{path}: the {self.name} database has schema version {found}, but this rtstation knows only "
                f"versions up to {self.version}: it was written by a newer release. Run that release (or newer) "
                f"on this data_dir; it is left as it is, never downgraded.")

    def _run(self, conn: sqlite3.Connection, path: Path, found: int) -> None:
        legacy = found == 0 and bool(table_columns(conn))  # a file from before user_version: tables, version 0
        if legacy:
            self._check_legacy(conn, path, exact=False)
        for m in self.migrations[found:]:
            try:
                for statement in m.statements:
                    conn.execute(statement)
                if m.python is not None:
                    m.python(conn)
            except sqlite3.Error as exc:
                raise SchemaError(f"{path}: {self.name} schema migration {m.version} ({m.description}) failed: "
                                  f"{exc}; the file is unchanged (still version {found})") from exc
            if legacy and m.version == 1:
                self._check_legacy(conn, path, exact=True)
        conn.execute(f"PRAGMA user_version={self.version}")

    def _check_legacy(self, conn: sqlite3.Connection, path: Path, exact: bool) -> None:
        """A version-0 file with tables must be one an earlier release wrote. Before migration 1 each table's
        columns are a prefix of version 1's (releases only ever appended columns); after it (which adds what
        they created lazily or later), every table has exactly the columns of a fresh version 1."""
        fresh = sqlite3.connect(":memory:")
        try:
            for statement in self.migrations[0].statements:
                fresh.execute(statement)
            want = table_columns(fresh)
        finally:
            fresh.close()
        have = table_columns(conn)
        wrong = [f"{t} has ({', '.join(have[t])}), expected ({', '.join(want.get(t, ()))})"
                 for t in sorted(have) if have[t] != (want.get(t, ()) if exact else want.get(t, ())[:len(have[t])])]
        if wrong:
            raise SchemaError(f"{path}: not an rtstation {self.name} database of a known release (user_version 0):"
                              f" {'; '.join(wrong)}. It is left as it is.")


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def table_columns(conn: sqlite3.Connection) -> dict[str, tuple[str, ...]]:
    """Table name -> column names in order (SQLite's own tables left out)."""
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE"
                                        " 'sqlite_%' ORDER BY name")]
    return {n: tuple(r[1] for r in conn.execute(f'PRAGMA table_info("{n}")')) for n in names}


def file_version(path: Path) -> int | None:
    """The version of a database file, read without changing it (None when there is no such file)."""
    if not Path(path).exists():
        return None
    conn = sqlite3.connect(path)
    try:
        return user_version(conn)
    finally:
        conn.close()
