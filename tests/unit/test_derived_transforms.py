"""``seg`` and ``classic`` as outgoing transforms: N objects in, M out, each output saying which stored object it
stands for; chained with ``anonymize`` before or after, the SEG's references name the images that go out."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import pydicom
import pytest

from derive_support import CT_IMAGE, small_bundle
from rtstation_tui.engine.config.model import load_config, parse_config
from rtstation_tui.engine.config.transforms import encode_chain, reads_bundle, spec_problem
from rtstation_tui.engine.transforms.base import TransformError, apply_chain, apply_chain_mapped, derives
from rtstation_tui.engine.transforms.registry import build_chain, build_transform


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in small_bundle(tmp_path_factory.mktemp("segsend"))]


def _chain(specs: list[str], tmp: Path | None = None):  # type: ignore[no-untyped-def]
    config = load_config(None) if tmp is None else parse_config(
        {"station": {"data_dir": str(tmp)}, "anonymize": {"key": "seg-chain-key-0123456789"}}, "test.toml")
    return build_chain(encode_chain(specs), config)


def test_seg_sends_every_object_as_it_is_plus_a_seg_that_decodes_to_the_roi(bundle) -> None:
    made = apply_chain_mapped(_chain(["seg:PTV"]), bundle)
    assert [m.source for m in made] == [0, 1, 2, 3, 4, None]
    assert all(m.dataset is o for m, o in zip(made, bundle))  # passed through: the stored file goes out
    seg = made[-1].dataset
    assert seg.Modality == "SEG" and seg.SeriesInstanceUID not in {o.SeriesInstanceUID for o in bundle}
    pixels = hd.seg.Segmentation.from_dataset(seg).get_pixels_by_source_instance(
        [str(o.SOPInstanceUID) for o in bundle[:4]], assert_missing_frames_are_empty=True)
    per_slice = pixels[..., 0].reshape(4, -1).sum(axis=1)
    assert per_slice[0] == per_slice[3] == 0 and per_slice[1] > 50 and per_slice[2] > 50
    again = apply_chain_mapped(_chain(["seg:PTV"]), bundle)[-1].dataset  # a retry makes the very same object
    assert (again.SOPInstanceUID, again.SeriesInstanceUID) == (seg.SOPInstanceUID, seg.SeriesInstanceUID)
    copies = apply_chain(_chain(["seg"]), bundle)  # exports: objects only, never the stored ones themselves
    assert len(copies) == 6 and all(c is not o and c == o for c, o in zip(copies, bundle))


def test_seg_refuses_with_the_reason_and_never_a_partial_set(bundle) -> None:
    with pytest.raises(TransformError, match="no structure set with its images"):
        apply_chain_mapped(_chain(["seg"]), bundle[:4])
    with pytest.raises(TransformError, match=r"no ROI matches the selection \(names NOSUCH\); the structure set has: PTV \(PTV\), Cord"):
        apply_chain_mapped(_chain(["seg:NOSUCH"]), bundle)
    with pytest.raises(TransformError, match="^seg:NOSUCH: structure set 1.2.826.0.1.77.900"):  # the step is named in a chain
        apply_chain_mapped(_chain(["set:InstitutionName=X", "seg:NOSUCH"]), bundle)


@pytest.mark.parametrize("specs", [["anonymize", "seg"], ["seg", "anonymize"]], ids=["before", "after"])
def test_anonymize_before_or_after_seg_keeps_the_seg_pointing_at_the_images_sent(specs, bundle, tmp_path) -> None:
    made = apply_chain_mapped(_chain(specs, tmp_path), bundle)
    *out, seg = [m.dataset for m in made]
    assert made[-1].source is None and len(out) == 5
    sent_ct = {str(o.SOPInstanceUID) for o in out if o.Modality == "CT"}
    assert not sent_ct & {str(o.SOPInstanceUID) for o in bundle}  # new UIDs
    refs = {str(ref.ReferencedSOPInstanceUID) for frame in seg.PerFrameFunctionalGroupsSequence
            for der in frame.DerivationImageSequence for ref in der.SourceImageSequence}
    assert refs and refs <= sent_ct
    assert str(seg.ReferencedSeriesSequence[0].SeriesInstanceUID) == str(out[0].SeriesInstanceUID)
    assert (seg.PatientID, seg.StudyInstanceUID, seg.FrameOfReferenceUID) == (
        out[0].PatientID, out[0].StudyInstanceUID, out[0].FrameOfReferenceUID)
    assert seg.PatientID != bundle[0].PatientID


def test_classic_replaces_an_enhanced_image_by_its_frames_and_passes_the_rest(bundle, tmp_path) -> None:
    mf = hd.legacy.LegacyConvertedEnhancedCTImage(bundle[:4], "1.2.826.0.1.77.500", 8, "1.2.826.0.1.77.501", 1)
    made = apply_chain_mapped(_chain(["classic"]), [bundle[4], mf])
    assert [m.source for m in made] == [0, None, None, None, None]
    assert made[0].dataset is bundle[4]
    frames = sorted((m.dataset for m in made[1:]), key=lambda d: float(d.ImagePositionPatient[2]))
    assert [f.PixelData for f in frames] == [o.PixelData for o in bundle[:4]]
    assert {f.SOPClassUID for f in frames} == {CT_IMAGE}
    flat = pydicom.Dataset()
    flat.SOPClassUID, flat.SOPInstanceUID, flat.Modality = "1.2.840.10008.5.1.4.1.1.2.1", "1.2.3.77", "CT"
    flat.PixelData = b"\0\0"
    with pytest.raises(TransformError, match="classic: 1.2.3.77 .* no functional groups"):
        apply_chain_mapped(_chain(["classic"]), [flat])


def test_specs_and_chain_kinds() -> None:
    assert spec_problem("seg:PTV*,CTV") is None and spec_problem("classic") is None
    assert "no argument" in (spec_problem("classic:x") or "")
    assert "seg[:ROI,...]" in (spec_problem("sepia") or "") and "classic" in (spec_problem("sepia") or "")
    assert reads_bundle(encode_chain(["anonymize", "seg"])) and not reads_bundle("classic")
    assert derives(_chain(["classic"])) and derives(_chain(["seg"])) and not derives(_chain(["overlay"]))
    assert "SEG" in build_transform("seg:PTV", load_config(None)).describe()


def _job(tmp: Path, files: list[Path], chain: str, inputs: list[Path] = ()):  # type: ignore[no-untyped-def]
    from rtstation_tui.engine.config.nodes import NodeConfig
    from rtstation_tui.engine.outbound.queue import JobQueue, NewItem

    queue = JobQueue(tmp / "var")
    items = [NewItem(str(d.SOPInstanceUID), str(d.SOPClassUID), str(d.Modality), str(f), f.stat().st_size,
                     str(d.file_meta.TransferSyntaxUID)) for f, d in ((f, pydicom.dcmread(f)) for f in files)]
    job_id = queue.add_job(NodeConfig(name="AI", ae_title="AI", host="127.0.0.1"), items, transform=chain,
                           inputs=[str(p) for p in inputs])
    config = parse_config({"station": {"data_dir": str(tmp / "var")}}, "test.toml")
    return queue, job_id, config


def test_a_seg_job_for_a_bundle_the_node_partly_has_sends_the_rest_and_one_seg_at_every_attempt(tmp_path) -> None:
    """The node has every object but the second CT (delivered before: ``input`` rows): the copies settle the job
    to that CT, sent from its stored file, and the SEG; a second attempt finds the SEG's row again."""
    from rtstation_tui.engine.outbound.outgoing import prepare

    files = small_bundle(tmp_path / "src")
    queue, job_id, config = _job(tmp_path, files, "seg", inputs=[f for k, f in enumerate(files) if k != 1])
    first = prepare(config, queue, queue.job(job_id))
    job, rows = queue.job(job_id), queue.items(job_id)
    assert (job.total, job.derived, job.objects) == (2, 1, "1 object + 1 derived")
    assert [(r.state, r.derived, r.modality) for r in rows] == [("input", 0, "CT"), ("queued", 0, "CT")] + [
        ("input", 0, "CT")] * 2 + [("input", 0, "RTSTRUCT"), ("queued", 1, "SEG")]
    assert first[1] == str(files[1]) and Path(first[5]).exists() and set(first) == {1, 5}
    again = prepare(config, queue, queue.job(job_id))
    assert set(again) == {1, 5} and len(queue.items(job_id)) == 6
    assert (pydicom.dcmread(again[5]).SOPInstanceUID == pydicom.dcmread(first[5]).SOPInstanceUID
            == queue.items(job_id)[5].sop_uid)
    queue.close()


