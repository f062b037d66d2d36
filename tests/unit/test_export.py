"""A rule's export on its own: a second export of the same plan replaces the folder whole, a ZIP holds the stored
bytes, the rule's transforms apply to the exported copies, and a failing export leaves no half folder behind."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pydicom
import pytest

from rtstation_tui.engine.config.model import load_config
from rtstation_tui.engine.config.rules import RuleConfig
from rtstation_tui.engine.outbound.export import export_bundle, export_path
from rtstation_tui.engine.transforms.base import TransformError
from rtstation_tui.synthetic import make_patient


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    return make_patient(tmp_path / "syn", "EX1", label="EX", slices=2, rows=8, cols=8).files


def rule(**kw: object) -> RuleConfig:
    return RuleConfig(name="r", export="/unused/{plan_label}", **kw)  # type: ignore[arg-type]


def test_a_second_export_replaces_the_folder_whole(tmp_path, files) -> None:
    target = tmp_path / "out" / "EX"
    export_bundle(load_config(None), rule(), files[:2], target)
    done = export_bundle(load_config(None), rule(), files, target)
    assert done.files == len(files) and sorted(p.name for p in target.iterdir()) == sorted(f.name for f in files)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == {f.name: f.read_bytes() for f in files}
    assert [p.name for p in target.parent.iterdir()] == ["EX"]  # no staging folder left


def test_zip_holds_the_stored_bytes_and_transforms_apply_to_exports(tmp_path, files) -> None:
    done = export_bundle(load_config(None), rule(export_format="zip"), files, tmp_path / "z" / "EX")
    with zipfile.ZipFile(done.path) as zf:
        assert {n: zf.read(n) for n in zf.namelist()} == {f.name: f.read_bytes() for f in files}
    changed = export_bundle(load_config(None), rule(transforms=("label:{label}_X",)), files, tmp_path / "t" / "EX")
    labels = [pydicom.dcmread(p).get("RTPlanLabel") for p in Path(changed.path).iterdir()]
    assert [x for x in labels if x] == ["EX_X"]


def test_a_refused_export_leaves_nothing(tmp_path, files) -> None:
    with pytest.raises(TransformError):
        export_bundle(load_config(None), rule(transforms=("set:RTPlanLabel={RTPlanDescription}",)), files,
                      tmp_path / "bad" / "EX")
    assert list((tmp_path / "bad").iterdir()) == []


def test_path_fields_cannot_climb_out_of_the_export_root() -> None:
    path = export_path("/exports/{patient_id}/{plan_label}", {"patient_id": "../..", "plan_label": "a/b"})
    assert path.parent.parent == Path("/exports") and ".." not in path.parts
