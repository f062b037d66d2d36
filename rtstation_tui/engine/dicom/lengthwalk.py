"""Structural check of a dataset's element stream: every declared length must fit inside the file.

Why: pydicom reads a truncated file without complaint (``rtplan_truncated.dcm`` parses, its last value cut short),
and a hostile dataset may claim a 4 GB element. Walking tags and lengths, without decoding values, catches both in
well under a millisecond for an image and keeps broken objects out of the store (they go to quarantine instead).
"""

from __future__ import annotations

import mmap
import os
import struct

from .header import BadDicom

UNDEFINED = 0xFFFFFFFF
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1")
MAX_DEPTH = 32


class _BeyondHead(Exception):
    """The walk needs bytes past the head it was given: walk the whole file instead."""


class _Walker:
    """Walks ``buf``, a dataset of ``size`` bytes (``buf`` may hold only its head: ``_BeyondHead`` when the walk
    needs a header past it; skipped values are never read, so a head is often enough)."""

    def __init__(self, buf: memoryview, implicit: bool, little: bool, size: int | None = None) -> None:
        self.buf, self.implicit = buf, implicit
        self.end_char = "<" if little else ">"
        self.pos = 0
        self.size = len(buf) if size is None else size
        self.avail = len(buf)

    def fail(self, what: str) -> BadDicom:
        return BadDicom(f"broken or truncated dataset at byte {self.pos}: {what}")

    def u16(self, at: int) -> int:
        return struct.unpack_from(self.end_char + "H", self.buf, at)[0]

    def u32(self, at: int) -> int:
        return struct.unpack_from(self.end_char + "I", self.buf, at)[0]

    def header(self) -> tuple[int, bytes | None, int]:
        if self.pos + 12 > self.avail and self.avail < self.size:
            raise _BeyondHead
        if self.pos + 8 > self.size:
            raise self.fail("element header cut short")
        tag = (self.u16(self.pos) << 16) | self.u16(self.pos + 2)
        if tag >> 16 == 0xFFFE or self.implicit:  # item tags and implicit VR: tag + 4-byte length
            length = self.u32(self.pos + 4)
            self.pos += 8
            return tag, None, length
        vr = bytes(self.buf[self.pos + 4:self.pos + 6])
        if vr in _LONG_VRS:
            if self.pos + 12 > self.size:
                raise self.fail("element header cut short")
            length = self.u32(self.pos + 8)
            self.pos += 12
        else:
            length = self.u16(self.pos + 6)
            self.pos += 8
        return tag, vr, length

    def skip(self, length: int, tag: int) -> None:
        if self.pos + length > self.size:
            raise self.fail(f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) declares {length} bytes, "
                            f"only {self.size - self.pos} remain")
        self.pos += length

    def elements(self, stop: int | None, depth: int) -> None:
        """Walk elements until ``stop`` (a byte position) or an item delimiter (undefined-length item)."""
        if depth > MAX_DEPTH:
            raise self.fail("sequences nested too deeply")
        while self.pos < (stop if stop is not None else self.size):
            tag, vr, length = self.header()
            if tag == ITEM_END and stop is None:
                return
            if length != UNDEFINED:
                if vr == b"SQ":
                    self.items(self.pos + length, depth + 1, tag)
                else:
                    self.skip(length, tag)
            elif vr == b"UN":  # Part 5 6.2.2: an undefined-length UN holds an Implicit VR LE sequence
                saved, self.implicit = self.implicit, True
                self.items(None, depth + 1, tag)
                self.implicit = saved
            else:
                # undefined length: a sequence, or encapsulated pixel data
                self.items(None, depth + 1, tag)
        if stop is not None and self.pos != stop:
            raise self.fail("item contents overrun their declared length")
        if stop is None and depth > 0:
            raise self.fail("undefined-length item never ends")

    def items(self, stop: int | None, depth: int, owner: int) -> None:
        if stop is not None and stop > self.size:
            raise self.fail(f"sequence ({owner >> 16:04X},{owner & 0xFFFF:04X}) declares more bytes than remain")
        while stop is None or self.pos < stop:
            tag, _, length = self.header()
            if tag == SEQ_END:
                if stop is not None:
                    raise self.fail("sequence delimiter inside a defined-length sequence")
                return
            if tag != ITEM:
                raise self.fail(f"expected an item in ({owner >> 16:04X},{owner & 0xFFFF:04X}), got tag {tag:08X}")
            if owner == 0x7FE00010:  # encapsulated pixel data fragments: opaque bytes
                if length == UNDEFINED:
                    raise self.fail("pixel data fragment with undefined length")
                self.skip(length, tag)
            elif length == UNDEFINED:
                self.elements(None, depth)
            else:
                self.skip_check(length, depth, tag)
        if stop is not None and self.pos != stop:
            raise self.fail("sequence items overrun the sequence's declared length")
        if stop is None:
            raise self.fail("undefined-length sequence never ends")

    def skip_check(self, length: int, depth: int, tag: int) -> None:
        end = self.pos + length
        if end > self.size:
            self.skip(length, tag)  # raises with the precise message
        self.elements(end, depth)


def verify_structure(path: str | os.PathLike[str], offset: int, transfer_syntax: str) -> None:
    """Raise BadDicom when the dataset starting at ``offset`` is truncated or structurally impossible."""
    if transfer_syntax in DEFLATED:
        return  # the element stream is compressed; pydicom's own read already inflated what we need
    with open(path, "rb") as fh:
        verify_structure_fd(fh.fileno(), offset, transfer_syntax)


def verify_structure_fd(fd: int, offset: int, transfer_syntax: str, start: int | None = None,
                        head: bytes | bytearray | None = None) -> None:
    """``verify_structure`` of an open file. ``start``: a top-level element boundary up to which the structure is
    known to be sound (``quickheader.Scan.checked_to``), so the walk begins there instead of at ``offset``.
    ``head``: the file's first bytes, already read; when the walk needs nothing past them (a plain image: the pixel
    data's header is in the head, its value is only measured) the file is not mapped at all."""
    if transfer_syntax in DEFLATED:
        return
    size = os.fstat(fd).st_size
    if size <= offset:
        raise BadDicom("empty dataset")
    implicit, little = transfer_syntax == IMPLICIT_LE, transfer_syntax != EXPLICIT_BE
    if head is not None and len(head) > offset:
        with memoryview(head) as whole:
            try:
                _walk(_Walker(whole[offset:], implicit, little, size - offset), start, offset)
                return
            except _BeyondHead:
                pass
    with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mm:  # values are skipped, never read
        with memoryview(mm) as whole:
            _walk(_Walker(whole[offset:], implicit, little), start, offset)


def _walk(walker: _Walker, start: int | None, offset: int) -> None:
    walker.pos = 0 if start is None else start - offset
    try:
        walker.elements(walker.size, 0)
    except struct.error:
        raise walker.fail("element header cut short") from None
    finally:
        walker.buf.release()
