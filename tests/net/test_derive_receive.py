"""[DERIVE] ``[receiver] split_enhanced = true``: an Enhanced MR received is stored as sent, and its classic images
beside it (through ingest, source "derived"); one without functional groups is kept and logged, not split."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom

from derive_support import MR_IMAGE, image, save
from helpers import Serve, station_toml, storescu, stored_files, wait_for, write_config


def _enhanced(tmp: Path, functional_groups: bool = True) -> Path:
    classic = [pydicom.dcmread(save(image(MR_IMAGE, f"1.2.3.6.{k + 1}", "1.2.3.6.100", "1.2.3.6.200", "1.2.3.6.300",
                                          rows=32, cols=32, ipp=(0, 0, 3.0 * k), number=k + 1, seed=k),
                                    tmp / f"mr{k}.dcm")) for k in range(5)]
    mf = hd.legacy.LegacyConvertedEnhancedMRImage(classic, "1.2.3.6.500", 7, "1.2.3.6.501", 1)
    if not functional_groups:
        mf.SOPInstanceUID = mf.file_meta.MediaStorageSOPInstanceUID = "1.2.3.6.502"
        del mf.SharedFunctionalGroupsSequence, mf.PerFrameFunctionalGroupsSequence
    path = tmp / ("mf.dcm" if functional_groups else "mf-nofg.dcm")
    mf.save_as(path, enforce_file_format=True)
    return path


def _derived(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "index.sqlite") as conn:
        return [r[0] for r in conn.execute("SELECT path FROM instances WHERE source='derived' ORDER BY path")]


def test_enhanced_received_is_kept_and_split(tmp_path: Path, data_dir: Path, port: int) -> None:
    config = write_config(tmp_path / "rt.toml", station_toml(data_dir, port, receiver="split_enhanced = true"))
    good, bad = _enhanced(tmp_path), _enhanced(tmp_path, functional_groups=False)
    serve = Serve(config, tmp_path / "serve.log").start()
    try:
        storescu(port, [good, bad], extra=("-R",))  # -R: Legacy Converted Enhanced MR is not in its default list
        wait_for(lambda: len(_derived(data_dir)) == 5, 60, what="5 classic images in the index")
        wait_for(lambda: "not split" in serve.text(), 30, what="the refusal in the log")
    finally:
        serve.stop()
    files = stored_files(data_dir)
    assert len(files) == 7  # both originals, as sent, and the 5 classic images of the good one
    mf = pydicom.dcmread(good)
    classic = sorted((pydicom.dcmread(data_dir / "store" / p) for p in _derived(data_dir)),
                     key=lambda d: d.InstanceNumber)
    frames = mf.pixel_array
    for k, ds in enumerate(classic):
        assert ds.SOPClassUID == MR_IMAGE and np.array_equal(ds.pixel_array, frames[k])
        assert ds.StudyInstanceUID == mf.StudyInstanceUID
    assert "1.2.3.6.502" in serve.text() and "has no functional groups" in serve.text()
