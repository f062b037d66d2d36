"""``rtstation send --transform overlay:ROI``: a viewer that cannot show RTSTRUCT receives the CT series with the
contours as overlay planes (DCMTK storescp as the viewer), while the store keeps its originals byte for byte."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pydicom
from pydicom.pixels import unpack_bits

from derive_support import NELMS_SPHERE, nelms_ct
from helpers import free_port, rtstation, station_toml, write_config
from peers import StoreSCP
from rulestools import node_toml


def _digests(root: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.dcm"))}


def test_a_viewer_gets_the_ct_with_the_sphere_as_overlay_and_the_store_keeps_its_originals(tmp_path: Path) -> None:
    viewer = StoreSCP(tmp_path / "viewer", aet="VIEWER").start()
    try:
        cfg = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", free_port(), extra=node_toml(
            "VIEWER", f"VIEWER@127.0.0.1:{viewer.port}")))
        ct = nelms_ct(tmp_path / "ct")
        rtstation("import", str(tmp_path / "ct"), str(NELMS_SPHERE), config=cfg)
        before = _digests(tmp_path / "var" / "store")
        out = rtstation("send", "--patient", "MP15-067", "--to", "VIEWER", "--transform", "overlay:sphere*", "--wait",
                        config=cfg)
        assert "done" in out.stdout, out.stdout
        got = [pydicom.dcmread(p) for p in viewer.files()]
        cts = [d for d in got if d.Modality == "CT"]
        assert len(cts) == len(ct) and len(got) == len(ct) + 1
        drawn = [d for d in cts if unpack_bits(d[0x6000, 0x3000].value).any()]
        assert drawn and all(d.SeriesDescription.endswith("+ contours") for d in cts)
        [rs] = [d for d in got if d.Modality == "RTSTRUCT"]
        assert rs.SOPInstanceUID == pydicom.dcmread(NELMS_SPHERE).SOPInstanceUID
        assert _digests(tmp_path / "var" / "store") == before
        assert not list((tmp_path / "var" / "tmp").rglob("*.dcm"))  # the copies are gone after the attempt
    finally:
        viewer.stop()
