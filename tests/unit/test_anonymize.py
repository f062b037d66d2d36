"""De-identification ([ANON]): anonymized bundles still fit together, carry nothing of the original identity, are
reproducible per key, and the store keeps its originals byte for byte."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pydicom
import pytest

from helpers import BREAST, DATA, rtstation, show_json, station_toml, stored_files, write_config
from rtstation_tui.engine.config.checks import ConfigError
from rtstation_tui.engine.config.model import parse_config
from rtstation_tui.engine.transforms.anonymize import NewPatient, build
from rtstation_tui.engine.transforms.base import Transform, TransformError
from rtstation_tui.engine.transforms.files import read_objects, write_objects
from rtstation_tui.synthetic import make_patient

KEY = "project-key-0123456789-abcdef"
SETS = ["breast_boost", "nelms", "slicerrt", "pydicom", "synthetic"]
IDENTIFYING = ("PatientID", "OtherPatientIDs", "PatientBirthDate", "AccessionNumber", "InstitutionName")


def _station(tmp: Path, name: str, extra: str = "") -> Path:
    return write_config(tmp / f"{name}.toml", station_toml(tmp / name, 11112, extra=extra))


def _anon_toml(key: str = KEY) -> str:
    return f'[anonymize]\nkey = "{key}"\npatient_id = "RESEARCH-{{n:04d}}"\n'


def _synthetic(root: Path) -> Path:
    """A complete patient with every identifier the scan looks for, and dates days apart."""
    p = make_patient(root, "SYN-4711", name="DOE^JANE^Q", slices=4, rows=16, cols=16, label="BREAST_L")
    dates = {p.struct: ("StructureSetDate", "20260105"), p.plan: ("RTPlanDate", "20260115"),
             p.dose: ("ContentDate", "20260120")}
    for f in p.files:
        ds = pydicom.dcmread(f)
        ds.InstitutionName, ds.OperatorsName = "St Elsewhere Hospital", "SMITH^OPERATOR"
        ds.ReferringPhysicianName, ds.AccessionNumber = "HOUSE^GREGORY", "ACC8812345"
        ds.PhysiciansOfRecord = "WILSON^JAMES"
        if f in dates:
            setattr(ds, *dates[f])
        ds.save_as(f)
    return root


def _source(name: str, tmp: Path) -> list[Path]:
    if name == "synthetic":
        return [_synthetic(tmp / "synthetic")]
    return [DATA / name]


def _config(tmp: Path, data_dir: Path, key: str = KEY, extra: dict | None = None):  # type: ignore[no-untyped-def]
    return parse_config({"station": {"data_dir": str(data_dir)},
                         "anonymize": {"key": key, "patient_id": "RESEARCH-{n:04d}", **(extra or {})}}, "test.toml")


def _shape(config: Path) -> list:
    """What must survive de-identification: per patient, each bundle's counts, completeness and missing counts."""
    out = []
    for patient in show_json(config):
        plans = sorted((json.dumps(p["counts"], sort_keys=True), p["complete"], len(p["missing"]),
                        sorted(m["kind"] + m["modality"] for m in p["missing"]), p["beams"], p["fractions"],
                        p["approval"], len(p["conflicts"])) for p in patient["plans"])
        out.append((plans, len(patient["unconnected"]), len(patient["conflicts"])))
    return sorted(out, key=json.dumps)


def _anonymize_store(tmp: Path, data_dir: Path, out: Path, profile: str = "rt-research", key: str = KEY) -> list[Path]:
    transform = build(_config(tmp, tmp / "anon-var", key), profile)
    objects = transform.apply(read_objects(stored_files(data_dir)))
    return write_objects(objects, out, fsync=False)


@pytest.mark.parametrize("name", SETS)
def test_anonymized_sets_form_the_same_bundles_in_a_fresh_station(name, tmp_path):
    original = _station(tmp_path, "a")
    rtstation("import", *map(str, _source(name, tmp_path)), config=original, check=False)
    files = _anonymize_store(tmp_path, tmp_path / "a", tmp_path / "out")
    fresh = _station(tmp_path, "b")
    rtstation("import", str(tmp_path / "out"), config=fresh)
    assert _shape(fresh) == _shape(original)
    assert len(files) == len(stored_files(tmp_path / "a"))
    assert all(p["patient_id"].startswith("RESEARCH-") for p in show_json(fresh))


