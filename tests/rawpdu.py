"""Hand-built DICOM upper-layer PDUs for hostile-peer tests: what a real peer would never send, byte for byte."""

from __future__ import annotations

import socket
import struct

APP_CONTEXT = b"1.2.840.10008.3.1.1.1"
VERIFICATION = b"1.2.840.10008.1.1"
CT_STORAGE = b"1.2.840.10008.5.1.4.1.1.2"
IMPLICIT = b"1.2.840.10008.1.2"


def _item(kind: int, value: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(value)) + value


def associate_rq(calling: bytes = b"ECLIPSE", called: bytes = b"RTSTATION", abstract: bytes = VERIFICATION,
                 max_pdu: int = 16384) -> bytes:
    """A whole A-ASSOCIATE-RQ with one presentation context (id 1, Implicit VR Little Endian). AE titles are
    padded with spaces to 16 bytes, never validated: the point is to send invalid ones."""
    body = struct.pack(">HH", 1, 0) + called.ljust(16, b" ")[:16] + calling.ljust(16, b" ")[:16] + b"\x00" * 32
    body += _item(0x10, APP_CONTEXT)
    body += _item(0x20, b"\x01\x00\x00\x00" + _item(0x30, abstract) + _item(0x40, IMPLICIT))
    body += _item(0x50, _item(0x51, struct.pack(">I", max_pdu)))
    return struct.pack(">BBI", 1, 0, len(body)) + body


def read_pdu(sock: socket.socket, timeout: float = 10) -> tuple[int, bytes] | None:
    """(type, body) of the next PDU, None if the connection ended first."""
    sock.settimeout(timeout)
    head = _exact(sock, 6)
    if head is None:
        return None
    kind, _, length = struct.unpack(">BBI", head)
    body = _exact(sock, length)
    return None if body is None else (kind, body)


def _exact(sock: socket.socket, n: int) -> bytes | None:
    out = bytearray()
    while len(out) < n:
        try:
            chunk = sock.recv(n - len(out))
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        out += chunk
    return bytes(out)


def associate(port: int, source: str = "127.0.0.1", **kw: bytes) -> socket.socket:
    """A raw association accepted by the station (asserts the A-ASSOCIATE-AC)."""
    s = socket.socket()
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    s.sendall(associate_rq(**kw))  # type: ignore[arg-type]
    answer = read_pdu(s)
    assert answer is not None and answer[0] == 2, f"association not accepted: {answer}"
    return s


def ended(sock: socket.socket, timeout: float) -> bool:
    """Whether the peer closed (FIN or RST) within ``timeout``, any PDU it sent first (an A-ABORT) read away."""
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except (TimeoutError, BlockingIOError):
        return False
    except OSError:  # closed here
        return True
    finally:
        if sock.fileno() != -1:
            sock.settimeout(None)
