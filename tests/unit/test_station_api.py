"""What the console gets from ``StationAPI`` is plain data that could cross a socket ([ATTACH]): frozen
dataclasses of strings, numbers and tuples, with the facts the screens show."""

from __future__ import annotations

import dataclasses
import json

import pytest
from tui_support import fill_store, make_config

from rtstation_tui.engine.api import StationAPI
from rtstation_tui.engine.station import Station

B1 = "1.2.246.352.71.5.320687012.24189.20090603083342"


def plain(value: object) -> str:
    """JSON text of an API result; fails on anything live (a Bundle, a sqlite row, a Path) and on mutable rows."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        assert dataclasses.is_dataclass(item) and item.__dataclass_params__.frozen, item  # type: ignore[union-attr]
    return json.dumps([dataclasses.asdict(i) for i in items])  # type: ignore[call-overload]


@pytest.fixture
def station(tmp_path):
    config = make_config(tmp_path)
    fill_store(config, tmp_path)
    s = Station(config, receive=False)
    yield s
    s.index.close()


def test_listings_are_plain_frozen_data(station: StationAPI):
    patients = station.patients()
    assert [p.patient_id for p in patients] == ["123456", "SYN001"] and "plans" in plain(patients)
    assert [p.patient_id for p in station.patients("prost")] == ["SYN001"]  # by plan label
    assert station.label_matches("prost") == ["SYN001"]
    plans = station.plans_of("123456")
    assert B1 in plain(plans) and any(p.plan_uid == B1 and not p.complete for p in plans)
    details = station.plan_details(B1)
    assert details is not None and "97 CT missing" in details.missing
    assert {g.modality for g in details.chain} >= {"RTPLAN", "RTSTRUCT", "RTDOSE"}
    assert [(m.what, m.count) for m in details.missing_groups] == [("CT", 97)]
    plain(details)
    preview = station.send_preview([B1])
    assert preview[0].counts == (("CT", 1), ("RTSTRUCT", 1), ("RTPLAN", 1), ("RTDOSE", 1)) and plain(preview)
    plain(station.unconnected("123456"))
    plain(station.jobs(active_only=False))
    plain(station.status())
    assert station.plan_details("1.2.3.does.not.exist") is None


def test_dry_run_evaluates_the_newest_plans_with_the_given_rules(station: Station):
    from rtstation_tui.engine.config.rules import RuleConfig

    rule = RuleConfig(name="prostate to QA", targets=("QA",), plan_label="prost")
    verdicts = {p.label: p.verdicts for p in station.dry_run((rule,))}
    assert verdicts["PROST1"][0].outcome == "send" and verdicts["B1"][0].outcome == "no-match"
    assert "plan_label" in verdicts["B1"][0].reason
    plain(station.dry_run((rule,)))


async def test_a_station_that_did_not_start_says_sending_is_unavailable(station: Station, monkeypatch):
    assert station.status().send_unavailable == ""

    def broken() -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(station, "_recover", broken)
    with pytest.raises(OSError):
        await station.start()
    assert "did not start (disk gone)" in station.status().send_unavailable
    await station.stop()


def test_send_with_transforms_queues_transformed_copies_only_for_those_nodes(station: Station):
    jobs = station.send([B1], ["QA", "ARCHIVE"], {"QA": "anonymize:rt-research"})
    queued = {j.node: j.transform for j in station.sender.queue.jobs()}
    assert len(jobs) == 2 and queued == {"QA": "anonymize:rt-research", "ARCHIVE": ""}
    assert station.send([B1], ["QA"], {"QA": "anonymize:rt-research"}) == []  # already waiting: never twice
    assert len(station.send([B1], ["QA"])) == 1  # the originals are other objects to the peer
