"""Filters of ``rtstation metrics`` over a real metrics table, and plan facts of RTPLAN / RT Ion Plan files."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from helpers import DATA
from rtstation_tui.engine.store.index import Index
from rtstation_tui.engine.metrics import tables
from rtstation_tui.engine.metrics.plan import read_plan
from rtstation_tui.engine.metrics.query import QueryError, parse_sort, parse_where

PLANS = [  # label, machine, approval, max dose Gy, received
    ("ADP_PROST", "TrueBeam1", "APPROVED", 78.2, "2026-02-03"),
    ("adp lung", "TrueBeam2", "UNAPPROVED", 66.0, "2025-12-30"),
    ("H&N", "Halcyon", "APPROVED", 72.5, "2026-01-01"),
    ("Breast", "TrueBeam1", "APPROVED", None, "2026-03-01"),
]


ROIS = {  # the DVH rows filters on ROIs look at
    "adp lung": [{"plan_uid": "1.2.1", "roi_number": 1, "name": "Lung_L", "mean_gy": 12.0, "max_gy": 66.0,
                  "volume_cc": 1500.0, "d_gy": json.dumps({"95": 1.0}),
                  "points": json.dumps({"V20Gy": {"cc": 450.0, "percent": 30.0}, "D0.03cc": 64.0})},
                 {"plan_uid": "1.2.1", "roi_number": 2, "name": "PTV", "mean_gy": 60.1, "max_gy": 66.0,
                  "volume_cc": 150.0, "d_gy": json.dumps({"95": 57.5}), "points": "{}"}],
    "H&N": [{"plan_uid": "1.2.2", "roi_number": 1, "name": "PTV_70", "mean_gy": 70.2, "max_gy": 72.5,
             "volume_cc": 300.0, "d_gy": json.dumps({"95": 66.0}), "points": "{}"}],
}


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    c = Index(tmp_path).conn  # the index schema, with the metrics migration
    for i, (label, machine, approval, dmax, day) in enumerate(PLANS):
        tables.save(c, {"plan_uid": f"1.2.{i}", "label": label, "machine": machine, "approval": approval,
                        "max_dose_gy": dmax, "received": datetime.fromisoformat(day + "T12:00").timestamp(),
                        "status": "ok", "facts": "{}"}, ROIS.get(label, []))
    return c


def labels(conn: sqlite3.Connection, *where: str, sort: str = "label") -> list[str]:
    """Labels matching, in the order of ``sort`` (text sorts ignore case: "adp lung" < "ADP_PROST")."""
    w = parse_where(list(where))
    sql = f"SELECT label FROM metric_plans{' WHERE ' + w.sql if w.sql else ''} ORDER BY {parse_sort(sort)}"
    return [r[0] for r in conn.execute(sql, w.params)]


def test_filters_of_the_issue(conn: sqlite3.Connection) -> None:
    assert labels(conn, "label~ADP") == ["adp lung", "ADP_PROST"]  # contains, any case
    assert labels(conn, "max_dose>70Gy") == ["ADP_PROST", "H&N"]
    assert labels(conn, "max_dose>7000cGy") == ["ADP_PROST", "H&N"]
    assert labels(conn, "machine=TrueBeam*") == ["adp lung", "ADP_PROST", "Breast"]
    assert labels(conn, "received>2026-01-01") == ["ADP_PROST", "Breast"]  # after that day
    assert labels(conn, "received>=2026-01-01") == ["ADP_PROST", "Breast", "H&N"]
    assert labels(conn, "received=2026-01-01") == ["H&N"]
    assert labels(conn, "approval=approved", "label~adp") == ["ADP_PROST"]
    assert labels(conn, "approval=APPROVED and machine!=Halcyon, max_dose<80") == ["ADP_PROST"]
    assert labels(conn, "max_dose!=78.2") == ["adp lung", "Breast", "H&N"]  # no dose is "not 78.2"


def test_filters_on_the_rois_dvhs(conn: sqlite3.Connection) -> None:
    def roi(*where: str) -> list[str]:
        w = parse_where(list(where), ("V20Gy", "D0.03cc"))
        return [r[0] for r in conn.execute(f"SELECT label FROM metric_plans WHERE {w.sql} ORDER BY label", w.params)]

    assert roi("roi:ptv*.D95<60Gy") == ["adp lung"]  # 57.5 Gy; H&N's PTV_70 has 66 Gy
    assert roi("roi:PTV*.mean>6500cGy") == ["H&N"]
    assert roi("roi:Lung*.V20Gy>=30") == ["adp lung"] and roi("roi:Lung*.V20Gy>30%") == []
    assert roi("roi:Lung_L.V20Gy<500cc") == ["adp lung"]
    assert roi("roi:Lung_L.D0.03cc>60Gy, approval=UNAPPROVED") == ["adp lung"]
    assert roi("roi:Heart.max>1") == []  # no such ROI: no plan
    with pytest.raises(QueryError, match=r"V5Gy is neither .*\(configured: V20Gy, D0.03cc\)"):
        parse_where(["roi:Lung*.V5Gy>3"], ("V20Gy", "D0.03cc"))


def test_sorting_puts_unknown_values_last(conn: sqlite3.Connection) -> None:
    assert labels(conn, sort="-max_dose") == ["ADP_PROST", "H&N", "adp lung", "Breast"]


@pytest.mark.parametrize("bad, message", [
    ("dose>5", "unknown field 'dose'"), ("max_dose>high", "'high' is not a dose"),
    ("fractions~3", "~ is for text fields"), ("received<soon", "is not a date"), ("label", "is not FIELD OP VALUE"),
])
def test_bad_filters_say_what_is_wrong(bad: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse_where([bad])


def test_values_are_bound_never_pasted(conn: sqlite3.Connection) -> None:
    assert labels(conn, "label=x' OR '1'='1") == []


def test_breast_plan_facts() -> None:
    p = read_plan(DATA / "breast_boost" / "rtplan.dcm")
    assert (p.label, p.machines, p.fractions, len(p.beams)) == ("B1", ("txmachine",), 7, 4)
    assert [b.mu for b in p.beams] == [97.0, 87.0, 89.0, 94.0] and p.total_mu == 367.0
    assert p.technique == "IMRT" and p.prescription is not None and p.prescription.prescription_gy == 14.0
    assert p.dose_per_fraction_gy == 2.0


def arc_plan(leaf_moves: bool) -> Dataset:
    ds = pydicom.dcmread(DATA / "pydicom" / "rtplan.dcm")
    beam = ds.BeamSequence[0]
    cps = []
    for i, angle in enumerate((181.0, 270.0, 0.0, 179.0)):
        cp = Dataset()
        cp.GantryAngle = angle
        cp.GantryRotationDirection = "CW" if i == 0 else None
        lim = Dataset()
        lim.RTBeamLimitingDeviceType = "MLCX"
        lim.LeafJawPositions = [-10 - (i if leaf_moves else 0), 10]
        cp.BeamLimitingDevicePositionSequence = Sequence([lim])
        cps.append(cp)
    beam.ControlPointSequence = Sequence(cps)
    return ds


def test_arc_techniques() -> None:
    vmat, arc = read_plan(arc_plan(True)), read_plan(arc_plan(False))
    assert (vmat.technique, arc.technique) == ("VMAT", "arc")
    assert (vmat.beams[0].gantry_start, vmat.beams[0].gantry_stop, vmat.beams[0].gantry_direction) == \
        (181.0, 179.0, "CW")


def test_ion_plan_is_read_as_ion() -> None:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.481.8"
    ds.RTPlanLabel = "PBS"
    beam = Dataset()
    beam.BeamNumber, beam.BeamName, beam.RadiationType, beam.TreatmentMachineName = 1, "G90", "PROTON", "GTR1"
    cp = Dataset()
    cp.NominalBeamEnergy = 150.0
    beam.IonControlPointSequence = Sequence([cp])
    ds.IonBeamSequence = Sequence([beam])
    p = read_plan(ds)
    assert p.ion and p.technique == "ion" and p.beams[0].energy_unit == "MeV" and p.machines == ("GTR1",)