def _original_identifiers(files: list[Path]) -> tuple[set[str], set[str]]:
    """(identifying strings, UIDs that must not survive) of the original objects, nested sequences included."""
    idents: set[str] = set()
    uids: set[str] = set()

    def visit(ds, elem):  # type: ignore[no-untyped-def]
        values = elem.value if isinstance(elem.value, pydicom.multival.MultiValue) else [elem.value]
        keyword = elem.keyword or ""
        if elem.VR == "PN" or keyword in IDENTIFYING:
            idents.update(str(v) for v in values if v and len(str(v)) >= 3)
        if elem.VR == "UI" and not keyword.endswith("ClassUID") and keyword != "TransferSyntaxUID":
            uids.update(str(v) for v in values if v and not str(v).startswith("1.2.840.10008."))

    for f in files:
        ds = pydicom.dcmread(f)
        ds.walk(visit)
        ds.file_meta.walk(visit)
    return idents, uids


@pytest.mark.parametrize("name", SETS)
def test_byte_scan_finds_no_original_identifier_or_uid(name, tmp_path):
    rtstation("import", *map(str, _source(name, tmp_path)), config=_station(tmp_path, "a"), check=False)
    originals = stored_files(tmp_path / "a")
    idents, uids = _original_identifiers(originals)
    assert idents and uids  # the scan has something to look for
    # a UID is found where a whole run of digits and dots equals it: one pass per file for every UID
    runs = re.compile(rb"[0-9.]+")
    wanted = {u.encode() for u in uids}
    for profile in ("basic", "rt-research"):
        for f in _anonymize_store(tmp_path, tmp_path / "a", tmp_path / profile, profile):
            data = f.read_bytes()
            found = [v for v in idents if v.encode() in data]
            found += sorted(u.decode() for u in wanted.intersection(runs.findall(data)))
            assert not found, f"{profile}: {f.name} still holds {found}"
            ds = pydicom.dcmread(f)
            assert ds.PatientIdentityRemoved == "YES"
            assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"


def test_same_key_gives_identical_bytes_and_another_key_disjoint_uids(tmp_path):
    rtstation("import", str(_synthetic(tmp_path / "syn")), str(DATA / "breast_boost"),
              config=_station(tmp_path, "a"), check=False)
    first = _anonymize_store(tmp_path, tmp_path / "a", tmp_path / "one")
    second = _anonymize_store(tmp_path, tmp_path / "a", tmp_path / "two")
    other = _anonymize_store(tmp_path, tmp_path / "a", tmp_path / "three", key="another-key-9876543210")
    assert [f.name for f in first] == [f.name for f in second]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second))

    def uids(files: list[Path]) -> set[str]:
        return _original_identifiers(files)[1]
    assert uids(first) and not uids(first) & uids(other)
    assert uids(first).isdisjoint(_original_identifiers(stored_files(tmp_path / "a"))[1])


def _dates(ds: pydicom.Dataset) -> dict[str, str]:
    return {k: str(ds.get(k)) for k in ("StudyDate", "StructureSetDate", "RTPlanDate", "ContentDate") if ds.get(k)}


def test_date_shift_keeps_intervals_and_removes_birth_date(tmp_path):
    from datetime import date

    src = _synthetic(tmp_path / "syn")
    files = sorted(src.rglob("*.dcm"))
    transform = build(_config(tmp_path, tmp_path / "var"), "rt-research")
    out = transform.apply(read_objects(files))

    def days(d: str) -> int:
        return date(int(d[:4]), int(d[4:6]), int(d[6:8])).toordinal()
    before = [(k, days(v)) for ds in read_objects(files) for k, v in sorted(_dates(ds).items())]
    after = [(k, days(v)) for ds in out for k, v in sorted(_dates(ds).items())]
    assert [k for k, _ in before] == [k for k, _ in after] and len(before) > 4
    shifts = {a[1] - b[1] for a, b in zip(after, before)}
    assert len(shifts) == 1 and -730 <= shifts.pop() <= -62  # one offset for the patient: intervals kept
    assert all(not ds.get("PatientBirthDate") for ds in out)
    assert {str(ds.LongitudinalTemporalInformationModified) for ds in out} == {"MODIFIED"}
    basic = build(_config(tmp_path, tmp_path / "var"), "basic").apply(read_objects(files))
    assert {v for ds in basic for v in _dates(ds).values()} <= {"19000101"}  # Basic Profile: no dates, dummies


