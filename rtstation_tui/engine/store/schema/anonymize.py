"""The versions of ``data_dir/anonymize.sqlite``, the re-identification table of ``transforms.mapping``. Append a
``Migration`` to change it (see the package docstring); never edit a released one.

Why a third file and not tables in ``index.sqlite``: the index is rebuilt from the stored files, this table never can
be (it is the only way back from a replacement UID to the original).
"""

from __future__ import annotations

from .base import Migration, Schema

V1 = """
CREATE TABLE IF NOT EXISTS uids (
    key_id TEXT NOT NULL, original TEXT NOT NULL, replacement TEXT NOT NULL, first_seen REAL,
    PRIMARY KEY (key_id, original));
CREATE INDEX IF NOT EXISTS ix_uids_replacement ON uids(replacement);
CREATE TABLE IF NOT EXISTS patients (
    key_id TEXT NOT NULL, original_id TEXT NOT NULL, original_name TEXT, n INTEGER NOT NULL, new_id TEXT NOT NULL,
    new_name TEXT NOT NULL, first_seen REAL, PRIMARY KEY (key_id, original_id));
CREATE INDEX IF NOT EXISTS ix_patients_new ON patients(new_id);
"""

ANONYMIZE = Schema("anonymize", (
    Migration(1, "original <-> replacement UIDs and patients, per project key", V1),
))
