"""Enhanced (multi-frame) MR / CT / PET → one classic image per frame, the job of dcm4che's ``emf2sf``.

Why: many viewers, PACS and planning systems read only classic single-frame images. Design after dcm4che's
``MultiframeExtractor``: copy the top level except what only a multi-frame object has, flatten the shared then the
frame's own functional groups into each image (position, orientation, spacing, thickness, rescale, window, timing),
ImageType from FrameType, EchoTime from EffectiveEchoTime, derived UIDs. Pixel data are copied as bytes: one frame's
slice of native data, or one frame's fragments re-wrapped for an encapsulated transfer syntax (never decoded).
An object without functional groups is refused: its frames have no known geometry and half a conversion would look
right and place slices wrongly.
"""

from __future__ import annotations

import copy
from typing import Iterator

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.sequence import Sequence as DSequence
from pydicom.uid import UID

from .uids import DERIVED_SERIES_NUMBER_OFFSET, derived_uid

MR, CT, PET = "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.128"
CLASSIC_OF = {
    "1.2.840.10008.5.1.4.1.1.4.1": MR,  # Enhanced MR
    "1.2.840.10008.5.1.4.1.1.4.4": MR,  # Legacy Converted Enhanced MR
    "1.2.840.10008.5.1.4.1.1.2.1": CT,  # Enhanced CT
    "1.2.840.10008.5.1.4.1.1.2.2": CT,  # Legacy Converted Enhanced CT
    "1.2.840.10008.5.1.4.1.1.130": PET,  # Enhanced PET
    "1.2.840.10008.5.1.4.1.1.128.1": PET,  # Legacy Converted Enhanced PET
}
# top-level attributes only a multi-frame object has
EXCLUDED = {"PixelData", "NumberOfFrames", "SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence",
            "DimensionIndexSequence", "DimensionOrganizationSequence", "DimensionOrganizationType",
            "ExtendedOffsetTable", "ExtendedOffsetTableLengths", "SourceImageEvidenceSequence",
            "ReferencedImageEvidenceSequence", "FrameIncrementPointer", "ConcatenationUID",
            "ConcatenationFrameOffsetNumber", "InConcatenationNumber", "InConcatenationTotalNumber",
            "RepresentativeFrameNumber", "ContentQualification",
            "ReferencedSeriesSequence",  # the multi-frame's common instance references; SourceImageSequence says it
            # Enhanced image module attributes without a classic counterpart (dciodvfy: "not in the IOD")
            "PixelPresentation", "VolumetricProperties", "VolumeBasedCalculationTechnique", "ComplexImageComponent",
            "AcquisitionContrast", "AcquisitionContextSequence"}
# functional group macros not flattened element by element (FrameContentSequence by _frame_content; the
# legacy converter's references to its classic sources)
NOT_FLATTENED = {"FrameContentSequence", "ConversionSourceAttributesSequence"}
RENAMED = {"FrameType": 0x00080008, "EffectiveEchoTime": 0x00180081}  # → ImageType, EchoTime
NEEDED = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")


class EnhancedError(ValueError):
    """An object that cannot be split, with the reason (nothing is half converted)."""


def _flatten(target: Dataset, groups: Dataset) -> None:
    """Copy each functional group macro's item elements onto the image's top level."""
    for macro in groups:
        if macro.VR != "SQ" or not macro.value or macro.keyword in NOT_FLATTENED:
            if macro.keyword == "FrameContentSequence" and macro.value:
                _frame_content(target, macro.value[0])
            continue
        for elem in macro.value[0]:
            if macro.keyword.endswith("FrameTypeSequence") and elem.keyword != "FrameType":
                continue  # PixelPresentation, VolumetricProperties...: Enhanced-only, no classic counterpart
            renamed = RENAMED.get(elem.keyword)
            if renamed is not None:
                target[renamed] = DataElement(renamed, elem.VR, copy.deepcopy(elem.value))
            else:
                target[elem.tag] = copy.deepcopy(elem)


def _classic_terms(image: Dataset, classic: str) -> None:
    """Enhanced MR names with a different classic one: ResonantNucleus is ImagedNucleus; RescaleType is part of
    Pixel Value Transformation in Enhanced MR and of no classic MR module (its intercept and slope are kept)."""
    if classic != MR:
        return
    if "ResonantNucleus" in image:
        if "ImagedNucleus" not in image:
            image.ImagedNucleus = image.ResonantNucleus
        del image.ResonantNucleus
    if "RescaleType" in image:
        del image.RescaleType


