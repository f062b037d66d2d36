"""C-STORE on the wire, by hand: command sets and file meta as bytes, without pydicom.

Why: on a busy receive path pydicom's generic element machinery dominates the per-message cost (decoding the
C-STORE-RQ command set, encoding the C-STORE-RSP, writing the file meta of each temp file: ~40% of the GIL time
once pynetdicom's polling is gone, see ``acceptor.py``). These few fixed layouts are small and fully specified
(PS3.7 E.1 command sets, always Implicit VR Little Endian; PS3.10 7.1 file meta, always Explicit VR Little
Endian), so they are written out here and checked byte for byte against pydicom/pynetdicom in
``tests/net/test_netfast.py``. Anything unusual is refused (``None``) and left to pynetdicom's own code.
"""

from __future__ import annotations

import functools
import itertools
import os
import secrets
import struct
from dataclasses import dataclass
from pathlib import Path

from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.pdu_items import PresentationDataValueItem

from . import spool

C_STORE_RQ = 0x0001
C_STORE_RSP = 0x8001
NO_DATASET = 0x0101
_ELEM = struct.Struct("<HHI")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_UID_CHARS = frozenset(b"0123456789.")
_ITEM = struct.Struct(">LB")
_PREFIX = secrets.token_hex(4)  # temp names: unique per process (O_EXCL catches the rest), no random read per file
_SERIAL = itertools.count(1)


@dataclass(frozen=True)
class StoreRequest:
    """The parts of a C-STORE-RQ command set the receiver needs."""

    message_id: int
    priority: int
    sop_class: str
    sop_instance: str
    move_originator_aet: str | None = None
    move_originator_id: int | None = None


@dataclass(frozen=True)
class StoreResponse:
    """The parts of a C-STORE-RSP command set the sender needs (PS3.7 9.3.1.2)."""

    message_id: int  # Message ID Being Responded To
    status: int
    error_comment: str = ""


def _command_elements(cmd: bytes | memoryview) -> dict[int, bytes] | None:
    """Element number → value of a group-0000 command set (Implicit VR Little Endian), or None when broken."""
    values: dict[int, bytes] = {}
    pos, end = 0, len(cmd)
    while pos < end:
        if pos + 8 > end:
            return None
        group, elem, length = _ELEM.unpack_from(cmd, pos)
        pos += 8
        if group != 0x0000 or pos + length > end or elem in values:
            return None
        values[elem] = bytes(cmd[pos:pos + length])
        pos += length
    return values


def parse_store_request(cmd: bytes) -> StoreRequest | None:
    """A C-STORE-RQ carrying a dataset, or None for anything else (other commands, odd or broken encodings).

    None means "let pynetdicom decode it": it then answers, logs or aborts exactly as it always did."""
    values = _command_elements(cmd)
    if values is None:
        return None
    try:
        if _u16(values[0x0100]) != C_STORE_RQ or _u16(values.get(0x0800, b"")) in (None, NO_DATASET):
            return None
        message_id = _u16(values[0x0110])
        priority = _u16(values[0x0700]) if 0x0700 in values else 2
        sop_class, sop_instance = _uid(values[0x0002]), _uid(values[0x1000])
    except KeyError:
        return None
    if message_id is None or priority is None or not sop_class or not sop_instance:
        return None
    aet = mid = None
    if 0x1030 in values:
        try:
            aet = values[0x1030].decode("ascii").strip(" \x00")
        except UnicodeDecodeError:
            return None
    if 0x1031 in values:
        mid = _u16(values[0x1031])
        if mid is None:
            return None
    return StoreRequest(message_id, priority, sop_class, sop_instance, aet, mid)


def store_response(sop_class: str, sop_instance: str, message_id: int, status: int) -> bytes:
    """The C-STORE-RSP command set pynetdicom would encode for these values (no optional status fields)."""
    body = b"".join((
        _uid_element(0x0002, sop_class),
        _RSP_COMMAND,
        _element(0x0120, _U16.pack(message_id)),
        _RSP_NO_DATASET,
        _element(0x0900, _U16.pack(status)),
        _element(0x1000, _uid_bytes(sop_instance)),
    ))
    return _element(0x0000, _U32.pack(len(body))) + body


def store_request(sop_class: str, sop_instance: str, message_id: int, priority: int = 2) -> bytes:
    """The C-STORE-RQ command set pynetdicom encodes for these values (a dataset follows; no move originator)."""
    body = b"".join((
        _element(0x0002, _uid_bytes(sop_class)),
        _element(0x0100, _U16.pack(C_STORE_RQ)),
        _element(0x0110, _U16.pack(message_id)),
        _element(0x0700, _U16.pack(priority)),
        _element(0x0800, _U16.pack(0x0001)),
        _element(0x1000, _uid_bytes(sop_instance)),
    ))
    return _element(0x0000, _U32.pack(len(body))) + body


def parse_store_response(cmd: bytes | memoryview) -> StoreResponse | None:
    """A C-STORE-RSP without a dataset, or None for anything else (the sender then aborts: a storage SCP that
    answers a C-STORE with something else breaks the protocol)."""
    values = _command_elements(cmd)
    if values is None:
        return None
    if _u16(values.get(0x0100, b"")) != C_STORE_RSP or _u16(values.get(0x0800, b"")) != NO_DATASET:
        return None
    message_id, status = _u16(values.get(0x0120, b"")), _u16(values.get(0x0900, b""))
    if message_id is None or status is None:
        return None
    comment = values.get(0x0902, b"").decode("latin-1").strip(" \x00")
    return StoreResponse(message_id, status, comment)