def test_cli_anonymize_plan_keeps_store_and_maps_back(tmp_path):
    config = _station(tmp_path, "a", _anon_toml())
    src = _synthetic(tmp_path / "syn")
    rtstation("import", str(src), *BREAST, config=config)
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in stored_files(tmp_path / "a")}
    proc = rtstation("anonymize", "--plan", "BREAST_L", "--profile", "rt-research", "--out", str(tmp_path / "out"),
                     "--json", config=config)
    result = json.loads(proc.stdout)
    assert result["patient_ids"] == ["RESEARCH-0001"] and len(result["files"]) == 7  # 4 CT, RS, RP, RD
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in stored_files(tmp_path / "a")}
    assert after == before  # the originals are only read

    fresh = _station(tmp_path, "b")
    rtstation("import", str(tmp_path / "out"), config=fresh)
    [patient] = show_json(fresh)
    [plan] = patient["plans"]
    assert plan["complete"] and plan["counts"] == {"CT": 4, "RTDOSE": 1, "RTPLAN": 1, "RTSTRUCT": 1}
    assert plan["label"] == "BREAST_L" and plan["machine"] == "TrueBeam1"  # clean descriptors, device identity
    assert patient["patient_id"] == "RESEARCH-0001"

    # the same patient again keeps its number; a second patient gets the next one
    again = json.loads(rtstation("anonymize", "--plan", "BREAST_L", "--out", str(tmp_path / "again"), "--json",
                                 config=config).stdout)
    assert again["patient_ids"] == ["RESEARCH-0001"]
    other = json.loads(rtstation("anonymize", "--plan", "B1", "--out", str(tmp_path / "b1"), "--json",
                                 config=config).stdout)
    assert other["patient_ids"] == ["RESEARCH-0002"]
    mapped = json.loads(rtstation("anonymize", "--lookup", plan["plan_uid"], "--json", config=config).stdout)
    original_plan = [p for p in show_json(config) if p["patient_id"] == "SYN-4711"][0]["plans"][0]["plan_uid"]
    assert [m["original"] for m in mapped] == [original_plan]
    back = rtstation("anonymize", "--lookup", "RESEARCH-0002", config=config).stdout
    assert "123456" in back


def test_new_id_and_name_from_the_command_line(tmp_path):
    config = _station(tmp_path, "a", _anon_toml())
    rtstation("import", str(DATA / "breast_boost"), config=config, check=False)
    rtstation("anonymize", "--plan", "B1", "--profile", "basic", "--new-id", "TRIAL-7", "--new-name", "TRIAL^SEVEN",
              "--out", str(tmp_path / "out"), config=config)
    objects = read_objects(sorted((tmp_path / "out").glob("*.dcm")))
    assert {(str(ds.PatientID), str(ds.PatientName)) for ds in objects} == {("TRIAL-7", "TRIAL^SEVEN")}
    plan = next(ds for ds in objects if ds.Modality == "RTPLAN")
    assert plan.RTPlanLabel != "B1" and len(plan.RTPlanLabel) == 8  # basic: a consistent dummy label
    assert not any(ds.get("TreatmentMachineName") for b in plan.BeamSequence for ds in [b])  # X/Z: emptied


def test_burned_in_annotation_is_refused_unless_allowed(tmp_path):
    ds = read_objects([DATA / "pydicom" / "CT_small.dcm"])
    ds[0].BurnedInAnnotation = "YES"
    with pytest.raises(TransformError, match="BurnedInAnnotation = YES"):
        build(_config(tmp_path, tmp_path / "var"), "basic").apply(ds)
    allowing = _config(tmp_path, tmp_path / "var", extra={"profiles": {"pix": {"allow_burned_in": True}}})
    [out] = build(allowing, "pix").apply(ds)
    assert out.PatientIdentityRemoved == "YES" and ds[0].PatientID != out.PatientID
    assert out.PixelData == ds[0].PixelData  # pixels never decoded or changed


def test_transform_works_on_copies_and_profile_overrides(tmp_path):
    objects = read_objects([DATA / "breast_boost" / "rtplan.dcm"])
    before = [ds.to_json() for ds in objects]
    config = _config(tmp_path, tmp_path / "var", extra={"profiles": {"trial": {
        "base": "rt-research", "dates": "keep", "keep": ["PatientName"], "remove": ["StationName"],
        "replace": {"Manufacturer": "ACME"}}}})
    transform = build(config, "trial")
    assert isinstance(transform, Transform) and transform.changes_identity
    [out] = transform.apply(objects)
    assert [ds.to_json() for ds in objects] == before  # the inputs are untouched
    assert out.PatientName == objects[0].PatientName and "StationName" not in out and out.Manufacturer == "ACME"
    assert out.RTPlanDate == objects[0].RTPlanDate and out.SOPInstanceUID != objects[0].SOPInstanceUID
    site = _config(tmp_path, tmp_path / "var", extra={"uid_root": "1.2.826.0.1.3680043.10.999"})
    [rooted] = build(site, "basic").apply(objects)
    assert str(rooted.SOPInstanceUID).startswith("1.2.826.0.1.3680043.10.999.") and len(rooted.SOPInstanceUID) <= 64


