"""Every table of the station's SQLite files, in one place, with versions: ``INDEX`` (``index.sqlite``), ``QUEUE``
(``queue.sqlite``) and ``ANONYMIZE`` (``anonymize.sqlite``, the re-identification table). ``store.db.Database``
runs ``schema.upgrade`` when it opens a file; no other module creates, alters or drops a table.

Each file's ``PRAGMA user_version`` says which migrations it has. Opening runs the pending ones in one transaction
(all or nothing; a failure leaves the file as it was), stamps the new version, and refuses a file whose version is
newer than this code knows, naming the file and both versions. Version 1 is the schema of the release before
versions existed; its files (user_version 0, tables present) are checked column by column and stamped in place.

Adding a table or column (metrics, query/retrieve, attach, …):
1. append ``Migration(N + 1, "what and why", sql, python=None)`` to the tuple in ``index.py``, ``queue.py`` or
   ``anonymize.py``; ``sql`` holds plain statements (``CREATE TABLE …``, ``ALTER TABLE … ADD COLUMN …
   DEFAULT …``), each ending with ``;`` at a line end; a ``python(conn)`` step may move data, in the same transaction, not committing;
2. never edit or reorder a released migration: files in the field already have it;
3. extend ``tests/unit/test_schema.py`` if the step moves data (the legacy data_dir already covers upgrading
   from the first release through every migration).
"""

from .anonymize import ANONYMIZE
from .base import Migration, Schema, SchemaError, file_version
from .index import INDEX
from .queue import QUEUE

__all__ = ["ANONYMIZE", "INDEX", "QUEUE", "Migration", "Schema", "SchemaError", "file_version"]
