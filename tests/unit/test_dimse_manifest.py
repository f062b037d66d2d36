"""The fence around pynetdicom's internals: ``engine/dimse/manifest.py`` lists every private name we touch, each is
still what 3.0.4 had, and nothing outside ``engine/dimse/`` touches one.

This test is the contract ``dimse/`` is the only package using pynetdicom internals: import-linter treats an
external package as one node (it cannot name ``pynetdicom._config`` or ``pynetdicom.dul``), so it cannot forbid
them elsewhere. The scan below reads our code's syntax tree: imports of pynetdicom's internal modules, attributes of
names bound to them (``_config.X``), and ``_``-prefixed attributes that are not our own.

When one fails after an upgrade: DEVELOPERS.md, "Upgrading pynetdicom".
"""

from __future__ import annotations

import ast
import inspect
import socket
from dataclasses import dataclass
from pathlib import Path

import pynetdicom
import pytest
from pynetdicom import AE, _config, fsm
from pynetdicom.association import Association
from pynetdicom.dimse_messages import DIMSEMessage
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.transport import AssociationSocket, RequestHandler

from helpers import ROOT
from rtstation_tui.engine.dimse import manifest
from rtstation_tui.engine.dimse.manifest import INTERNALS, Internal, resolve, source_digest

PACKAGE = ROOT / "rtstation_tui"
DIMSE = PACKAGE / "engine" / "dimse"
INTERNAL_MODULES = frozenset({"_config", "dul", "fsm", "pdu", "pdu_items", "pdu_primitives", "dimse",
                              "dimse_messages", "dimse_primitives", "transport", "acse", "timer", "utils",
                              "_handlers", "_globals"})
KINDS = {"replaced", "copied", "called", "attribute", "setting", "import"}


def _where(item: Internal) -> str:
    return f"{item.name} ({item.kind}: {item.relied_on}; used in engine/dimse/{', '.join(item.used_in)})"


def test_pynetdicom_is_the_pinned_version():
    assert pynetdicom.__version__ == manifest.PYNETDICOM_VERSION == "3.0.4", (
        f"pynetdicom is {pynetdicom.__version__}, engine/dimse/ was written for {manifest.PYNETDICOM_VERSION}: read "
        "DEVELOPERS.md 'Upgrading pynetdicom', then move PYNETDICOM_VERSION and the pin in pyproject.toml")


def test_manifest_entries_are_well_formed():
    names = [i.name for i in INTERNALS]
    assert len(names) == len(set(names)), "an entry is listed twice"
    for item in INTERNALS:
        assert item.kind in KINDS, _where(item)
        assert item.name.startswith("pynetdicom.") and item.relied_on and item.used_in, _where(item)
        for module in item.used_in:
            assert (DIMSE / module).is_file(), f"{item.name}: engine/dimse/{module} does not exist"


def test_every_pinned_source_is_unchanged():
    changed = []
    for item in INTERNALS:
        if item.digest is None:
            continue
        try:
            now = source_digest(resolve(item.name))
        except (AttributeError, ImportError, TypeError, OSError) as exc:
            changed.append(f"{_where(item)}: gone ({exc})")
            continue
        if now != item.digest:
            changed.append(f"{_where(item)}: pinned {item.digest}, installed {now}")
    assert not changed, "pynetdicom internals changed under engine/dimse/:\n  " + "\n  ".join(changed)


def _instances() -> dict[str, object]:
    """One live object per class whose instance attributes the manifest names."""
    ae = AE("TEST")
    assoc = Association(ae, "acceptor")
    ours, theirs = socket.socketpair()
    theirs.close()
    sock = AssociationSocket(assoc, client_socket=ours)
    assoc.set_socket(sock)
    return {"Association": assoc, "DULServiceProvider": assoc.dul, "DIMSEServiceProvider": assoc.dimse,
            "AssociationSocket": sock, "ApplicationEntity": ae, "C_STORE": C_STORE()}


def test_every_private_attribute_and_setting_still_exists():
    objects = _instances()
    missing = []
    for item in INTERNALS:
        if item.kind == "attribute":
            owner = item.name.split(".")[-2]
            if not hasattr(objects[owner], item.last):
                missing.append(_where(item))
        elif item.kind == "setting" and not hasattr(_config, item.last):
            missing.append(_where(item))
        elif item.kind in ("import", "replaced") and item.digest is None:
            try:
                resolve(item.name)
            except (AttributeError, ImportError) as exc:
                missing.append(f"{_where(item)}: {exc}")
    objects["AssociationSocket"].close()  # type: ignore[attr-defined]
    assert not missing, "pynetdicom no longer has:\n  " + "\n  ".join(missing)


def test_the_behaviour_the_hashes_cannot_show_is_still_there():
    """What the fast paths rely on between functions: the state machine's events, where the hooks fire, how the
    temp file is looked up and removed."""
    assert {"Evt9", "Evt10"} <= {e for e, _ in fsm.TRANSITION_TABLE}
    assert "dimse.receive_primitive" in inspect.getsource(fsm.DT_2)
    handle = inspect.getsource(RequestHandler.handle)  # EVT_CONN_OPEN fires before the threads start
    assert handle.index("EVT_CONN_OPEN") < handle.index("assoc.start()")
    decode = inspect.getsource(DIMSEMessage.decode_msg)
    assert "NamedTemporaryFile(" in decode and ".file.flush()" in decode  # looked up at call time: replaceable
    scp = inspect.getsource(StorageServiceClass.SCP)
    assert "os.unlink(req._dataset_file.name)" in scp