def test_seg_on_a_multi_frame_image_is_refused_by_name(bundle) -> None:
    mf = hd.legacy.LegacyConvertedEnhancedCTImage(bundle[:4], "1.2.826.0.1.77.100", 8, "1.2.826.0.1.77.601", 1)
    with pytest.raises(TransformError, match="multi-frame image 1.2.826.0.1.77.601"):
        apply_chain_mapped(_chain(["seg"]), [mf, bundle[4]])


def test_rules_and_nodes_take_seg_and_classic_and_a_bad_one_is_named_when_the_config_is_read() -> None:
    import tomllib

    from rtstation_tui.engine.config.checks import ConfigError

    text = ('[[nodes]]\nname="AI"\nae_title="AI"\nhost="h"\ntransforms=["classic"]\n'
            '[[rules]]\nname="r"\ntargets=["AI"]\ntransforms=["anonymize", "seg:PTV*,CTV"]\n')
    config = parse_config(tomllib.loads(text), "rt.toml", Path("/tmp"))
    assert config.rules[0].transforms == ("anonymize", "seg:PTV*,CTV") and config.nodes[0].transforms == ("classic",)
    with pytest.raises(ConfigError) as err:
        parse_config(tomllib.loads(text.replace('["classic"]', '["classic:fast"]')), "rt.toml", Path("/tmp"))
    assert "nodes[0] ('AI').transforms[0]" in str(err.value) and "classic takes no argument" in str(err.value)


