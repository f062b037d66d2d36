"""One ingest path: the same files brought by a C-STORE, by ``rtstation import`` and by the watched folder end up as
the same stored bytes, the same index rows and the same audit records; only the origin's own fields differ."""

from __future__ import annotations

import json
import shutil
import sqlite3
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pydicom
import pytest

from helpers import BREAST, DATA
from rtstation_tui.engine import audit
from rtstation_tui.engine.intake.importer import BatchWriter, Importer
from rtstation_tui.engine.intake.ingest import Announced, Destination, FolderOrigin, Ingested, NetworkOrigin, ingest
from rtstation_tui.engine.store.files import Store
from rtstation_tui.engine.store.index import Index

ORIGIN_FIELDS = {"time", "source", "calling_ae", "peer", "assoc_id", "file"}
ORIGIN_COLUMNS = {"id", "source", "calling_ae", "received_at", "session_id"}
TRUNCATED = DATA / "pydicom" / "rtplan_truncated.dcm"


@pytest.fixture(autouse=True)
def no_audit_left() -> Iterator[None]:
    yield
    audit.configure(None)


def inputs(folder: Path) -> list[Path]:
    """The four plan-bundle files, the CT again (a duplicate) and a truncated plan (quarantined)."""
    folder.mkdir()
    for f in BREAST:
        shutil.copy(f, folder)
    shutil.copy(BREAST[0], folder / "zz-again.dcm")
    shutil.copy(TRUNCATED, folder / "zz-truncated.dcm")
    return sorted(folder.iterdir())


def over_the_network(data_dir: Path, files: list[Path]) -> list[Ingested]:
    """What the receiver does per C-STORE: the spooled temp file, in the store's tmp dir, renamed into the store."""
    store, index = Store(data_dir, "os"), Index(data_dir)
    session = index.open_session("association", "network", "ECLIPSE", "127.0.0.1:4242")
    into = Destination(store, lambda record: index.add([record]))
    origin = NetworkOrigin(calling_ae="ECLIPSE", peer="127.0.0.1:4242", assoc_id=1, session_id=session)
    results = []
    for f in files:
        temp = store.temp_path()
        shutil.copy(f, temp)
        ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["SOPInstanceUID", "SOPClassUID"])
        results.append(ingest(temp, origin, into, Announced(ds.SOPInstanceUID, ds.SOPClassUID)))
        temp.unlink(missing_ok=True)  # as pynetdicom does after the handler (a duplicate leaves it in place)
    return results


def by_import(data_dir: Path, folder: Path) -> None:
    index = Index(data_dir)
    Importer(Store(data_dir, "os"), index, BatchWriter(index)).run([folder], "import", "IMPORT")


def from_the_folder(data_dir: Path, folder: Path) -> None:
    """As ImportWatcher._import calls it."""
    index = Index(data_dir)
    Importer(Store(data_dir, "os"), index, BatchWriter(index)).run([folder], FolderOrigin.source, "IMPORT_FOLDER",
                                                                   move_bad=True, kind=FolderOrigin)


def run(tmp_path: Path, name: str, how: Callable[[Path, Path], Any]) -> Path:
    data_dir = tmp_path / name
    audit.configure(data_dir / "logs")
    how(data_dir, tmp_path / f"{name}-in")
    audit.configure(None)
    return data_dir


def stored(data_dir: Path) -> dict[str, bytes]:
    root = data_dir / "store"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.dcm"))}


def rows(data_dir: Path) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    conn = sqlite3.connect(data_dir / "index.sqlite")
    conn.row_factory = sqlite3.Row
    instances = [{k: r[k] for k in r.keys() if k not in ORIGIN_COLUMNS}
                 for r in conn.execute("SELECT * FROM instances ORDER BY path")]
    refs = [tuple(r) for r in conn.execute("SELECT i.path, r.kind, r.uid, r.sop_class FROM refs r JOIN instances i "
                                           "ON i.id = r.instance_id ORDER BY 1, 2, 3")]
    plans = [tuple(r)[1:] for r in conn.execute("SELECT * FROM plans ORDER BY sop_uid")]
    conn.close()
    return instances, refs, plans


