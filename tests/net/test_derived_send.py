"""Send jobs that carry derived objects ([DERIVE] N:M): ``seg`` on a node delivers the bundle plus a SEG that
dciodvfy accepts and that decodes to the ROI's mask; ``classic`` delivers an Enhanced CT as its classic images, bit
for bit; a job that failed half way sends, on its retry, only what the peer did not acknowledge (the SEG made again
with the same UIDs); the store never changes. DCMTK storescp and the raw reference SCP (``refscp``) as peers, in
fast and stock pynetdicom mode."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import pydicom

from derive_support import small_bundle
from helpers import free_port, rtstation, station_toml, write_config
from peers import StoreSCP
from rulestools import node_toml
from waiting import wait_for
from rtstation_tui.engine.config.model import load_config
from rtstation_tui.engine.derive.masks import group_masks, sort_images
from rtstation_tui.engine.derive.rois import group_rois, list_rois
from rtstation_tui.engine.transforms.base import apply_chain_mapped
from rtstation_tui.engine.transforms.registry import build_chain

DCIODVFY = Path("/usr/bin/dciodvfy")
SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def _digests(root: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.dcm"))}


def _station(tmp: Path, node: str) -> Path:
    return write_config(tmp / "rt.toml", station_toml(tmp / "var", free_port(), extra=node))


def _dciodvfy_errors(path: Path) -> list[str]:
    if not DCIODVFY.exists():
        raise AssertionError("dciodvfy missing at /usr/bin/dciodvfy: run scripts/install-peers.sh (dicom3tools)")
    proc = subprocess.run([str(DCIODVFY), str(path)], capture_output=True, text=True, timeout=60)
    return [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("Error")]


def test_a_node_with_seg_gets_the_bundle_and_a_seg_of_the_roi_and_a_second_send_sends_nothing(tmp_path) -> None:
    viewer = StoreSCP(tmp_path / "rx", aet="AITOOL").start()
    try:
        cfg = _station(tmp_path, node_toml("AITOOL", f"AITOOL@127.0.0.1:{viewer.port}")
                       + 'transforms = ["seg:PTV"]\n')
        files = small_bundle(tmp_path / "src")
        rtstation("import", str(tmp_path / "src"), config=cfg)
        before = _digests(tmp_path / "var" / "store")
        out = rtstation("send", "--patient", "SEGSEND", "--to", "AITOOL", "--wait", config=cfg).stdout
        assert "5 instances as seg:PTV → 5 objects + 1 derived" in out and ": done" in out, out
        got = {p: pydicom.dcmread(p) for p in viewer.files()}
        sources = [pydicom.dcmread(f) for f in files]
        [(seg_file, seg)] = [(p, d) for p, d in got.items() if d.SOPClassUID == SEG_CLASS]
        assert {str(d.SOPInstanceUID) for d in got.values()} == {str(s.SOPInstanceUID) for s in sources} | {
            str(seg.SOPInstanceUID)}
        assert _dciodvfy_errors(seg_file) == []
        images, rs = sort_images(sources[:4]), sources[4]
        [mask] = group_masks(rs, images, [g for g in group_rois(list_rois(rs), False) if g.label == "PTV"])
        pixels = hd.seg.Segmentation.from_dataset(seg).get_pixels_by_source_instance(
            [str(i.SOPInstanceUID) for i in images], assert_missing_frames_are_empty=True)
        assert mask.sum() > 100 and int((pixels[..., 0].astype(bool) != mask).sum()) == 0
        assert _digests(tmp_path / "var" / "store") == before
        assert not list((tmp_path / "var" / "tmp").rglob("*.dcm"))
        again = rtstation("send", "--patient", "SEGSEND", "--to", "AITOOL", "--wait", config=cfg).stdout
        assert "no job, 0 instances" in again and "5 already delivered" in again, again
        assert len(viewer.files()) == 6
    finally:
        viewer.stop()


def test_classic_sends_an_enhanced_ct_as_its_classic_images_bit_for_bit(tmp_path) -> None:
    viewer = StoreSCP(tmp_path / "rx", aet="OLDPACS").start()
    try:
        cfg = _station(tmp_path, node_toml("OLDPACS", f"OLDPACS@127.0.0.1:{viewer.port}"))
        cts = [pydicom.dcmread(f) for f in small_bundle(tmp_path / "src")[:4]]
        mf = hd.legacy.LegacyConvertedEnhancedCTImage(cts, "1.2.826.0.1.78.500", 8, "1.2.826.0.1.78.501", 1)
        (tmp_path / "mf").mkdir()
        mf.save_as(tmp_path / "mf" / "enhanced.dcm", enforce_file_format=True)
        rtstation("import", str(tmp_path / "mf"), config=cfg)
        before = _digests(tmp_path / "var" / "store")
        out = rtstation("send", "--sop", "1.2.826.0.1.78.501", "--to", "OLDPACS", "--transform", "classic", "--wait",
                        config=cfg).stdout
        assert "1 instances as classic → 4 derived" in out and ": done" in out, out
        got = sorted(map(pydicom.dcmread, viewer.files()), key=lambda d: float(d.ImagePositionPatient[2]))
        assert [d.SOPClassUID for d in got] == [cts[0].SOPClassUID] * 4
        assert [d.PixelData for d in got] == [c.PixelData for c in cts]
        assert [list(d.ImagePositionPatient) for d in got] == [list(c.ImagePositionPatient) for c in cts]
        assert _digests(tmp_path / "var" / "store") == before
        job = json.loads(rtstation("queue", "show", "1", "--json", config=cfg).stdout)
        assert (job["total"], job["derived"], job["done"]) == (4, 4, 4)
        assert [i["state"] for i in job["items"]] == ["input", "done", "done", "done", "done"]
    finally:
        viewer.stop()


def test_a_retry_after_a_mid_job_failure_sends_only_what_the_peer_did_not_acknowledge(tmp_path, refscp,
                                                                                      monkeypatch) -> None:
    monkeypatch.setenv("RTSTATION_STOCK_PYNETDICOM", "1")  # pynetdicom's own loops (the others ran fast)
    cfg = _station(tmp_path, node_toml("REF", f"REFSCP@127.0.0.1:{refscp.port}", retry="3x1s"))
    files = small_bundle(tmp_path / "src")
    sources = [pydicom.dcmread(f) for f in files]
    seg_uid = str(apply_chain_mapped(build_chain("seg", load_config(None)), sources)[-1].dataset.SOPInstanceUID)
    refuse = refscp.out / "refuse.json"  # out of resources (retried): the second CT and the SEG
    refuse.write_text(json.dumps({str(sources[1].SOPInstanceUID): 0xA700, seg_uid: 0xA700}))
    rtstation("import", str(tmp_path / "src"), config=cfg)
    send = subprocess.Popen([sys.executable, "-m", "rtstation_tui", "send", "--patient", "SEGSEND", "--to", "REF",
                             "--transform", "seg", "--wait", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (refscp.out / "refused.jsonl").exists()
                 and len((refscp.out / "refused.jsonl").read_text().splitlines()) == 2, 60, what="first attempt")
        refuse.unlink()
        stdout, stderr = send.communicate(timeout=60)
    finally:
        send.kill()
    assert send.returncode == 0 and ": done" in stdout, stdout + stderr
    received = [r["sop"] for r in refscp.received()]
    assert sorted(received) == sorted([str(s.SOPInstanceUID) for s in sources] + [seg_uid])  # each once
    assert received[-2:] == [str(sources[1].SOPInstanceUID), seg_uid]  # the retry: only the two refused
    job = json.loads(rtstation("queue", "show", "1", "--json", config=cfg).stdout)
    assert (job["state"], job["attempts"], job["total"], job["derived"], job["done"]) == ("done", 1, 6, 1, 6)


def test_a_seg_of_an_roi_the_structure_set_lacks_fails_the_job_by_name_and_sends_nothing(tmp_path) -> None:
    viewer = StoreSCP(tmp_path / "rx", aet="VIEW").start()
    try:
        cfg = _station(tmp_path, node_toml("VIEW", f"VIEW@127.0.0.1:{viewer.port}"))
        small_bundle(tmp_path / "src")
        rtstation("import", str(tmp_path / "src"), config=cfg)
        proc = rtstation("send", "--patient", "SEGSEND", "--to", "VIEW", "--transform", "seg:NOSUCH", "--wait",
                         config=cfg, check=False)
        assert proc.returncode == 1 and ": failed (seg:NOSUCH: structure set 1.2.826.0.1.77.900" in proc.stdout
        assert "no ROI matches the selection (names NOSUCH); the structure set has: PTV (PTV)" in proc.stdout
        assert viewer.files() == []
    finally:
        viewer.stop()


def test_a_rule_with_seg_sends_a_received_plan_with_its_seg(tmp_path) -> None:
    """Through ``serve``: a plan arrives from storescu, the rule matches, its target gets the bundle and the SEG."""
    from helpers import Serve, storescu
    from rtstation_tui.synthetic import make_patient

    viewer = StoreSCP(tmp_path / "rx", aet="AITOOL").start()
    server = None
    try:
        rule = '[[rules]]\nname = "AI gets SEG"\ntargets = ["AITOOL"]\ntransforms = ["seg"]\n'
        cfg = write_config(tmp_path / "rt.toml", station_toml(tmp_path / "var", port := free_port(), extra=node_toml(
            "AITOOL", f"AITOOL@127.0.0.1:{viewer.port}") + rule))
        patient = make_patient(tmp_path / "p", "RSEG1", label="SEG1", slices=2, rows=16, cols=16)
        server = Serve(cfg, tmp_path / "serve.log").start()
        storescu(port, patient.files, aet="ECLIPSE")
        wait_for(lambda: len(viewer.files()) == len(patient.files) + 1, 30, what="the bundle and its SEG")
        modalities = sorted(pydicom.dcmread(p, stop_before_pixels=True).Modality for p in viewer.files())
        assert modalities == ["CT", "CT", "RTDOSE", "RTPLAN", "RTSTRUCT", "SEG"]
        wait_for(lambda: "delivered to AITOOL (5 objects + 1 derived)" in server.text(), 10, what="the job's log")
    finally:
        if server is not None:
            server.stop()
        viewer.stop()
