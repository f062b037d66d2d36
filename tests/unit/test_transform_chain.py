"""Transform chains and the tag edits / machine mapping built-ins: what a peer would receive, and the config errors
an operator sees for a bad spec (file, key, what is allowed)."""

from __future__ import annotations

import copy
from pathlib import Path

import pydicom
import pytest

from rtstation_tui.engine.config.checks import ConfigError
from rtstation_tui.engine.config.model import load_config, parse_config
from rtstation_tui.engine.config.transforms import decode_chain, encode_chain, join_chains
from rtstation_tui.engine.transforms.base import TransformError, apply_chain
from rtstation_tui.engine.transforms.registry import build_chain, describe
from rtstation_tui.synthetic import make_patient


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> list[pydicom.Dataset]:
    p = make_patient(tmp_path_factory.mktemp("syn"), "CH1", slices=2, rows=8, cols=8, label="prost 1/a",
                     machine="TrueBeam1")
    return [pydicom.dcmread(f) for f in p.files]


def _plan(objects: list[pydicom.Dataset]) -> pydicom.Dataset:
    return next(o for o in objects if o.Modality == "RTPLAN")


def run(specs: list[str], objects: list[pydicom.Dataset]) -> list[pydicom.Dataset]:
    return apply_chain(build_chain(encode_chain(specs), load_config(None)), objects)


def test_a_chain_is_stored_as_one_spec_or_a_json_list_and_read_back() -> None:
    assert encode_chain(["anonymize:x"]) == "anonymize:x"  # what jobs from before chains hold
    two = encode_chain(["anonymize:x", "set:RTPlanLabel={label|upper}"])
    assert decode_chain(two) == ["anonymize:x", "set:RTPlanLabel={label|upper}"]
    assert decode_chain("") == [] and encode_chain([]) == ""
    assert decode_chain(join_chains("label:normalize", two)) == ["label:normalize", *decode_chain(two)]


def test_set_renames_the_plan_from_its_own_label_and_leaves_the_other_objects_alone(bundle) -> None:
    before = copy.deepcopy(bundle)
    out = run(["set:RTPlanLabel={label|upper}", "add:InstitutionName=SITE {PatientID}"], bundle)
    assert _plan(out).RTPlanLabel == "PROST 1/A"
    assert all("RTPlanLabel" not in o for o in out if o.Modality != "RTPLAN")  # no plan label on CT slices
    assert {o.InstitutionName for o in out} == {"SITE CH1"}
    assert [o.SOPInstanceUID for o in out] == [o.SOPInstanceUID for o in bundle]  # identity kept
    assert bundle == before  # the inputs are never modified


def test_label_normalize_and_remove(bundle) -> None:
    out = run(["label:normalize", "remove:(0008,0090)", "remove:StructureSetLabel"], bundle)
    assert _plan(out).RTPlanLabel == "PROST_1_A"
    assert all("ReferringPhysicianName" not in o and "StructureSetLabel" not in o for o in out)


def test_a_value_that_does_not_fit_or_is_missing_refuses_the_whole_bundle(bundle) -> None:
    with pytest.raises(TransformError, match=r"does not fit RTPlanLabel \(SH\)"):
        run(["set:RTPlanLabel={label}-{PatientID}-{PatientID}-X"], bundle)
    with pytest.raises(TransformError, match="has no RTPlanDescription"):
        run(["set:RTPlanLabel={RTPlanDescription}"], bundle)