def records(data_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for f in sorted((data_dir / "logs").glob("audit-*.jsonl"))
            for line in f.read_text().splitlines()]


def test_network_import_and_folder_store_index_and_audit_the_same(tmp_path: Path) -> None:
    files = {name: inputs(tmp_path / f"{name}-in") for name in ("network", "import", "folder")}
    net = run(tmp_path, "network", lambda d, _: over_the_network(d, files["network"]))
    imp = run(tmp_path, "import", by_import)
    fold = run(tmp_path, "folder", from_the_folder)

    assert len(stored(net)) == 4
    assert stored(net) == stored(imp) == stored(fold)
    assert rows(net) == rows(imp) == rows(fold)
    assert len(rows(net)[2]) == 1  # the plan row, so the comparison covers the pydicom path too

    objects = {d: [r for r in records(d) if r["kind"] != "quarantined"] for d in (net, imp, fold)}
    assert [r["kind"] for r in objects[net]] == ["stored"] * 4 + ["duplicate"]
    shapes = [[{k: v for k, v in r.items() if k not in ORIGIN_FIELDS} for r in objects[d]] for d in (net, imp, fold)]
    assert shapes[0] == shapes[1] == shapes[2]
    assert {(r["source"], r["calling_ae"], r["peer"], r["assoc_id"]) for r in objects[net]} == \
        {("network", "ECLIPSE", "127.0.0.1:4242", 1)}
    assert [Path(r["file"]).name for r in objects[imp]] == [p.name for p in files["import"][:5]]
    assert {(r["source"], r["calling_ae"]) for r in objects[fold]} == {("import-folder", "IMPORT_FOLDER")}

    # the broken plan: quarantined by all three with the same reason; a one-shot import leaves its source alone
    reasons = [[r["reason"] for r in records(d) if r["kind"] == "quarantined"] for d in (net, imp, fold)]
    assert len(reasons[0]) == 1 and "truncated" in reasons[0][0] and reasons[0] == reasons[1] == reasons[2]
    for d in (net, imp, fold):
        [kept] = [p for p in (d / "quarantine").iterdir() if not p.name.endswith(".reason.txt")]
        assert kept.read_bytes() == TRUNCATED.read_bytes()
    assert (tmp_path / "import-in" / "zz-truncated.dcm").exists()
    assert not (tmp_path / "folder-in" / "zz-truncated.dcm").exists()  # the folder is consumed


def broken_zip(path: Path) -> Path:
    """A ZIP whose end record is intact (so it is taken for a ZIP) but whose central directory is not."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.dcm", b"x" * 100)
    data = bytearray(path.read_bytes())
    at = data.rfind(b"PK\x01\x02")
    data[at:at + 4] = b"XXXX"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("kind", ["import", "folder"])
def test_a_broken_zip_is_quarantined_and_only_the_folder_loses_it(tmp_path: Path, kind: str) -> None:
    src = broken_zip(tmp_path / "export.zip")
    index = Index(tmp_path / "var")
    importer = Importer(Store(tmp_path / "var", "os"), index, BatchWriter(index))
    if kind == "import":
        report = importer.run([src], "import", "IMPORT")
    else:
        report = importer.run([src], FolderOrigin.source, "IMPORT_FOLDER", move_bad=True, kind=FolderOrigin)
    assert [(f, r.split(":")[0]) for f, r in report.quarantined] == [(str(src), "broken ZIP archive")]
    assert src.exists() == (kind == "import")  # a one-shot import never alters the user's files
    [kept] = [p for p in (tmp_path / "var" / "quarantine").iterdir() if p.suffix == ".zip"]
    assert kept.stat().st_size > 0
