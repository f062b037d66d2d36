"""``rtstation dvh``: the JSON contract, files or stored UIDs, and errors that name what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import DATA, station_toml, write_config
from rtstation_tui.cli import main

NELMS = DATA / "nelms"
BB = DATA / "breast_boost"


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    return write_config(tmp_path / "rtstation.toml", station_toml(tmp_path / "var", 1))


def run_json(capsys: pytest.CaptureFixture[str], conf: Path, *args: str) -> object:
    assert main(["--config", str(conf), "dvh", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_contract_one_entry_per_roi(capsys: pytest.CaptureFixture[str], conf: Path) -> None:
    data = run_json(capsys, conf, str(BB / "rtdose.dcm"), str(BB / "rtss.dcm"))
    assert isinstance(data, list)
    names = [e["roi"] for e in data]
    # every ROI that encloses a volume; Areola has no contour at all
    assert names == ["BODY", "Borders", "Breast", "Heart", "Lt Lung", "Nodes", "Scar", "Tumor Bed",
                     "Tumor Bed Block"]
    tb = data[names.index("Tumor Bed")]
    assert set(tb) >= {"roi", "volume_cc", "min_gy", "mean_gy", "max_gy", "d_gy", "dvh"}
    assert list(tb["d_gy"]) == ["99", "98", "95", "50", "5", "2", "1"]
    assert tb["min_gy"] <= tb["d_gy"]["99"] <= tb["d_gy"]["50"] <= tb["d_gy"]["1"] <= tb["max_gy"]
    assert 13 < tb["mean_gy"] < 15  # the boost target of a 7 x 2 Gy plan
    doses = [p[0] for p in tb["dvh"]]
    volumes = [p[1] for p in tb["dvh"]]
    assert doses == sorted(doses) and volumes == sorted(volumes, reverse=True)
    assert volumes[0] == pytest.approx(tb["volume_cc"], rel=1e-3) and volumes[-1] == 0


def test_roi_filter_and_unknown_roi(capsys: pytest.CaptureFixture[str], conf: Path) -> None:
    data = run_json(capsys, conf, str(NELMS / "Linear_SupInf_3mm_Aligned.dcm"), str(NELMS / "Cone_30_0.dcm"),
                    "--roi", "Cone_30_0")
    assert [e["roi"] for e in data] == ["Cone_30_0"]
    assert data[0]["mean_gy"] == pytest.approx(23.0658, rel=0.01)
    code = main(["--config", str(conf), "dvh", str(NELMS / "Linear_SupInf_3mm_Aligned.dcm"),
                 str(NELMS / "Cone_30_0.dcm"), "--roi", "Cone"])
    err = capsys.readouterr().err
    assert code == 1 and "no ROI named 'Cone'" in err and "Cone_30_0" in err


def test_stored_objects_by_uid(capsys: pytest.CaptureFixture[str], conf: Path) -> None:
    assert main(["--config", str(conf), "import", str(BB / "rtdose.dcm"), str(BB / "rtss.dcm"),
                 str(NELMS / "Linear_AntPost_3mm_Aligned.dcm"), str(NELMS / "Linear_SupInf_3mm_Aligned.dcm")]) == 0
    capsys.readouterr()
    import pydicom
    dose = str(pydicom.dcmread(BB / "rtdose.dcm", stop_before_pixels=True).SOPInstanceUID)
    struct = str(pydicom.dcmread(BB / "rtss.dcm", stop_before_pixels=True).SOPInstanceUID)
    data = run_json(capsys, conf, dose, struct, "--roi", "Heart")
    assert data[0]["roi"] == "Heart" and data[0]["volume_cc"] > 100
    # the two nelms doses share one SOP Instance UID: which one is meant cannot be guessed
    nelms = str(pydicom.dcmread(NELMS / "Linear_AntPost_3mm_Aligned.dcm", stop_before_pixels=True).SOPInstanceUID)
    assert main(["--config", str(conf), "dvh", nelms, str(NELMS / "Cone_30_0.dcm")]) == 1
    assert "2 different versions" in capsys.readouterr().err
    assert main(["--config", str(conf), "dvh", struct, struct]) == 1
    assert "is a stored RTSTRUCT, not an RTDOSE" in capsys.readouterr().err


def test_metrics_cli_formats_and_errors(capsys: pytest.CaptureFixture[str], conf: Path) -> None:
    assert main(["--config", str(conf), "import", *map(str, sorted(BB.glob("*.dcm")))]) == 0
    assert main(["--config", str(conf), "metrics", "--dvh", "B1"]) == 1  # not computed yet: said so
    assert "no metrics yet" in capsys.readouterr().err
    assert main(["--config", str(conf), "metrics", "--update", "--csv", "--columns", "label,energy,mu,max_dose"]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines() == ["label,energy,mu,max_dose", 'B1,"6,10",367,14.6808']
    assert "metrics: 1 plans computed" in out.err
    assert main(["--config", str(conf), "metrics", "--update"]) == 0  # nothing changed: nothing recomputed
    assert "metrics: 0 plans computed" in capsys.readouterr().err
    assert main(["--config", str(conf), "metrics", "--columns", "label,dose"]) == 2
    assert "--columns: unknown field 'dose'" in capsys.readouterr().err
    assert main(["--config", str(conf), "metrics", "--where", "mu>>3"]) == 2
    assert "'>3' is not a number" in capsys.readouterr().err
    for where, found in (("roi:Tumor Bed.D95>14Gy", ["B1"]), ("roi:heart.max>5Gy", []),
                         ("roi:Lt*.mean<1Gy and machine=txmachine", ["B1"])):
        assert main(["--config", str(conf), "metrics", "--where", where, "--json"]) == 0
        assert [p["label"] for p in json.loads(capsys.readouterr().out)] == found, where
    assert main(["--config", str(conf), "metrics", "--where", "roi:Lt Lung.V20Gy>10"]) == 2
    assert "(configured: none)" in capsys.readouterr().err
    assert main(["--config", str(conf), "metrics", "--dvh", "B1"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].startswith("ROI") and "Tumor Bed" in table
