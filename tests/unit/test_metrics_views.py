"""What the console gets from the metrics: plain frozen rows and DVH curves in % of each ROI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from helpers import DATA, station_toml, write_config
from rtstation_tui.cli import main
from rtstation_tui.engine.config.model import load_config
from rtstation_tui.engine.metrics import views
from rtstation_tui.engine.metrics.query import QueryError
from rtstation_tui.engine.metrics.update import update_all
from rtstation_tui.engine.store.index import Index


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Index:
    tmp = tmp_path_factory.mktemp("views")
    conf = write_config(tmp / "rtstation.toml", station_toml(tmp / "var", 1))
    assert main(["--config", str(conf), "import", *map(str, sorted((DATA / "breast_boost").glob("*.dcm")))]) == 0
    index = Index(tmp / "var")
    assert update_all(index, load_config(conf)) == 1
    return index


def test_plan_rows_are_plain_data(index: Index) -> None:
    [b1] = views.plan_metrics(index.conn, ["machine=txmachine"])
    assert (b1.label, b1.fractions, b1.total_mu, b1.prescription_gy) == ("B1", 7, 367.0, 14.0)
    assert [(b.name, b.mu, b.gantry) for b in b1.beams] == [("3 RAO", 97.0, "327"), ("4 AP", 87.0, "0"),
                                                             ("5 LAO", 89.0, "56"), ("6 LPO", 94.0, "150")]
    json.dumps(dataclasses.asdict(b1))  # travels as JSON to a remote console
    assert views.plan_metrics(index.conn, ["max_dose>20Gy"]) == []
    with pytest.raises(QueryError):
        views.plan_metrics(index.conn, ["dose>1"])


def test_dvh_curves_in_percent(index: Index) -> None:
    [b1] = views.plan_metrics(index.conn)
    curves = {c.roi: c for c in views.dvh_curves(index.conn, b1.plan_uid)}
    assert "Areola" not in curves and {"BODY", "Heart", "Tumor Bed"} <= set(curves)
    tb = curves["Tumor Bed"]
    assert tb.volumes[0] == pytest.approx(100.0) and tb.volumes[-1] == pytest.approx(0.0, abs=0.5)
    assert len(tb.doses) == len(tb.volumes) <= 200 and tb.doses[-1] >= tb.max_gy - 0.02
    assert list(tb.volumes) == sorted(tb.volumes, reverse=True)
    assert tb.d95_gy is not None and 14.0 < tb.d95_gy < 14.3
    assert views.dvh_curves(index.conn, "1.2.3.unknown") == []