def test_machine_map_renames_every_beam_and_defaults_name_the_beams_without_one(bundle) -> None:
    from rtstation_tui.engine.config.transforms import machine_map_spec

    out = run([machine_map_spec((("TrueBeam1", "TB_B"),), ())], bundle)
    assert {b.TreatmentMachineName for b in _plan(out).BeamSequence} == {"TB_B"}
    assert {b.TreatmentMachineName for b in _plan(bundle).BeamSequence} == {"TrueBeam1"}
    unnamed = copy.deepcopy(bundle)
    for b in _plan(unnamed).BeamSequence:
        del b.TreatmentMachineName
    _plan(unnamed).ManufacturerModelName = "Clinac23EX"
    out = run([machine_map_spec((), (("Clinac23EX", "LINAC_B"),))], unnamed)
    assert {b.TreatmentMachineName for b in _plan(out).BeamSequence} == {"LINAC_B"}
    with pytest.raises(TransformError, match="names no treatment machine.*'Clinac23EX'"):
        run([machine_map_spec((), (("Halcyon", "H1"),))], unnamed)


def test_the_dry_run_description_names_every_step() -> None:
    text = describe(encode_chain(["anonymize:rt-research", "label:normalize"]), load_config(None))
    assert text[0].startswith("anonymize:rt-research: ") and "RTPlanLabel in upper case" in text[1]


@pytest.mark.parametrize(("toml", "key", "message"), [
    ('[[nodes]]\nname="A"\nae_title="A"\nhost="h"\ntransforms=["sepia"]\n', "nodes[0] ('A').transforms[0]",
     "unknown transform 'sepia': use anonymize"),
    ('[[nodes]]\nname="A"\nae_title="A"\nhost="h"\ntransforms=["set:PatientNam=X"]\n', "transforms[0]",
     "'PatientNam' is not a DICOM keyword"),
    ('[[nodes]]\nname="A"\nae_title="A"\nhost="h"\ntransforms=["set:SOPInstanceUID=1.2"]\n', "transforms[0]",
     "UIDs are identity"),
    ('[[nodes]]\nname="A"\nae_title="A"\nhost="h"\ntransforms=["set:RTPlanLabel={label|shout}"]\n', "transforms[0]",
     "unknown filter 'shout'"),
    ('[[nodes]]\nname="A"\nae_title="A"\nhost="h"\nmachine_map={TrueBeam1="A_NAME_FAR_TOO_LONG"}\n',
     "machine_map.TrueBeam1", "1 to 16 characters"),
    ('[[nodes]]\nname="A"\nae_title="A"\nhost="h"\nmachine_map="TB"\n', "machine_map", "expected a table"),
    ('[[nodes]]\nname="A"\nae_title="A"\nhost="h"\n[[rules]]\nname="r"\ntargets=["A"]\n'
     'transforms=["anonymize:nope"]\n', "rules[0] ('r').transforms[0]", "unknown anonymize profile 'nope'"),
])
def test_bad_transforms_are_refused_when_the_config_is_read(toml: str, key: str, message: str) -> None:
    import tomllib

    with pytest.raises(ConfigError) as err:
        parse_config(tomllib.loads(toml), "rt.toml", Path("/tmp"))
    assert key in str(err.value) and message in str(err.value) and "rt.toml" in str(err.value)


@pytest.mark.parametrize(("rule", "key", "message"), [
    ('export = "relative/{plan_label}"', "export", "is not an absolute path"),
    ('export = "/x/{plan}"', "export", "fields are {calling_ae"),
    ('export = "/x/../{plan_label}"', "export", "'..' is not allowed"),
    ('export_format = "zip"', "export_format", "applies to an export"),
    ('export_format = "tar"', "export_format", "choose one of folder, zip"),
    ('targets = []', "targets", "at least one target node or an export"),
])
def test_bad_exports_are_refused_when_the_config_is_read(rule: str, key: str, message: str) -> None:
    import tomllib

    text = '[[nodes]]\nname="A"\nae_title="A"\nhost="h"\n[[rules]]\nname="r"\n' + (
        "" if rule.startswith("targets") else 'targets=["A"]\n') + rule + "\n"
    with pytest.raises(ConfigError) as err:
        parse_config(tomllib.loads(text), "rt.toml", Path("/tmp"))
    assert "rules[0]" in str(err.value) and f".{key}" in str(err.value) and message in str(err.value)
