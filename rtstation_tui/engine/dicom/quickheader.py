"""A pydicom-free header read for plain images (CT, MR, PT, ...): the common case of the receive path.

Why: after pynetdicom's polling was removed (``dimse/acceptor.py``), ``pydicom.dcmread`` of each received header became
the largest single cost on the C-STORE response path (~25% of the GIL time in a py-spy profile of a 1000-slice
receive, see README "Benchmarks"). A planning CT is hundreds of objects whose header holds nothing but a dozen
identity values; walking its top-level elements and reading those values directly is several times cheaper.

Only what is certain is done here: a Part-10 file in a little-endian, non-deflated transfer syntax, whose top
level has none of the attributes that make ``dicomfile.info_from_dataset`` look deeper (references, plan facts,
RT descriptions), with plain ASCII values in a character set where ASCII means ASCII. Anything else returns None
and ``dicomfile.read_header`` does the full pydicom read, so the result is always what pydicom would give
(``tests/test_quickheader.py`` compares the two on every test file). Structure checks stay in ``structure.py``.
"""

from __future__ import annotations

import os
import re
import struct
from typing import NamedTuple

from pydicom.uid import UID

from .header import InstanceInfo
from .sopclass import modality_for_sop_class

MAX_HEADER = 1 << 20  # bytes before pixel data; more than that is not a plain image header
FIRST_READ = 16384
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXELS = 0x7FE00008  # stop_before_pixels stops at the first of (7FE0,0008/0009/0010)
IMPLICIT_LE, EXPLICIT_BE = "1.2.840.10008.1.2", "1.2.840.10008.1.2.2"
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_HH, _U16, _U32 = struct.Struct("<HH"), struct.Struct("<H"), struct.Struct("<I")
_NESTED = (b"SQ", b"UN")  # VRs whose value lengthwalk descends into
_INT = re.compile(rb"\s*[+-]?\d{1,10}\s*")
# values this module reads: (group << 16 | element) -> field
WANTED = {
    0x00080005: "charset", 0x00080016: "sop_class", 0x00080018: "sop_uid", 0x00080060: "modality",
    0x0008103E: "series_description", 0x00100010: "patient_name", 0x00100020: "patient_id",
    0x0020000D: "study_uid", 0x0020000E: "series_uid", 0x00200013: "instance_number", 0x00200052: "frame_of_ref",
}
# top-level attributes that make info_from_dataset read references or plan facts: leave those files to pydicom
DEEPER = {0x00081115, 0x00700308, 0x300A0002, 0x300C0002, 0x300C0060}
DEEPER_MODALITIES = {"RTPLAN", "RTSTRUCT", "RTDOSE", "RTIMAGE", "REG", "RTRECORD", "RTTREAT", "RTION", ""}
ASCII_CHARSETS = {b"", b"ISO_IR 6", b"ISO_IR 100", b"ISO_IR 192"}


class _NotPlain(Exception):
    """This file is not one the quick read is sure about: use pydicom."""


class _Buffer:
    """The file's head, read on demand up to MAX_HEADER."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.data = bytearray(os.read(fd, FIRST_READ))

    def need(self, end: int) -> None:
        if end <= len(self.data):
            return
        while len(self.data) < end:
            if end > MAX_HEADER:
                raise _NotPlain
            more = os.read(self.fd, max(FIRST_READ, end - len(self.data)))
            if not more:
                raise _NotPlain  # truncated: pydicom reports it in its own words
            self.data += more


class _Walk:
    def __init__(self, buf: _Buffer, implicit: bool) -> None:
        self.buf, self.implicit = buf, implicit

    def header(self, pos: int) -> tuple[int, bytes | None, int, int]:
        """(tag, VR or None, length, position of the value)."""
        data = self.buf.data
        if pos + 12 > len(data):
            self.buf.need(pos + 8)
            data = self.buf.data
        g, e = _HH.unpack_from(data, pos)
        tag = (g << 16) | e
        if self.implicit or g == 0xFFFE:
            return tag, None, _U32.unpack_from(data, pos + 4)[0], pos + 8
        vr = bytes(data[pos + 4:pos + 6])
        if not (vr.isalpha() and vr.isupper()):  # [A-Z]{2}
            raise _NotPlain
        if vr in _LONG_VRS:
            self.buf.need(pos + 12)
            return tag, vr, _U32.unpack_from(self.buf.data, pos + 8)[0], pos + 12
        return tag, vr, _U16.unpack_from(data, pos + 6)[0], pos + 8

    def skip_undefined(self, pos: int, vr: bytes | None, depth: int) -> int:
        """Past an undefined-length sequence starting at ``pos`` (its first item)."""
        if depth > 16 or vr not in (None, b"SQ"):
            raise _NotPlain  # undefined-length UN or encapsulated data outside pixel data
        while True:
            tag, _, length, pos = self.header(pos)
            if tag == SEQ_END:
                return pos
            if tag != ITEM:
                raise _NotPlain
            if length != UNDEFINED:
                pos += length
                continue
            while True:  # an undefined-length item: elements up to the item delimiter
                tag, vr2, length, pos = self.header(pos)
                if tag == ITEM_END:
                    break
                pos = self.skip_undefined(pos, vr2, depth + 1) if length == UNDEFINED else pos + length


class Scan(NamedTuple):
    """What one read of a plain image's head gives: its ``InstanceInfo``, where the dataset starts (after the file
    meta) and up to which byte its element structure is already checked (every top-level element before it has a
    defined length that fits in the file and no nested items), so ``lengthwalk`` may start there."""

    info: InstanceInfo
    offset: int
    checked_to: int
    head: bytearray  # the bytes read (at least up to checked_to): lengthwalk goes on from them


def quick_info(path: str | os.PathLike[str]) -> InstanceInfo | None:
    """InstanceInfo of a plain image, exactly as ``read_header`` would give it; None: use ``read_header``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        scan = scan_fd(fd)
        return scan.info if scan is not None else None
    finally:
        os.close(fd)


