"""Rule and node actions against real peers: a rule's transform chain per target, a node's machine mapping seen in
Orthanc, and the store unchanged by either."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pydicom

from helpers import (Serve, dataset_bytes, free_port, rtstation, show_json, station_toml, stored_files, storescu,
                     wait_for, write_config)
from peers import Orthanc, StoreSCP
from rulestools import node_toml, rule_toml
from rtstation_tui.engine.store.paths import safe_component
from rtstation_tui.synthetic import make_patient

ANON = ('[anonymize]\nkey = "actions-test-key-0123456789"\npatient_id = "RESEARCH-{n:04d}"\n\n'
        '[anonymize.profiles.research]\nbase = "rt-research"\n\n')


def hashes(data_dir: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in stored_files(data_dir)}


def jobs(config: Path) -> list[dict]:
    return json.loads(rtstation("queue", "--json", config=config).stdout)


def test_a_rule_sends_anonymized_copies_to_one_target_and_the_original_bytes_to_the_other(tmp_path):
    research, qa = StoreSCP(tmp_path / "res", aet="RESSCP").start(), StoreSCP(tmp_path / "qa", aet="QASCP").start()
    server = None
    try:
        rules = (rule_toml("research copy", ["RESEARCH"], plan_label="glob:STUDY_*",
                           transforms=["anonymize:research", "set:RTPlanLabel={label|upper}"])
                 + rule_toml("qa copy", ["QA"], plan_label="glob:STUDY_*"))
        config = write_config(tmp_path / "rt.toml", station_toml(
            tmp_path / "var", port := free_port(),
            extra=ANON + node_toml("RESEARCH", research.spec) + node_toml("QA", qa.spec) + rules))
        p = make_patient(tmp_path / "syn", "SECRET-42", name="DOE^JANE", label="study_7", slices=4, rows=8, cols=8)
        server = Serve(config, tmp_path / "serve.log").start()
        storescu(port, p.files, aet="ECLIPSE")
        wait_for(lambda: len(research.files()) == 7 and len(qa.files()) == 7, 60, what="both deliveries")
        wait_for(lambda: sorted(j["state"] for j in jobs(config)) == ["done", "done"], 30, what="both jobs done")
        assert server.stop() == 0
        server = None

        # the research copy: no original identifier anywhere in the bytes, a new label, and its references resolve
        for f in research.files():
            data = f.read_bytes()
            assert b"SECRET-42" not in data and b"DOE" not in data and p.plan_uid.encode() not in data
        fresh = write_config(tmp_path / "fresh.toml", station_toml(tmp_path / "fresh", free_port()))
        rtstation("import", *map(str, research.files()), config=fresh)
        [patient] = show_json(fresh)
        [plan] = patient["plans"]
        assert patient["patient_id"] == "RESEARCH-0001" and plan["label"] == "STUDY_7"
        assert plan["complete"] and patient["unconnected"] == []
        # the plain target got the stored bytes, as received
        stored = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID: dataset_bytes(f)
                  for f in stored_files(tmp_path / "var")}
        got = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID: dataset_bytes(f) for f in qa.files()}
        assert got == stored
        [res_job] = [j for j in jobs(config) if j["node"] == "RESEARCH"]
        assert json.loads(res_job["transform"]) == ["anonymize:research", "set:RTPlanLabel={label|upper}"]
    finally:
        if server is not None:
            server.stop()
        research.stop()
        qa.stop()


def test_rules_test_lists_the_transforms_each_target_gets(tmp_path):
    rules = rule_toml("research copy", ["RESEARCH", "QA"], transforms=["anonymize:research"])
    config = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", free_port(), extra=(
        ANON + node_toml("RESEARCH", "R@127.0.0.1:1") + node_toml("QA", "Q@127.0.0.1:2")
        + 'machine_map = { "TrueBeam1" = "TB_Q" }\n\n' + rules)))
    make_patient(tmp_path / "syn", "T1", label="T_1", slices=2, rows=8, cols=8)
    rtstation("import", str(tmp_path / "syn"), config=config)
    text = rtstation("rules", "test", "--plan", "T_1", config=config).stdout
    assert "RESEARCH: transforms\n         - anonymize:research: " in text, text
    assert "QA: transforms\n         - anonymize:research: " in text and "TrueBeam1 -> TB_Q" in text, text
    [rule] = json.loads(rtstation("rules", "test", "--plan", "T_1", "--json", config=config).stdout)["rules"]
    assert [w["transforms"][0] for w in rule["would_send"]] == ["anonymize:research"] * 2
    assert not (tmp_path / "var" / "anonymize.key").exists()  # a dry run makes nothing


def test_a_nodes_machine_map_reaches_orthanc_in_every_beam_and_the_stored_plan_keeps_its_name(tmp_path):
    orthanc = Orthanc(tmp_path / "orthanc").start()
    try:
        node = node_toml("LINAC_B", orthanc.spec) + 'machine_map = { "TrueBeam1" = "TB_B", "*" = "TB_B" }\n\n'
        config = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", free_port(), extra=node))
        p = make_patient(tmp_path / "syn", "M1", label="MAP_1", slices=2, rows=8, cols=8, machine="TrueBeam1")
        rtstation("import", str(tmp_path / "syn"), config=config)
        before = hashes(tmp_path / "var")
        out = json.loads(rtstation("send", "--plan", "MAP_1", "--to", "LINAC_B", "--wait", "--json",
                                   config=config).stdout)
        assert [o["state"] for o in out] == ["done"] and out[0]["transform"].startswith("machine_map:")
        sent = pydicom.dcmread(io.BytesIO(orthanc.file_of(p.plan_uid)))
        assert len(sent.BeamSequence) >= 2 and {b.TreatmentMachineName for b in sent.BeamSequence} == {"TB_B"}
        assert hashes(tmp_path / "var") == before
        stored = pydicom.dcmread(p.plan)
        assert {b.TreatmentMachineName for b in stored.BeamSequence} == {"TrueBeam1"}
        assert len(orthanc.get("/instances")) == len(p.files)  # same UIDs: the other objects as they are
    finally:
        orthanc.stop()


def test_export_writes_callingae_patient_label_folders_and_a_zip_of_the_stored_files(tmp_path):
    exports = tmp_path / "exports"
    rules = (rule_toml("folder export", [], export=f"{exports}/dir/{{calling_ae}}/{{patient_id}}/{{plan_label}}",
                       tag="exported")
             + rule_toml("zip export", [], export=f"{exports}/zip/{{calling_ae}}/{{patient_id}}/{{plan_label}}",
                         export_format="zip"))
    config = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", port := free_port(), extra=rules))
    p = make_patient(tmp_path / "syn", "PAT/1", label="PROST 1", slices=3, rows=8, cols=8)
    other = make_patient(tmp_path / "other", "PAT2", label="B1", slices=2, rows=8, cols=8)
    server = Serve(config, tmp_path / "serve.log").start()
    try:
        storescu(port, p.files, aet="ECLIPSE")
        pid, label = safe_component("PAT/1"), safe_component("PROST 1")  # as the store names folders
        assert pid.startswith("PAT_1-") and label.startswith("PROST_1-")  # one component each, never a '/'
        folder = exports / "dir" / "ECLIPSE" / pid / label
        zipped = exports / "zip" / "ECLIPSE" / pid / f"{label}.zip"
        wait_for(lambda: folder.is_dir() and zipped.is_file(), 60, what="both exports")
        storescu(port, other.files, aet="CTSIM")
        wait_for(lambda: (exports / "zip" / "CTSIM" / "PAT2" / "B1.zip").is_file(), 60, what="the second plan")
    finally:
        assert server.stop() == 0
    stored = {f.name: f.read_bytes() for f in stored_files(tmp_path / "var")
              if pydicom.dcmread(f, stop_before_pixels=True).PatientID == "PAT/1"}
    assert len(stored) == len(p.files)
    assert {f.name: f.read_bytes() for f in folder.iterdir()} == stored
    import zipfile

    with zipfile.ZipFile(zipped) as zf:
        assert {n: zf.read(n) for n in zf.namelist()} == stored
    assert not [f for f in exports.rglob(".rtstation-part-*")]  # nothing half-written left
    tagged = json.loads(rtstation("show", "--json", "--tag", "exported", config=config).stdout)
    assert [(pt["patient_id"], [pl["label"] for pl in pt["plans"]]) for pt in tagged] == [("PAT/1", ["PROST 1"]),
                                                                                         ("PAT2", ["B1"])]
    assert json.loads(rtstation("show", "--json", "--tag", "other", config=config).stdout) == []
    assert "#exported" in rtstation("show", config=config).stdout
    text = rtstation("rules", "test", "--plan", "B1", config=config).stdout
    assert f"export: {exports}/dir/CTSIM/PAT2/B1/" in text and f"export: {exports}/zip/CTSIM/PAT2/B1.zip" in text


def test_send_takes_a_chain_of_transforms_and_a_bad_step_is_refused_before_queueing(tmp_path):
    scp = StoreSCP(tmp_path / "scp").start()
    try:
        config = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", free_port(),
                                                                 extra=node_toml("QA", scp.spec)))
        p = make_patient(tmp_path / "syn", "C1", label="c plan", slices=2, rows=8, cols=8)
        rtstation("import", str(tmp_path / "syn"), config=config)
        out = rtstation("send", "--plan", "c plan", "--to", "QA", "--transform", "set:RTPlanLabel={label}-{PatientID}",
                        "--transform", "label:normalize", "--wait", config=config).stdout
        assert "as set:RTPlanLabel={label}-{PatientID}, then label:normalize: done" in out, out
        [plan] = [pydicom.dcmread(f) for f in scp.files() if pydicom.dcmread(f).Modality == "RTPLAN"]
        assert plan.RTPlanLabel == "C_PLAN-C1" and plan.SOPInstanceUID == p.plan_uid
        bad = rtstation("send", "--plan", "c plan", "--to", "QA", "--transform", "remove:ReferencedSOPInstanceUID",
                        config=config, check=False)
        assert bad.returncode == 2 and "UIDs are identity" in bad.stderr
    finally:
        scp.stop()