# -- the scan of our own code ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Use:
    file: Path
    line: int
    key: str  # "pynetdicom.dul.LOGGER" (import or module attribute) or "._kill" (a private attribute)

    def __str__(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}: {self.key}"


def _trees() -> dict[Path, ast.Module]:
    return {f: ast.parse(f.read_text(encoding="utf-8")) for f in sorted(PACKAGE.rglob("*.py"))}


def _own_names(trees: dict[Path, ast.Module]) -> set[str]:
    """Private names our code defines (functions, classes, class attributes, ``self.x =``) outside subclasses of
    pynetdicom classes: a ``_name`` used elsewhere is ours, not pynetdicom's."""
    own: set[str] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                own.add(node.name)
            if isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    targets = stmt.targets if isinstance(stmt, ast.Assign) else \
                        [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
                    own.update(t.id for t in targets if isinstance(t, ast.Name))
            if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                    and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                own.add(node.attr)
    return own


def _internal(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "pynetdicom" and len(parts) > 1 and parts[1] in INTERNAL_MODULES


def _uses(path: Path, tree: ast.Module, private: set[str] | None) -> list[Use]:
    """Every way ``tree`` reaches a pynetdicom internal. ``private``: pynetdicom's ``_names`` that are not ours
    (None: any ``_name``)."""
    uses: list[Use] = []
    bound: dict[str, str] = {}  # local name -> internal module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "pynetdicom":
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if _internal(full) and (node.module == "pynetdicom"):
                    bound[alias.asname or alias.name] = full
                    uses.append(Use(path, node.lineno, full))
                elif _internal(node.module):
                    uses.append(Use(path, node.lineno, full))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if _internal(alias.name):
                    bound[alias.asname or alias.name] = alias.name
                    uses.append(Use(path, node.lineno, alias.name))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        if isinstance(node.value, ast.Name) and node.value.id in bound:
            uses.append(Use(path, node.lineno, f"{bound[node.value.id]}.{node.attr}"))
        elif _is_private(node.attr, private):
            uses.append(Use(path, node.lineno, f".{node.attr}"))
    for node in ast.walk(tree):  # getattr(obj, "_name", ...) and friends
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
                and _is_private(node.args[1].value, private)):
            uses.append(Use(path, node.lineno, f".{node.args[1].value}"))
    return uses


def _is_private(name: str, private: set[str] | None) -> bool:
    return name.startswith("_") and not name.startswith("__") and (private is None or name in private)


def _matches(use: Use, item: Internal) -> bool:
    return use.key == item.name or (use.key.startswith(".") and item.name.endswith(use.key))


def _scannable(item: Internal) -> bool:
    """Entries whose every user the scan can see: attributes, settings, imports (a function we copy is not used by
    name, and a replaced public method such as ``kill`` cannot be told from our own)."""
    return item.kind in ("attribute", "setting", "import")


def _pynetdicom_private_names() -> set[str]:
    """Every ``_name`` pynetdicom has: in its source, on its classes (inherited ones included: ``Thread._target``)
    and on live instances. A ``_name`` of ours or of another library (``os._exit``) is not one of them."""
    root = Path(pynetdicom.__file__).parent
    names: set[str] = set()
    for path in root.rglob("*.py"):
        if "tests" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
    for obj in _instances().values():
        names.update(dir(obj))
        names.update(vars(obj))
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def test_every_pynetdicom_internal_we_use_is_in_the_manifest_and_inside_engine_dimse():
    trees = _trees()
    ours = _own_names(trees) - {i.last for i in INTERNALS if i.kind != "import"}
    private = _pynetdicom_private_names() - ours
    problems = []
    seen: dict[str, set[str]] = {}
    for path, tree in trees.items():
        for use in _uses(path, tree, private):
            items = [i for i in INTERNALS if _matches(use, i)]
            if not items:
                problems.append(f"{use}: not in engine/dimse/manifest.py")
            elif path.parent != DIMSE:
                problems.append(f"{use}: pynetdicom internals belong in engine/dimse/, nowhere else")
            elif not any(path.name in i.used_in for i in items):
                problems.append(f"{use}: add {path.name} to used_in of {items[0].name}")
            for item in items:
                seen.setdefault(item.name, set()).add(path.name)
    for item in INTERNALS:
        if _scannable(item):
            for module in set(item.used_in) - seen.get(item.name, set()):
                problems.append(f"{item.name}: listed as used in engine/dimse/{module}, which no longer uses it")
    assert not problems, "manifest and code disagree:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("snippet, expected", [
    ("from pynetdicom import _config\n_config.STORE_RECV_CHUNKED_DATASET = True\n",
     ["pynetdicom._config", "pynetdicom._config.STORE_RECV_CHUNKED_DATASET"]),
    ("from pynetdicom.dul import DULServiceProvider\n", ["pynetdicom.dul.DULServiceProvider"]),
    ("import pynetdicom.fsm as f\nf.DT_2\n", ["pynetdicom.fsm", "pynetdicom.fsm.DT_2"]),
    ("def f(event):\n    event.assoc.dul._run_loop_delay = 0\n", ["._run_loop_delay"]),
    ("def f(request):\n    return getattr(request, '_dataset_file', None)\n", ["._dataset_file"]),
    ("from pynetdicom import AE, evt\nfrom pynetdicom.sop_class import Verification\n", []),
])
def test_the_scan_sees_what_it_must(snippet, expected, tmp_path):
    """The scan itself can fail: each way of reaching an internal is found, public API is not."""
    path = tmp_path / "probe.py"
    assert [u.key for u in _uses(path, ast.parse(snippet), None)] == expected
