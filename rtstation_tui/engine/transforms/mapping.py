"""The project key and the re-identification table (``data_dir/anonymize.sqlite``).

Why a key: replacement UIDs, IDs and date offsets are HMACs of the originals under it, so the same input gives the
same output on every run and every machine holding the key, and nobody without it can recompute the mapping.
Why a table as well: an authorised user must be able to map back (HMACs are one-way), and ``{n}`` patient numbers
must stay the same patient's number for ever. The table lives apart from ``index.sqlite`` (the index is rebuilt
from the files; this must never be). Rows are per key (its fingerprint, never the key itself).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..store.db import Database
from ..store.schema import ANONYMIZE

log = logging.getLogger("rtstation.anonymize")


@dataclass(frozen=True)
class ProjectKey:
    secret: bytes

    @property
    def key_id(self) -> str:
        """A fingerprint that tells keys apart in the table without revealing them."""
        return hashlib.sha256(b"rtstation-key-id\0" + self.secret).hexdigest()[:16]

    def digest(self, purpose: str, value: str) -> bytes:
        return hmac.new(self.secret, f"{purpose}\0{value}".encode(), hashlib.sha256).digest()


def load_key(key: str | None, key_file: Path | None, data_dir: Path) -> ProjectKey:
    """The configured key, the key file's content, or ``data_dir/anonymize.key`` (made on first use, mode 0600)."""
    if key is not None:
        return ProjectKey(key.encode())
    path = key_file or Path(data_dir) / "anonymize.key"
    if key_file is None and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: use theirs
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            log.warning("created the anonymization key %s: keep it (and back it up) to get the same UIDs later", path)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read the anonymization key file {path}: {exc.strerror}") from None
    if len(text) < 16:
        raise ValueError(f"the anonymization key file {path} holds fewer than 16 characters")
    return ProjectKey(text.encode())


class MappingTable(Database):
    """Original ↔ replacement UIDs and patients, per key. Written only after a whole bundle was transformed."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(Path(data_dir) / "anonymize.sqlite", ANONYMIZE)

    def patient(self, key_id: str, original_id: str) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM patients WHERE key_id=? AND original_id=?",
                                 (key_id, original_id)).fetchone()

    def next_number(self, key_id: str) -> int:
        row = self.conn.execute("SELECT max(n) FROM patients WHERE key_id=?", (key_id,)).fetchone()
        return int(row[0] or 0) + 1

    def record(self, key_id: str, uids: dict[str, str],
               patients: Iterable[tuple[str, str, int, str, str]]) -> None:
        """Remember what this run replaced (existing rows stay: the first assignment of a number wins)."""
        now = time.time()
        with self.transaction() as conn:
            conn.executemany("INSERT OR IGNORE INTO uids VALUES (?,?,?,?)",
                             [(key_id, o, r, now) for o, r in uids.items()])
            conn.executemany("INSERT OR IGNORE INTO patients VALUES (?,?,?,?,?,?,?)",
                             [(key_id, pid, name, n, new_id, new_name, now)
                              for pid, name, n, new_id, new_name in patients])

    def reverse(self, value: str) -> list[tuple[str, str, str]]:
        """(kind, original, key_id) for a replacement UID or patient ID: what an authorised user maps back."""
        out = [("uid", r["original"], r["key_id"]) for r in
               self.conn.execute("SELECT original, key_id FROM uids WHERE replacement=?", (value,))]
        out += [("patient", f"{r['original_id']} ({r['original_name']})", r["key_id"]) for r in
                self.conn.execute("SELECT original_id, original_name, key_id FROM patients WHERE new_id=?",
                                  (value,))]
        return out
