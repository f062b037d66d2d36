"""[QR] the Remote screen's plan list from C-FIND answers: objects counted along the chain the answers name, and a
lower bound (``counted`` False) when the node answers no references (DCMTK dcmqrscp answers none)."""

from __future__ import annotations

from pydicom.dataset import Dataset

from rtstation_tui.engine.qr.pull import list_plans, machines


def ds(**kw: object) -> Dataset:
    out = Dataset()
    for k, v in kw.items():
        setattr(out, k, v)
    return out


def node(references: bool):
    """A Finder over one study: CT (3 images), RTSTRUCT, RTPLAN, RTDOSE; references answered or not."""
    series = [ds(SeriesInstanceUID="ct", Modality="CT", NumberOfSeriesRelatedInstances="3"),
              ds(SeriesInstanceUID="rs", Modality="RTSTRUCT", NumberOfSeriesRelatedInstances="1"),
              ds(SeriesInstanceUID="rp", Modality="RTPLAN", NumberOfSeriesRelatedInstances="1"),
              ds(SeriesInstanceUID="rd", Modality="RTDOSE", NumberOfSeriesRelatedInstances="1")]
    beam = ds(TreatmentMachineName="TrueBeam1")
    plan = ds(SOPInstanceUID="plan", RTPlanLabel="A1", ApprovalStatus="APPROVED", BeamSequence=[beam, beam])
    struct = ds(SOPInstanceUID="struct")
    dose = ds(SOPInstanceUID="dose")
    if references:
        plan.ReferencedStructureSetSequence = [ds(ReferencedSOPInstanceUID="struct")]
        struct.ReferencedFrameOfReferenceSequence = [ds(RTReferencedStudySequence=[ds(
            RTReferencedSeriesSequence=[ds(SeriesInstanceUID="ct")])])]
        dose.ReferencedRTPlanSequence = [ds(ReferencedSOPInstanceUID="plan")]
    images = {"rp": [plan], "rs": [struct], "rd": [dose], "ct": []}

    def find(identifier: Dataset, level: str) -> list[Dataset]:
        if level == "study":
            return [ds(StudyInstanceUID="st")]
        if level == "series":
            return series
        return images[str(identifier.SeriesInstanceUID)]

    return find


def test_objects_along_the_answered_chain() -> None:
    [(plan, objects, counted)] = list_plans(node(references=True), "P1")
    assert (str(plan.RTPlanLabel), objects, counted) == ("A1", 1 + 1 + 3 + 1, True)
    assert machines(plan) == "TrueBeam1"


def test_a_node_without_references_gives_a_lower_bound() -> None:
    [(_, objects, counted)] = list_plans(node(references=False), "P1")
    assert (objects, counted) == (1, False)