@pytest.mark.parametrize("table, key, words", [
    ({"profiles": {"x": {"dates": "blur"}}}, "[anonymize] profiles.x.dates", "remove, shift, keep"),
    ({"profiles": {"x": {"kep": ["PatientAge"]}}}, "[anonymize] profiles.x.kep", "did you mean 'keep'"),
    ({"profiles": {"x": {"remove": ["PatientAgee"]}}}, "[anonymize] profiles.x.remove[0]", "keyword"),
    ({"profiles": {"x": {"base": "nope"}}}, "[anonymize] profiles.x.base", "basic, rt-research"),
    ({"uid_root": "1.02.3"}, "[anonymize] uid_root", "without leading zeros"),
    ({"patient_id": "RESEARCH"}, "[anonymize] patient_id", "{n"),
    ({"default_profile": "nope"}, "[anonymize] default_profile", "basic, rt-research"),
    ({"colour": 1}, "[anonymize] colour", "allowed here"),
])
def test_config_errors_name_file_key_and_allowed_values(table, key, words):
    with pytest.raises(ConfigError) as err:
        parse_config({"anonymize": table}, "site.toml")
    assert str(err.value).startswith(f"site.toml: {key}") and words in str(err.value)


def test_key_file_is_created_once_and_reused(tmp_path):
    config = parse_config({"station": {"data_dir": str(tmp_path / "var")}}, "t.toml")
    objects = read_objects([DATA / "breast_boost" / "rtplan.dcm"])
    [a] = build(config, "basic").apply(objects)
    key_file = tmp_path / "var" / "anonymize.key"
    assert key_file.stat().st_mode & 0o077 == 0
    [b] = build(config, "basic").apply(objects)
    assert a.SOPInstanceUID == b.SOPInstanceUID


def _dciodvfy_errors(path: Path) -> set[str]:
    exe = "/usr/bin/dciodvfy"
    assert Path(exe).exists(), "dciodvfy missing: run scripts/install-peers.sh (Debian package dicom3tools)"
    proc = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("Error")]
    return {re.sub(r"[0-9.]{6,}", "#", ln) for ln in lines}  # values differ; the messages must not


@pytest.mark.parametrize("profile", ["basic", "rt-research"])
def test_dciodvfy_finds_no_new_errors(profile, tmp_path):
    rtstation("import", str(_synthetic(tmp_path / "syn")), *(str(DATA / s) for s in ("breast_boost", "slicerrt",
              "nelms", "pydicom")), config=_station(tmp_path, "a"), check=False)
    originals = {pydicom.dcmread(f).SOPInstanceUID: f for f in stored_files(tmp_path / "a")}
    transform = build(_config(tmp_path, tmp_path / "var"), profile)
    objects = read_objects(originals.values())
    outputs = write_objects(transform.apply(objects), tmp_path / "out", fsync=False)
    for source, out in zip(originals.values(), outputs):
        new = _dciodvfy_errors(out) - _dciodvfy_errors(source)
        assert not new, f"{profile}: {out.name} (from {source.name}): {new}"


def test_sample_config_documents_a_valid_anonymize_section():
    import tomllib

    from helpers import ROOT

    text = (ROOT / "sample_config" / "rtstation.toml").read_text()
    block = re.search(r"^# \[anonymize\]\n(?:#.*\n)+", text, re.M)
    assert block, "the sample config documents [anonymize]"
    toml = "\n".join(line[2:] for line in block.group(0).splitlines())
    config = parse_config(tomllib.loads(toml), "sample")
    assert config.anonymize.profile("trial").dates == "keep" and config.anonymize.patient_id == "RESEARCH-{n:04d}"


def test_private_elements_go_unless_listed_as_safe(tmp_path):
    [ds] = read_objects([DATA / "breast_boost" / "rtplan.dcm"])
    block = ds.private_block(0x3253, "ACME RT 1.0", create=True)
    block.add_new(0x10, "LO", "gating: on")
    block.add_new(0x11, "LO", "patient nickname")
    ds.BeamSequence[0].private_block(0x0019, "ACME RT 1.0", create=True).add_new(0x05, "LO", "nested")
    safe = _config(tmp_path, tmp_path / "var", extra={"profiles": {"p": {"retain_safe_private": ["(3253,xx10)"]}}})
    [out] = build(safe, "p").apply([ds])
    kept = [e.value for e in out if e.tag.is_private]
    assert kept == ["ACME RT 1.0", "gating: on"]  # the creator of the kept element's block stays with it
    assert not [e for e in out.BeamSequence[0] if e.tag.is_private]
    [basic] = build(safe, "basic").apply([ds])
    assert not [e for e in basic if e.tag.is_private]