def scan_fd(fd: int) -> Scan | None:
    """``quick_info`` of an open file (read from its current position, the start): the receive path opens each
    file once for header, structure check, size and fsync."""
    try:
        return _read(_Buffer(fd))
    except (_NotPlain, struct.error, UnicodeDecodeError, ValueError):
        return None


def _read(buf: _Buffer) -> Scan | None:
    if len(buf.data) < 132 or buf.data[128:132] != b"DICM":
        return None
    meta, pos = _meta(buf)
    offset, checked_to = pos, -1
    ts = meta.get(0x00020010, b"").rstrip(b"\x00 ").decode("ascii")
    if not ts or ts == EXPLICIT_BE or not _little_endian_plain(ts):
        return None
    walk = _Walk(buf, ts == IMPLICIT_LE)
    values: dict[str, bytes] = {}
    last = -1
    implicit = ts == IMPLICIT_LE
    data = buf.data
    while True:
        if implicit or pos + 12 > len(data):
            try:
                buf.need(pos + 8)
            except _NotPlain:
                if pos == len(buf.data):
                    break  # end of file, no pixel data
                raise
            tag, vr, length, vpos = walk.header(pos)
            data = buf.data
        else:  # walk.header inlined for the common case (explicit VR, head already read): ~40 elements per image
            g, e = _HH.unpack_from(data, pos)
            tag = (g << 16) | e
            vr = bytes(data[pos + 4:pos + 6])
            if g == 0xFFFE:
                return None
            if vr in _LONG_VRS:
                length, vpos = _U32.unpack_from(data, pos + 8)[0], pos + 12
            elif vr.isalpha() and vr.isupper():
                length, vpos = _U16.unpack_from(data, pos + 6)[0], pos + 8
            else:
                raise _NotPlain
        if tag >= PIXELS:
            break
        if tag <= last or tag in DEEPER or tag >> 16 == 0xFFFE:
            return None
        last = tag
        if checked_to < 0 and (length == UNDEFINED or vr in _NESTED):
            checked_to = pos  # its items are lengthwalk's to check
        if length == UNDEFINED:
            pos = walk.skip_undefined(vpos, vr, 0)
            continue
        if tag in WANTED:
            buf.need(vpos + length)
            data = buf.data
            values[WANTED[tag]] = bytes(data[vpos:vpos + length])
        pos = vpos + length
    info = _info(values, meta, ts)
    return Scan(info, offset, pos if checked_to < 0 else checked_to, buf.data) if info is not None else None


def _meta(buf: _Buffer) -> tuple[dict[int, bytes], int]:
    """Group-0002 values (always Explicit VR Little Endian) and the dataset's offset."""
    walk = _Walk(buf, implicit=False)
    meta: dict[int, bytes] = {}
    pos = 132
    while True:
        buf.need(pos + 8)
        if struct.unpack_from("<H", buf.data, pos)[0] != 0x0002:
            return meta, pos
        tag, _, length, vpos = walk.header(pos)
        if length == UNDEFINED:
            raise _NotPlain
        buf.need(vpos + length)
        meta[tag] = bytes(buf.data[vpos:vpos + length])
        pos = vpos + length


def _little_endian_plain(ts: str) -> bool:
    uid = UID(ts)
    return uid.is_transfer_syntax and uid.is_little_endian and not uid.is_deflated


def _text(raw: bytes | None) -> str:
    """A single ASCII value as ``dicomfile._s`` returns it; multi-valued or non-ASCII values are not plain."""
    if raw is None:
        return ""
    if b"\\" in raw or max(raw, default=0) >= 0x80:
        raise _NotPlain
    return raw.decode("ascii").strip("\x00 ")


def _info(values: dict[str, bytes], meta: dict[int, bytes], ts: str) -> InstanceInfo | None:
    if values.get("charset", b"").strip(b"\x00 ") not in ASCII_CHARSETS:
        return None
    sop_class = _text(values.get("sop_class")) or _text(meta.get(0x00020002))
    sop_uid = _text(values.get("sop_uid")) or _text(meta.get(0x00020003))
    if not sop_class or not sop_uid:
        return None  # read_header raises BadDicom with its own reason
    modality = _text(values.get("modality")) or modality_for_sop_class(sop_class)
    if modality in DEEPER_MODALITIES:
        return None
    number = values.get("instance_number")
    if number is not None and number.strip(b"\x00 ") and not _INT.fullmatch(number.rstrip(b"\x00")):
        return None
    description = _text(values.get("series_description"))
    return InstanceInfo(
        sop_uid=sop_uid, sop_class=sop_class, modality=modality, transfer_syntax=ts,
        patient_id=_text(values.get("patient_id")), patient_name=_text(values.get("patient_name")),
        study_uid=_text(values.get("study_uid")), series_uid=_text(values.get("series_uid")),
        frame_of_ref=_text(values.get("frame_of_ref")),
        instance_number=int(number.strip(b"\x00 ")) if number is not None and number.strip(b"\x00 ") else None,
        series_description=description, description=description, refs=(), plan=None, has_meta=bool(meta))
