"""Routing rules against real peers: two DCMTK storescp nodes, plans sent by DCMTK storescu under chosen AE titles,
a real ``rtstation serve``. Every reception is its own storescp file, so a duplicate would show."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import Serve, free_port, rtstation, station_toml, storescu, wait_for, write_config
from peers import StoreSCP
from rulestools import audit_records, decisions_for, node_toml, received, rule_toml

from rtstation_tui.synthetic import make_patient


def queue(config: Path) -> list[dict]:
    return json.loads(rtstation("queue", "--json", config=config).stdout)


def test_plans_reach_only_the_nodes_their_rules_name_and_a_restart_sends_nothing_again(tmp_path):
    qa, archive = StoreSCP(tmp_path / "qa", aet="QASCP").start(), StoreSCP(tmp_path / "arch", aet="ARCHSCP").start()
    server = None
    try:
        rules = (rule_toml("QA from Eclipse", ["QA"], source_ae="ECLIPSE", plan_label="glob:qa_*", stop=True)
                 + rule_toml("B plans archived", ["ARCHIVE"], source_ae="ECL*", plan_label="re:^B\\d+$"))
        config = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", port := free_port(),
                              extra=node_toml("QA", qa.spec) + node_toml("ARCHIVE", archive.spec) + rules))
        p_qa = make_patient(tmp_path / "pqa", "RQA1", label="QA_1", slices=3, rows=8, cols=8)
        p_b = make_patient(tmp_path / "pb", "RB1", label="B1", slices=3, rows=8, cols=8)
        p_x = make_patient(tmp_path / "px", "RX1", label="QA_9", slices=3, rows=8, cols=8)
        server = Serve(config, tmp_path / "serve.log").start()
        storescu(port, p_qa.files, aet="ECLIPSE")
        storescu(port, p_b.files, aet="ECLIPSE")
        storescu(port, p_x.files, aet="CTSIM")  # no rule knows this AE
        log_dir = tmp_path / "var" / "logs"
        wait_for(lambda: len(decisions_for(log_dir, p_x.plan_uid)) == 2, 20, what="the rules evaluated for RX1")
        wait_for(lambda: len(qa.files()) == 6 and len(archive.files()) == 6, 30, what="both deliveries")
        wait_for(lambda: [j["state"] for j in queue(config)] == ["done", "done"], 20, what="both jobs done")

        assert {r[0] for r in received(qa.files())} == {"RQA1"}
        assert {r[0] for r in received(archive.files())} == {"RB1"}
        assert sorted(r[2] for r in received(qa.files())) == sorted(p_qa.ct_uids + [p_qa.struct_uid, p_qa.plan_uid,
                                                                                   p_qa.dose_uid])
        # the audit log explains each plan, rule by rule
        d = decisions_for(log_dir, p_qa.plan_uid)
        assert d["QA from Eclipse"]["outcome"] == "send" and d["QA from Eclipse"]["jobs"][0]["instances"] == 6
        assert d["B plans archived"]["outcome"] == "not-evaluated" and "stop" in d["B plans archived"]["reason"]
        d = decisions_for(log_dir, p_b.plan_uid)
        assert d["QA from Eclipse"]["failed_condition"] == "plan_label" and "'B1'" in d["QA from Eclipse"]["reason"]
        assert d["B plans archived"]["outcome"] == "send" and d["B plans archived"]["jobs"][0]["node"] == "ARCHIVE"
        d = decisions_for(log_dir, p_x.plan_uid)
        assert {r["failed_condition"] for r in d.values()} == {"source_ae"}
        assert all("'CTSIM'" in r["reason"] and r["jobs"] == [] for r in d.values())
        assert "rule 'QA from Eclipse' matched: send to QA" in server.text()
        assert server.stop() == 0

        # Restart: nothing is evaluated or sent again; a new plan is routed, and only it goes out.
        evaluations = len(audit_records(log_dir))
        server = Serve(config, tmp_path / "serve2.log").start()
        p_new = make_patient(tmp_path / "pnew", "RQA2", label="QA_2", slices=2, rows=8, cols=8)
        storescu(port, p_new.files, aet="ECLIPSE")
        wait_for(lambda: len(qa.files()) == 11, 30, what="the new plan at QA")
        wait_for(lambda: [j["state"] for j in queue(config)] == ["done"] * 3, 20, what="the third job done")
        assert len(audit_records(log_dir)) == evaluations + 2  # only the new plan's two rules
        uids = [r[2] for r in received(qa.files())]
        assert len(uids) == len(set(uids)) == 11 and len(archive.files()) == 6
    finally:
        if server is not None:
            server.kill()
        qa.stop()
        archive.stop()


def test_incomplete_plan_is_held_or_sent_and_its_late_ct_goes_out_alone(tmp_path):
    qa, archive = StoreSCP(tmp_path / "qa", aet="QASCP").start(), StoreSCP(tmp_path / "arch", aet="ARCHSCP").start()
    server = None
    try:
        rules = (rule_toml("hold until complete", ["QA"], plan_label="HOLD", when_incomplete="hold")
                 + rule_toml("send what is there", ["ARCHIVE"], plan_label="SEND", when_incomplete="send"))
        text = station_toml(tmp_path / "var", port := free_port(),
                            extra=node_toml("QA", qa.spec) + node_toml("ARCHIVE", archive.spec) + rules)
        config = write_config(tmp_path / "rt.toml", text.replace("settle_seconds = 30", "settle_seconds = 1"))
        held = make_patient(tmp_path / "h", "HOLD1", label="HOLD", slices=3, rows=8, cols=8)
        sent = make_patient(tmp_path / "s", "SEND1", label="SEND", slices=3, rows=8, cols=8)
        server = Serve(config, tmp_path / "serve.log").start()
        storescu(port, [f for f in held.files if f not in held.ct] + [f for f in sent.files if f not in sent.ct])
        log_dir = tmp_path / "var" / "logs"
        wait_for(lambda: [j["state"] for j in queue(config)] == ["done"], 30, what="the incomplete SEND plan sent")
        wait_for(lambda: decisions_for(log_dir, held.plan_uid).get("hold until complete"), 20,
                 what="the HOLD plan's decision")
        hold = decisions_for(log_dir, held.plan_uid)["hold until complete"]
        assert hold["outcome"] == "hold" and hold["jobs"] == [] and not hold["complete"] and hold["missing"] == 3
        assert qa.files() == []
        assert sorted(r[1] for r in received(archive.files())) == ["RTDOSE", "RTPLAN", "RTSTRUCT"]
        first = set(archive.files())

        storescu(port, held.ct + sent.ct)  # the CT arrives later
        wait_for(lambda: len(archive.files()) == 6 and len(qa.files()) == 6, 30, what="the CTs delivered")
        wait_for(lambda: all(j["state"] == "done" for j in queue(config)), 20, what="jobs done")
        second = [f for f in archive.files() if f not in first]
        assert sorted(r[2] for r in received(second)) == sorted(sent.ct_uids)  # only the CT, each once
        assert sorted(r[1] for r in received(qa.files())) == ["CT"] * 3 + ["RTDOSE", "RTPLAN", "RTSTRUCT"]
    finally:
        if server is not None:
            server.kill()
        qa.stop()
        archive.stop()


def test_rules_check_and_rules_test_explain_rule_by_rule(tmp_path):
    rules = (rule_toml("from eclipse", ["QA"], source_ae="ECLIPSE")
             + rule_toml("approved qa", ["QA"], plan_label="qa", approval="approved", stop=True)
             + rule_toml("machines", ["QA@127.0.0.1:1"], machine="truebeam*", patient_id="^T\\d+$",
                         modality="RTDOSE", when_incomplete="send")
             + rule_toml("off", ["QA"], enabled=False))
    config = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", free_port(),
                          extra=node_toml("QA", "QASCP@127.0.0.1:1") + rules))
    out = rtstation("rules", "check", config=config).stdout
    assert "4 rules, all valid" in out and "1. from eclipse: source_ae = 'ECLIPSE' -> QA" in out

    p = make_patient(tmp_path / "p", "T123", label="QA_7", slices=2, rows=8, cols=8, machine="TrueBeam2")
    rtstation("import", str(tmp_path / "p"), config=config)  # calling AE IMPORT
    got = json.loads(rtstation("rules", "test", "--plan", "qa_7", "--json", config=config).stdout)
    assert got["plan"]["plan_uid"] == p.plan_uid and got["plan"]["sources"] == ["IMPORT"]
    by = {r["rule"]: r for r in got["rules"]}
    assert by["from eclipse"]["condition"] == "source_ae" and "'IMPORT'" in by["from eclipse"]["reason"]
    assert by["approved qa"]["outcome"] == "send"
    assert by["machines"]["outcome"] == "not-evaluated" and "'approved qa'" in by["machines"]["reason"]
    assert by["off"]["outcome"] == "not-evaluated"
    human = rtstation("rules", "test", "--plan", p.plan_uid, config=config).stdout
    assert "1. from eclipse: no: source_ae: 'ECLIPSE' does not match the plan's source AE 'IMPORT'" in human
    assert "2. approved qa: would send (complete) to QA: 5 new" in human
    assert rtstation("send", "--plan", "QA_7", "--to", "QA", config=config).returncode == 0  # nothing was queued
    assert len(queue(config)) == 1  # ...by rules test: only the job just made by hand
    again = json.loads(rtstation("rules", "test", "--plan", "QA_7", "--json", config=config).stdout)["rules"][1]
    assert again["would_send"] == [{"node": "QA", "new": 0, "already": 5, "transforms": [], "describe": []}]

    bad = write_config(tmp_path / "bad.toml", station_toml(tmp_path / "var", free_port(),
                       extra=rule_toml("broken", ["QA"], plan_label="re:([")))
    proc = rtstation("rules", "check", config=bad, check=False)
    assert proc.returncode == 2
    assert "bad.toml: rules[0] ('broken').targets: unknown node 'QA'" in proc.stderr
    odd = write_config(tmp_path / "odd.toml", station_toml(tmp_path / "var", free_port(),
                       extra=node_toml("QA", "QASCP@127.0.0.1:1").replace("timeout_s", "enabled = false\ntimeout_s")
                       + rule_toml("everything", ["QA"], stop=True) + rule_toml("later", ["QA@127.0.0.1:2"])))
    proc = rtstation("rules", "check", config=odd)
    assert "warning: rule 'everything': target 'QA' is disabled" in proc.stderr
    assert "warning: rule 'later' is never evaluated: rule 'everything' matches every plan and stops" in proc.stderr
    missing = rtstation("rules", "test", "--plan", "NOPE", config=config, check=False)
    assert missing.returncode == 2 and "no plan with UID or label 'NOPE'" in missing.stderr
