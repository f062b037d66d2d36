"""Plan metrics as a user sees them: a plan received over the network gets its metrics and DVHs from the server,
they survive a restart without being recomputed, ``index --rebuild`` brings them back, and filters find it."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest

from helpers import DATA, Serve, rtstation, storescu, wait_for, write_config

B1_UID = "1.2.246.352.71.5.320687012.24189.20090603083342"


@pytest.fixture
def mconfig(tmp_path: Path, data_dir: Path, port: int) -> Path:
    return write_config(tmp_path / "rtstation.toml", (
        f'[station]\nae_title = "RTSTATION"\nbind = "127.0.0.1"\nport = {port}\ndata_dir = "{data_dir}"\n\n'
        f'[receiver]\nsettle_seconds = 1\nmin_free_mb = 0\ndurability = "os"\n\n'
        f'[metrics]\ndvh_points = ["V10Gy", "D2cc"]\n'))


def metrics(config: Path, *args: str) -> list[dict]:
    return json.loads(rtstation("metrics", "--json", *args, config=config).stdout)


def computed(config: Path) -> bool:
    return any(p["plan_uid"] == B1_UID and p["status"] == "ok" for p in metrics(config))


def test_received_plan_gets_metrics_that_survive_restart_and_rebuild(mconfig: Path, port: int, tmp_path: Path,
                                                                     breast: list[Path]) -> None:
    serve = Serve(mconfig, tmp_path / "serve.log").start()
    try:
        storescu(port, breast, extra=["-xi"])
        wait_for(lambda: computed(mconfig), 120, what="metrics of B1")
    finally:
        serve.stop()
    assert "metrics of plan B1 (" in serve.text()
    [b1] = metrics(mconfig, "--where", "label=B1")
    rtplan = pydicom.dcmread(DATA / "breast_boost" / "rtplan.dcm")
    expected_mu = [float(rb.BeamMeterset) for rb in rtplan.FractionGroupSequence[0].ReferencedBeamSequence]
    assert (b1["machine"], b1["fractions"], len(b1["beams"])) == ("txmachine", 7, 4)
    assert [b["mu"] for b in b1["beams"]] == expected_mu == [97.0, 87.0, 89.0, 94.0]
    assert [b["name"] for b in b1["beams"]] == ["3 RAO", "4 AP", "5 LAO", "6 LPO"]
    assert [(b["radiation_type"], b["energy"]) for b in b1["beams"]] == [("PHOTON", 10.0), ("PHOTON", 6.0),
                                                                          ("PHOTON", 6.0), ("PHOTON", 10.0)]
    assert b1["total_mu"] == sum(expected_mu)
    assert (b1["prescription_gy"], b1["dose_per_fraction_gy"], b1["approval"]) == (14.0, 2.0, "UNAPPROVED")
    assert 14 < b1["dose"]["max_gy"] < 15 and b1["dose"]["min_gy"] == 0
    assert {s["name"] for s in b1["structures"]} >= {"BODY", "Heart", "Lt Lung", "Tumor Bed"}

    dvhs = {d["roi"]: d for d in json.loads(rtstation("metrics", "--dvh", "B1", "--json", config=mconfig).stdout)}
    assert 14.0 < dvhs["Tumor Bed"]["mean_gy"] < 14.6
    assert dvhs["Tumor Bed"]["points"]["V10Gy"]["percent"] == 100.0
    assert dvhs["Heart"]["points"]["D2cc"] < dvhs["Heart"]["max_gy"]
    first = b1["computed"]

    serve = Serve(mconfig, tmp_path / "serve2.log").start()  # a restart recomputes nothing unchanged
    serve.stop()
    assert metrics(mconfig)[0]["computed"] == first
    assert "metrics of plan" not in serve.text()

    rtstation("index", "--rebuild", config=mconfig)
    [again] = metrics(mconfig)
    assert again["computed"] > first and again["total_mu"] == b1["total_mu"]
    assert metrics(mconfig, "--where", "max_dose>14Gy", "--where", "machine=TX*") != []
    assert metrics(mconfig, "--where", "max_dose>1500cGy") == []


def test_metrics_follow_the_bundle_when_its_dose_arrives_later(mconfig: Path, port: int, tmp_path: Path) -> None:
    bb = DATA / "breast_boost"
    serve = Serve(mconfig, tmp_path / "serve.log").start()
    try:
        storescu(port, [bb / "rtplan.dcm", bb / "rtss.dcm"], extra=["-xi"])
        wait_for(lambda: [p["status"] for p in metrics(mconfig)] == ["partial"], 120, what="metrics without dose")
        [partial] = metrics(mconfig)
        assert partial["dose"] is None and "no dose" in partial["detail"]
        assert partial["total_mu"] == 367.0  # plan facts do not wait for the dose
        storescu(port, [bb / "rtdose.dcm"], extra=["-xi"])
        wait_for(lambda: computed(mconfig), 120, what="metrics recomputed with the dose")
    finally:
        serve.stop()
    [b1] = metrics(mconfig)
    assert b1["dose"]["summation"] == "PLAN" and b1["computed"] > partial["computed"]


def test_a_stop_mid_computation_is_prompt_and_the_next_start_computes(mconfig: Path, port: int, tmp_path: Path,
                                                                      breast: list[Path]) -> None:
    serve = Serve(mconfig, tmp_path / "serve.log").start()
    try:
        storescu(port, breast, extra=["-xi"])
        wait_for(lambda: "computing metrics of plan B1" in serve.text(), 60, what="the computation to start")
        assert serve.stop(timeout=10) == 0  # a DVH in progress never holds the station up
    finally:
        serve.kill()
    assert "interrupted by the stop" in serve.text() and metrics(mconfig) == []
    serve = Serve(mconfig, tmp_path / "serve2.log").start()
    try:
        wait_for(lambda: computed(mconfig), 120, what="metrics computed by the catch-up at start")
    finally:
        serve.stop()