def file_meta(sop_class: str, sop_instance: str, transfer_syntax: str) -> bytes:
    """Preamble, ``DICM`` and the group-0002 elements pynetdicom writes before a received dataset."""
    head, tail = _meta_parts(sop_class, transfer_syntax)  # all but the instance UID: the same for a whole series
    instance = _explicit(0x0003, b"UI", _uid_bytes(sop_instance))
    length = len(head) + len(instance) + len(tail)
    return _PREAMBLE + _explicit(0x0000, b"UL", _U32.pack(length)) + head + instance + tail


@functools.lru_cache(maxsize=256)
def _meta_parts(sop_class: str, transfer_syntax: str) -> tuple[bytes, bytes]:
    head = _explicit(0x0001, b"OB", b"\x00\x01") + _explicit(0x0002, b"UI", _uid_bytes(sop_class))
    tail = b"".join((
        _explicit(0x0010, b"UI", _uid_bytes(transfer_syntax)),
        _explicit(0x0012, b"UI", _uid_bytes(str(PYNETDICOM_IMPLEMENTATION_UID))),
        _explicit(0x0013, b"SH", _text_bytes(PYNETDICOM_IMPLEMENTATION_VERSION)),
    ))
    return head, tail


@functools.lru_cache(maxsize=256)
def _uid_element(elem: int, uid: str) -> bytes:
    return _element(elem, _uid_bytes(uid))


def _u16(value: bytes) -> int | None:
    return _U16.unpack(value)[0] if len(value) == 2 else None


def _uid(value: bytes) -> str:
    """A UID value, or "" when it is not plausible (pynetdicom then gets to refuse it in its own words)."""
    raw = value.rstrip(b"\x00 ")
    if not raw or len(raw) > 64 or not _UID_CHARS.issuperset(raw):
        return ""
    return raw.decode("ascii")


def _element(elem: int, value: bytes) -> bytes:
    return _ELEM.pack(0x0000, elem, len(value)) + value


_PREAMBLE = b"\x00" * 128 + b"DICM"
_RSP_COMMAND = _element(0x0100, _U16.pack(C_STORE_RSP))
_RSP_NO_DATASET = _element(0x0800, _U16.pack(NO_DATASET))


def _explicit(elem: int, vr: bytes, value: bytes) -> bytes:
    if vr == b"OB":
        return struct.pack("<HH2sHI", 0x0002, elem, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", 0x0002, elem, vr, len(value)) + value


def _uid_bytes(uid: str) -> bytes:
    raw = uid.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def _text_bytes(text: str) -> bytes:
    raw = text.encode("ascii")
    return raw + b" " if len(raw) % 2 else raw


def p_data_tf(body: memoryview) -> P_DATA_TF:
    """A P-DATA-TF PDU whose values are slices of ``body`` (PS3.8 9.3.5); raises ValueError when malformed."""
    pdu = P_DATA_TF()
    items = []
    for context_id, value in pdv_items(body):
        item = PresentationDataValueItem()
        item.presentation_context_id = context_id
        item.presentation_data_value = value
        items.append(item)
    pdu.presentation_data_value_items = items
    return pdu


def p_data_tf_bytes(context_id: int, control: int, payload: bytes) -> bytes:
    """A whole P-DATA-TF PDU with one presentation data value (PS3.8 9.3.5), as pynetdicom's DT-1 would send it."""
    return struct.pack(">BBLLBB", 0x04, 0x00, len(payload) + 6, len(payload) + 2, context_id, control) + payload


def pdv_items(body: memoryview) -> list[tuple[int, memoryview]]:
    """(presentation context ID, value) of each item of a P-DATA-TF body, without pynetdicom's PDU objects (the
    receive path's P-DATA lane); raises ValueError when malformed, as ``p_data_tf`` does."""
    items = []
    pos, end = 0, len(body)
    while pos < end:
        if pos + 6 > end:
            raise ValueError("truncated presentation data value item")
        length, context_id = _ITEM.unpack_from(body, pos)
        if length < 2 or pos + 4 + length > end:
            raise ValueError(f"presentation data value item length {length} does not fit the PDU")
        items.append((context_id, body[pos + 5:pos + 4 + length]))
        pos += 4 + length
    return items


class TempDataset:
    """A received dataset's temp file; stands in for pynetdicom's NamedTemporaryFile (``close()``, ``name``).

    Out of space (``spool.SPACE_ERRNOS``: disk full, quota, file-size limit) while writing: the file is truncated
    at once to give the space back, the rest of the dataset is swallowed, and ``failed`` (read through
    ``spool.failure(request)``: the request carries this file) tells the C-STORE handler, which answers 0xA700 and the
    association goes on (as ``spool.py`` does for pynetdicom's files).
    """

    __slots__ = ("fd", "name", "failed")

    def __init__(self, directory: Path) -> None:
        self.name = f"{directory}/rx-{_PREFIX}-{next(_SERIAL)}.dcm"
        self.failed: OSError | None = None
        self.fd: int | None = None
        try:
            self.fd = os.open(self.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            self._fail(exc)

    def write(self, data: memoryview | bytes) -> None:
        if self.failed is not None or self.fd is None:
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        if exc.errno not in spool.SPACE_ERRNOS:
            raise exc
        self.failed = exc
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, 0)
            except OSError:
                pass

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def discard(self) -> None:
        """Gone without the handler having run (abort) or after it: remove the file."""
        self.close()
        try:
            os.unlink(self.name)
        except OSError:
            pass