def _frame_content(target: Dataset, item: Dataset) -> None:
    if "FrameAcquisitionDateTime" in item:
        dt = str(item.FrameAcquisitionDateTime)
        target.AcquisitionDateTime = dt
        target.AcquisitionDate, target.AcquisitionTime = dt[:8], dt[8:] or "000000"
    if "FrameAcquisitionNumber" in item:
        target.AcquisitionNumber = int(item.FrameAcquisitionNumber)


def _frames(ds: Dataset, count: int) -> Iterator[bytes]:
    """Each frame's pixel bytes as stored: a native slice or the frame's fragments joined."""
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        yield from generate_frames(ds.PixelData, number_of_frames=count)
        return
    bits = int(ds.BitsAllocated)
    if bits % 8:
        raise EnhancedError(f"BitsAllocated {bits}: frames are not byte-aligned; not converted")
    size = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * bits // 8
    data = ds.PixelData
    if len(data) < size * count:
        raise EnhancedError(f"pixel data has {len(data)} bytes, {count} frames need {size * count}")
    for i in range(count):
        yield data[i * size:(i + 1) * size]


def check(ds: Dataset) -> str:
    """The classic SOP class ``ds`` splits into, or the reason it cannot."""
    sop = str(ds.get("SOPClassUID", ""))
    what = f"{ds.get('SOPInstanceUID', '?')} ({ds.get('Modality', '?')}, SOP class {sop or 'none'})"
    if sop not in CLASSIC_OF:
        raise EnhancedError(f"{what} is not an Enhanced or Legacy Converted Enhanced MR/CT/PET image")
    if "PixelData" not in ds:
        raise EnhancedError(f"{what} has no pixel data")
    shared = ds.get("SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if not shared and not per_frame:
        raise EnhancedError(f"{what} has no functional groups (SharedFunctionalGroupsSequence, "
                            "PerFrameFunctionalGroupsSequence): the frames' position, orientation and spacing are "
                            "unknown; not converted")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if per_frame is not None and len(per_frame) != frames:
        raise EnhancedError(f"{what}: NumberOfFrames {frames} but {len(per_frame)} per-frame functional groups")
    return CLASSIC_OF[sop]


def split_enhanced(ds: Dataset) -> list[Dataset]:
    """One classic image per frame of ``ds``, in frame order (InstanceNumber 1…N), in a new series whose UIDs
    are derived from the source's SOP Instance UID."""
    classic = check(ds)
    count = int(ds.get("NumberOfFrames", 1) or 1)
    shared = (ds.get("SharedFunctionalGroupsSequence") or [Dataset()])[0]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or [Dataset()] * count
    base = Dataset()
    for elem in ds:
        if elem.keyword not in EXCLUDED:
            base[elem.tag] = copy.deepcopy(elem)
    series_uid = derived_uid("classic", str(ds.SOPInstanceUID))
    ts = ds.file_meta.TransferSyntaxUID
    out = []
    for i, pixels in enumerate(_frames(ds, count)):
        image = copy.deepcopy(base)
        _flatten(image, shared)
        _flatten(image, per_frame[i])
        missing = [k for k in NEEDED if k not in image]
        if missing:
            raise EnhancedError(f"{ds.SOPInstanceUID} frame {i + 1}: no {', '.join(missing)} in its functional "
                                "groups; not converted")
        _classic_terms(image, classic)
        if len(image.get("ImageType", [])) == 4 and image.ImageType[3] == "NONE":
            image.ImageType = list(image.ImageType)[:3]  # FrameType's "no derived contrast", not a classic term
        image.SOPClassUID, image.SOPInstanceUID = classic, derived_uid(series_uid, str(i + 1))
        image.SeriesInstanceUID, image.InstanceNumber = series_uid, i + 1
        image.SeriesNumber = int(ds.get("SeriesNumber", 0) or 0) + DERIVED_SERIES_NUMBER_OFFSET
        image.DerivationDescription = f"Frame {i + 1} of {count} of {ds.SOPInstanceUID}, split by rtstation"
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
        ref.ReferencedFrameNumber = i + 1
        image.SourceImageSequence = DSequence([ref])
        if ts.is_encapsulated:
            image.PixelData = encapsulate([pixels])
            image["PixelData"].VR, image["PixelData"].is_undefined_length = "OB", True
        else:
            image.PixelData = pixels
            image["PixelData"].VR = ds["PixelData"].VR
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(classic)
        meta.MediaStorageSOPInstanceUID = image.SOPInstanceUID
        meta.TransferSyntaxUID = ts
        image.file_meta = meta
        out.append(image)
    return out
