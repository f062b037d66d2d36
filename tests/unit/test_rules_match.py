"""Rule matching as pure functions: every match field, the label forms, order, stop, hold/send. No I/O."""

from __future__ import annotations

from dataclasses import replace

import pytest

from rtstation_tui.engine.outbound.rules import PlanFacts, decide, first_failure
from rtstation_tui.engine.config.rules import RuleConfig

FACTS = PlanFacts(plan_uid="1.2.3", patient_id="12345", label="QA_Breast", machines=("TrueBeam2",),
                  approval="APPROVED", sources=("ECLIPSE",), modalities=("CT", "RTDOSE", "RTPLAN", "RTSTRUCT"),
                  complete=True, missing=0)


def rule(**kw: object) -> RuleConfig:
    return RuleConfig(name=str(kw.pop("name", "r")), targets=("QA",), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("fields", "failed"), [
    ({}, None),
    ({"source_ae": "ECLIPSE"}, None),
    ({"source_ae": "ECL*"}, None),
    ({"source_ae": "eclipse"}, "source_ae"),  # AE titles are compared as they are
    ({"source_ae": "ECLIPSE2"}, "source_ae"),
    ({"source_ae": "IMPORT_FOLDER"}, "source_ae"),
    ({"plan_label": "qa"}, None),  # case-insensitive substring
    ({"plan_label": "breast"}, None),
    ({"plan_label": "B1"}, "plan_label"),
    ({"plan_label": "glob:qa_*"}, None),
    ({"plan_label": "glob:QA"}, "plan_label"),  # a glob matches the whole label
    ({"plan_label": "re:^QA_"}, None),
    ({"plan_label": "re:^B\\d"}, "plan_label"),
    ({"plan_label": "QA*"}, "plan_label"),  # plain label text is a substring, not a glob
    ({"machine": "truebeam*"}, None),
    ({"machine": "TrueBeam2"}, None),
    ({"machine": "Halcyon"}, "machine"),
    ({"approval": "APPROVED"}, None),
    ({"approval": "UNAPPROVED"}, "approval"),
    ({"approval": "ANY"}, None),
    ({"patient_id": "^[0-9]+$"}, None),
    ({"patient_id": "^9"}, "patient_id"),
    ({"modality": "rtdose"}, None),
    ({"modality": "MR"}, "modality"),
    ({"source_ae": "X", "plan_label": "nope"}, "source_ae"),  # the first failing condition is reported
])
def test_each_match_field(fields, failed):
    result = first_failure(rule(**fields), FACTS)
    assert (result[0] if result else None) == failed


def test_failure_reasons_name_the_values():
    cond, why = first_failure(rule(plan_label="B1"), FACTS)  # type: ignore[misc]
    assert cond == "plan_label" and why == "the label 'QA_Breast' does not contain 'B1'"
    cond, why = first_failure(rule(approval="UNAPPROVED"), FACTS)  # type: ignore[misc]
    assert why == "the plan is APPROVED, the rule wants UNAPPROVED"


def test_order_stop_disabled_and_incomplete_options():
    rules = (rule(name="off", enabled=False), rule(name="first", plan_label="QA", stop=False),
             rule(name="stopper", source_ae="ECLIPSE", stop=True), rule(name="after"))
    out = decide(rules, FACTS)
    assert [(d.rule, d.outcome) for d in out] == [("off", "disabled"), ("first", "send"), ("stopper", "send"),
                                                  ("after", "not-evaluated")]
    incomplete = replace(FACTS, complete=False, missing=3)
    held, sent = decide((rule(name="h"), rule(name="s", when_incomplete="send")), incomplete)
    assert held.outcome == "hold" and held.matched and "3 referenced objects missing" in held.reason
    assert sent.outcome == "send" and "incomplete (3 missing)" in sent.reason
    [stopped_by_hold, after] = decide((rule(name="h", stop=True), rule(name="x")), incomplete)
    assert stopped_by_hold.outcome == "hold" and after.outcome == "not-evaluated"  # a held match still stops


def test_a_disabled_target_does_not_keep_the_plan_from_the_others():
    from rtstation_tui.engine.outbound.rules import Decision, RulesService
    from rtstation_tui.engine.outbound.sender import Enqueued

    class Sender:
        def enqueue_plan(self, uid, targets, include, origin, transform=""):  # type: ignore[no-untyped-def]
            if targets == ["OFF"]:
                raise ValueError("node OFF is disabled ([[nodes]] enabled = false)")
            return [Enqueued(targets[0], 7, 6, 0, 0)]

    service = object.__new__(RulesService)
    service.sender = Sender()
    d = Decision("r", "send", matched=True, targets=("OFF", "QA"))
    service._send(d, FACTS)
    assert d.outcome == "error" and "OFF: node OFF is disabled" in d.reason
    assert [(j.node, j.job_id) for j in d.jobs] == [("QA", 7)]
    assert "(job 7 to QA queued)" in d.describe()
