"""Re-encoding a stored object for a peer that does not take its stored transfer syntax.

Why this exists: every SCP must accept Implicit VR Little Endian, and many accept nothing else; a station that
forwards what it received (Explicit VR Big Endian from an old modality, JPEG-LS, JPEG Lossless or Baseline from a
PACS) must still deliver it. The object is decoded once and handed to pynetdicom as a little-endian, uncompressed
dataset; pynetdicom then encodes it with the accepted context's syntax (explicit or implicit VR). Every UID is
kept (``decompress(generate_instance_uid=False)``): the RT references between objects must stay valid.

Big endian is the one case pydicom does not convert by itself: values of the binary "other" VRs (OW, OF, OL, OD,
OV) are kept as raw bytes in the file's byte order, and pynetdicom refuses to send a big-endian dataset on a
little-endian context. They are byte-swapped here, Pixel Data through ``pixel_array`` (which knows its layout).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian

_WORD = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}  # bytes per value of the binary VRs that have a byte order


class CannotTranscode(Exception):
    """This object cannot be made uncompressed little endian (no codec, corrupt pixel data): the reason in words."""


def uncompressed_little_endian(path: str | Path) -> Dataset:
    """The stored object at ``path`` as an uncompressed little-endian dataset with the same UIDs."""
    try:
        ds = pydicom.dcmread(path)
        ts = UID(ds.file_meta.TransferSyntaxUID)
        if ts.is_compressed:
            ds.decompress(generate_instance_uid=False)
        elif not ts.is_little_endian:
            _to_little_endian(ds)
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    except CannotTranscode:
        raise
    except Exception as exc:  # pydicom raises anything from its codecs: one object's problem, said in words
        name = _syntax_name(path)
        raise CannotTranscode(f"cannot decode {name} for a peer that accepts only uncompressed data: "
                              f"{type(exc).__name__}: {exc}") from exc
    return ds


def _to_little_endian(ds: Dataset) -> None:
    """Big endian → little endian in place: Pixel Data from its decoded values, other binary VRs swapped."""
    if "PixelData" in ds:
        bits = int(ds.get("BitsAllocated", 16))
        if bits == 1:
            raise CannotTranscode("1-bit Pixel Data in Explicit VR Big Endian cannot be converted")
        values = ds.pixel_array
        data = values.astype(values.dtype.newbyteorder("<"), copy=False).tobytes()
        ds.PixelData = data + b"\0" * (len(data) % 2)
        ds["PixelData"].VR = "OB" if bits == 8 else "OW"
    _swap_other(ds, top=True)
    ds.set_original_encoding(False, True)  # every element is decoded now: its values are no longer big endian


def _swap_other(ds: Dataset, top: bool) -> None:
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                _swap_other(item, top=False)
        elif elem.VR in _WORD and not (top and elem.tag == 0x7FE00010) and elem.value:
            raw = bytes(elem.value)
            size = _WORD[elem.VR]
            usable = len(raw) - len(raw) % size
            swapped = np.frombuffer(raw[:usable], dtype=f">u{size}").astype(f"<u{size}").tobytes()
            elem.value = swapped + raw[usable:]


def _syntax_name(path: str | Path) -> str:
    try:
        return UID(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID).name
    except Exception:
        return "its transfer syntax"
