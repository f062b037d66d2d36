"""The versions of ``data_dir/index.sqlite``: the store's index plus the rules' marks and the import folder's
kept files. Append a ``Migration`` to add a table or column (see the package docstring); never edit a released one.
"""

from __future__ import annotations

import sqlite3

from .base import Migration, Schema

# Version 1 is the schema of the release before user_version existed (commit 78db9ea), statement for statement:
# IF NOT EXISTS everywhere, so a file that release wrote (user_version 0, every table or some) is completed and
# stamped in place. rule_marks and import_kept were created lazily by the rules service and the watcher then.
V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS patients (patient_id TEXT PRIMARY KEY, patient_name TEXT, updated REAL);
CREATE TABLE IF NOT EXISTS studies (study_uid TEXT PRIMARY KEY, patient_id TEXT);
CREATE TABLE IF NOT EXISTS series (series_uid TEXT PRIMARY KEY, study_uid TEXT, patient_id TEXT, modality TEXT,
    description TEXT);
CREATE TABLE IF NOT EXISTS instances (
    id INTEGER PRIMARY KEY, sop_uid TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 1, sop_class TEXT,
    modality TEXT, transfer_syntax TEXT, patient_id TEXT, study_uid TEXT, series_uid TEXT, frame_of_ref TEXT,
    instance_number INTEGER, description TEXT, path TEXT NOT NULL UNIQUE, size INTEGER, source TEXT,
    calling_ae TEXT, received_at REAL, session_id INTEGER, conflict INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS ix_instances_sop ON instances(sop_uid);
CREATE INDEX IF NOT EXISTS ix_instances_patient ON instances(patient_id);
CREATE INDEX IF NOT EXISTS ix_instances_series ON instances(series_uid);
CREATE INDEX IF NOT EXISTS ix_instances_session ON instances(session_id);
CREATE TABLE IF NOT EXISTS refs (instance_id INTEGER NOT NULL, kind TEXT NOT NULL, uid TEXT NOT NULL, sop_class TEXT);
CREATE INDEX IF NOT EXISTS ix_refs_instance ON refs(instance_id);
CREATE INDEX IF NOT EXISTS ix_refs_uid ON refs(uid);
CREATE TABLE IF NOT EXISTS plans (
    instance_id INTEGER PRIMARY KEY, sop_uid TEXT, patient_id TEXT, label TEXT, name TEXT, approval TEXT,
    machines TEXT, beams TEXT, num_beams INTEGER, fractions INTEGER, ion INTEGER, intent TEXT);
CREATE INDEX IF NOT EXISTS ix_plans_patient ON plans(patient_id);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY, kind TEXT, source TEXT, calling_ae TEXT, peer TEXT, started REAL, ended REAL,
    pid INTEGER, instances INTEGER DEFAULT 0, bytes INTEGER DEFAULT 0, failures INTEGER DEFAULT 0,
    evaluated INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS bundles (
    plan_uid TEXT PRIMARY KEY, patient_id TEXT, state TEXT, complete INTEGER, signature TEXT, missing INTEGER,
    summary TEXT, updated REAL);
CREATE TABLE IF NOT EXISTS rule_marks (plan_uid TEXT PRIMARY KEY, signature TEXT, state TEXT, evaluated REAL,
    held TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS import_kept (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, imported REAL);
INSERT OR IGNORE INTO meta VALUES ('schema', '1');
"""


def _held_column(conn: sqlite3.Connection) -> None:
    """rule_marks from before the rules remembered held plans (commit 362c77d) lack ``held``: add it, empty."""
    columns = [r[1] for r in conn.execute("PRAGMA table_info(rule_marks)")]
    if "held" not in columns:
        conn.execute("ALTER TABLE rule_marks ADD COLUMN held TEXT NOT NULL DEFAULT ''")


# [METRICS]: plan metrics and DVHs per ROI (engine/metrics/tables.py reads and writes them). One row per plan in
# metric_plans (the columns filters and sorts use, and the whole facts as JSON); one row per ROI in metric_rois,
# with the cumulative DVH as zlib-compressed float32 volumes per bin_gy.
V2_METRICS = """
CREATE TABLE metric_plans (
    plan_uid TEXT PRIMARY KEY, patient_id TEXT, patient_name TEXT, label TEXT, name TEXT, intent TEXT,
    approval TEXT, review_date TEXT, reviewer TEXT, machine TEXT, technique TEXT, radiation TEXT, energies TEXT,
    fractions INTEGER, num_beams INTEGER, total_mu REAL, prescription_gy REAL, dose_per_fraction_gy REAL,
    dose_uid TEXT, struct_uid TEXT, dose_units TEXT, dose_summation TEXT, dose_grid TEXT, min_dose_gy REAL,
    mean_dose_gy REAL, max_dose_gy REAL, received REAL, computed REAL, seconds REAL, signature TEXT,
    status TEXT, detail TEXT, facts TEXT);
CREATE INDEX ix_metric_plans_patient ON metric_plans(patient_id);
CREATE INDEX ix_metric_plans_received ON metric_plans(received);
CREATE TABLE metric_rois (
    plan_uid TEXT NOT NULL, roi_number INTEGER NOT NULL, name TEXT, kind TEXT, contours INTEGER, planes INTEGER,
    volume_cc REAL, outside_grid_cc REAL, min_gy REAL, mean_gy REAL, max_gy REAL, d_gy TEXT, points TEXT,
    bin_gy REAL, dvh BLOB, PRIMARY KEY (plan_uid, roi_number));
"""

# [ACTIONS]: ``tag = "…"`` on a rule labels the plans it matched (engine/store/tags.py).
V3_TAGS = """
CREATE TABLE plan_tags (plan_uid TEXT NOT NULL, tag TEXT NOT NULL, added_by TEXT, added REAL,
    PRIMARY KEY (plan_uid, tag));
CREATE INDEX ix_plan_tags_tag ON plan_tags(tag);
"""

INDEX = Schema("index", (
    Migration(1, "the schema of the release before versions (78db9ea)", V1, _held_column),
    Migration(2, "plan metrics and DVHs ([METRICS])", V2_METRICS),
    Migration(3, "plan tags set by rules ([ACTIONS])", V3_TAGS),
))
