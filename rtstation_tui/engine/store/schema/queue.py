"""The versions of ``data_dir/queue.sqlite``, the send queue. Append a ``Migration`` to change it (see the package
docstring); never edit a released one.
"""

from __future__ import annotations

from .base import Migration, Schema

# Version 1 is the schema of the release before user_version existed (commit 78db9ea), statement for statement;
# IF NOT EXISTS, so a queue that release wrote (user_version 0) is stamped in place with every row.
V1 = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY, node TEXT NOT NULL, node_json TEXT NOT NULL, plan_uid TEXT, patient_id TEXT,
    label TEXT, origin TEXT, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_try REAL NOT NULL DEFAULT 0,
    created REAL, updated REAL, error TEXT NOT NULL DEFAULT '', total INTEGER, done INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0, bytes_total INTEGER, bytes_done INTEGER NOT NULL DEFAULT 0, owner_pid INTEGER);
CREATE INDEX IF NOT EXISTS ix_jobs_state ON jobs(state);
CREATE INDEX IF NOT EXISTS ix_jobs_plan ON jobs(plan_uid);
CREATE TABLE IF NOT EXISTS items (
    job_id INTEGER NOT NULL, seq INTEGER NOT NULL, sop_uid TEXT, sop_class TEXT, modality TEXT, path TEXT,
    size INTEGER, transfer_syntax TEXT, state TEXT NOT NULL, status INTEGER, error TEXT NOT NULL DEFAULT '',
    permanent INTEGER NOT NULL DEFAULT 0, sent_at REAL, PRIMARY KEY (job_id, seq));
CREATE INDEX IF NOT EXISTS ix_items_sop ON items(sop_uid);
"""

# Version 2: a job may send transformed copies (``send --anonymize``: "anonymize:PROFILE"); '' sends the stored
# files as they are, which is what every job queued before this column existed did.
V2 = """
ALTER TABLE jobs ADD COLUMN transform TEXT NOT NULL DEFAULT '';
"""

# Version 3 ([ACTIONS]): Storage Commitment. One row per request (its Transaction UID, persisted before the
# N-ACTION goes out, so a restart keeps waiting for the report), one per instance asked about.
V3 = """
CREATE TABLE commitments (
    transaction_uid TEXT PRIMARY KEY, job_id INTEGER NOT NULL, node TEXT NOT NULL, state TEXT NOT NULL,
    requested REAL, updated REAL, deadline REAL, instances INTEGER, failed INTEGER NOT NULL DEFAULT 0,
    detail TEXT NOT NULL DEFAULT '');
CREATE INDEX ix_commitments_job ON commitments(job_id);
CREATE TABLE commitment_items (
    transaction_uid TEXT NOT NULL, sop_class TEXT, sop_uid TEXT NOT NULL, state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '', PRIMARY KEY (transaction_uid, sop_uid));
"""

# Version 4 ([DERIVE]): jobs whose chain adds or splits objects (``seg``, ``classic``). ``items.derived = 1``: a row
# for an object the chain made (its deterministic SOP Instance UID; its copy is rebuilt at every attempt), appended
# after the stored instances when the first attempt makes the copies; ``jobs.derived`` counts them (``total``
# includes them). A stored instance the chain replaces (an Enhanced image by its classic frames), or one a
# bundle-wide chain only reads, has the item state ``input`` and is not counted in ``total``.
V4 = """
ALTER TABLE items ADD COLUMN derived INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN derived INTEGER NOT NULL DEFAULT 0;
"""

# Version 5 ([FAST] scheduling): a job's priority; the sender takes due jobs highest first, and a running job of a
# lower priority gives its node up for a higher one (outbound/priority.py). 1: asked for by someone (console, CLI,
# API); 0: a rule's bulk traffic. Jobs queued before keep that meaning: every origin not "rule:..." was manual.
V5 = """
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET priority = 1 WHERE origin IS NULL OR origin NOT LIKE 'rule:%';
"""

# Version 6 ([ACTIONS]): the UIDs a stored instance's copy carries. A chain that changes identity (anonymize) sends
# new SOP Instance UIDs; storage commitment must ask the node about those, not the stored ones (a derived row's own
# sop_uid is already what is sent). '' = not recorded: the stored UIDs, for every job without a chain and every job
# queued before this column existed.
V6 = """
ALTER TABLE items ADD COLUMN sent_sop_class TEXT NOT NULL DEFAULT '';
ALTER TABLE items ADD COLUMN sent_sop_uid TEXT NOT NULL DEFAULT '';
"""

QUEUE = Schema("queue", (
    Migration(1, "the schema of the release before versions (78db9ea)", V1),
    Migration(2, "jobs.transform: the transform applied to the sent copies ('' = the stored files)", V2),
    Migration(3, "storage commitment requests and their instances ([ACTIONS])", V3),
    Migration(4, "derived objects of a job (items.derived, jobs.derived) and the 'input' item state ([DERIVE])", V4),
    Migration(5, "jobs.priority: manual sends before a rule's backlog to the same node ([FAST] scheduling)", V5),
    Migration(6, "items.sent_sop_class/sent_sop_uid: the UIDs a transformed copy carried ('' = the stored)", V6),
))