def test_seg_and_overlay_in_one_chain_are_refused_with_the_reason() -> None:
    """Either order would send a SEG whose images the node does not get (or find none): refused, not guessed."""
    import tomllib

    from rtstation_tui.engine.config.checks import ConfigError

    for specs in (["overlay", "seg"], ["seg:PTV", "anonymize", "overlay:PTV"]):
        with pytest.raises(TransformError, match="seg and overlay in one chain"):
            _chain(specs)
    text = '[[nodes]]\nname="AI"\nae_title="AI"\nhost="h"\ntransforms=["seg", "overlay"]\n'
    with pytest.raises(ConfigError, match=r"nodes\[0\] \('AI'\).transforms.*send them to two nodes"):
        parse_config(tomllib.loads(text), "rt.toml", Path("/tmp"))


def test_a_rule_export_with_seg_holds_the_bundle_and_its_seg(tmp_path) -> None:
    from rtstation_tui.engine.config.rules import RuleConfig
    from rtstation_tui.engine.outbound.export import export_bundle

    files = small_bundle(tmp_path / "src")
    rule = RuleConfig(name="r", export="/unused/{plan_label}", transforms=("seg:PTV",))
    done = export_bundle(load_config(None), rule, files, tmp_path / "out" / "EX")
    assert done.files == 6
    assert sorted(pydicom.dcmread(p).Modality for p in Path(done.path).iterdir()) == ["CT"] * 4 + [
        "RTSTRUCT", "SEG"]
