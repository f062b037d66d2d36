"""Calling-AE allowlist entries: ``AE``, ``AE@10.1.2.3``, ``AE@10.1.2.0/24``, ``AE@host.name``, ``*@10.0.0.0/8``.

Why host/CIDR: AE titles are not secrets (any client can claim ``ECLIPSE``); pairing them with the address the
association comes from is what keeps a stranger out. Host names are resolved when an association arrives (cached for
a minute), so DNS changes apply without a restart.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass

from ..dicom.aetitle import ae_title_problem

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class AclEntry:
    ae: str  # "*" matches any calling AE
    network: IPNetwork | None = None
    host: str | None = None  # resolved at check time

    def __str__(self) -> str:
        where = str(self.network) if self.network else self.host
        return f"{self.ae}@{where}" if where else self.ae


def parse_acl_entry(text: str) -> AclEntry:
    ae, sep, where = text.partition("@")
    ae = ae.strip()
    if ae != "*":
        problem = ae_title_problem(ae)
        if problem:
            raise ValueError(problem)
    if not sep:
        return AclEntry(ae)
    where = where.strip()
    if not where:
        raise ValueError("nothing after '@': give an IP address, a CIDR like 10.1.2.0/24 or a host name")
    try:
        return AclEntry(ae, network=ipaddress.ip_network(where, strict=False))
    except ValueError:
        pass
    if "/" in where or not all(c.isalnum() or c in ".-" for c in where):
        raise ValueError(f"{where!r} is neither an IP address, a CIDR nor a host name")
    return AclEntry(ae, host=where.lower())


_cache: dict[str, tuple[float, frozenset[str]]] = {}
_cache_lock = threading.Lock()


def _resolve(host: str) -> frozenset[str]:
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(host)
        if hit and now - hit[0] < 60:
            return hit[1]
    try:
        addrs = frozenset(ai[4][0] for ai in socket.getaddrinfo(host, None))
    except OSError:
        addrs = frozenset()
    with _cache_lock:
        _cache[host] = (now, addrs)
    return addrs


def normal_ip(peer_ip: str) -> str:
    """The peer's address as the allowlist and the logs know it: a listener on ``::`` sees IPv4 peers as
    IPv4-mapped IPv6 (``::ffff:127.0.0.1``), which is ``127.0.0.1``; anything unparsable is returned as it is."""
    try:
        addr = ipaddress.ip_address(peer_ip)
    except ValueError:
        return peer_ip
    mapped = getattr(addr, "ipv4_mapped", None)
    return str(mapped) if mapped is not None else str(addr)


def entry_matches(entry: AclEntry, calling_ae: str, peer_ip: str) -> bool:
    if entry.ae != "*" and entry.ae != calling_ae.strip():
        return False
    peer_ip = normal_ip(peer_ip)
    if entry.network is not None:
        try:
            addr = ipaddress.ip_address(peer_ip)
        except ValueError:
            return False
        net = entry.network
        if isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped is not None:
            net = ipaddress.ip_network(f"{net.network_address.ipv4_mapped}/{max(net.prefixlen - 96, 0)}")
        return addr in net
    if entry.host is not None:
        return peer_ip in {normal_ip(a) for a in _resolve(entry.host)}
    return True


def check_calling(entries: tuple[AclEntry, ...], calling_ae: str, peer_ip: str) -> str | None:
    """None when allowed, else the reason (for the log line that names who, from where and why)."""
    if not entries:
        return None
    if any(entry_matches(e, calling_ae, peer_ip) for e in entries):
        return None
    same_ae = [str(e) for e in entries if e.ae in ("*", calling_ae.strip())]
    if same_ae:
        return f"calling AE {calling_ae.strip()!r} is allowed only from {', '.join(same_ae)}, not from " \
               f"{normal_ip(peer_ip)}"
    return f"calling AE {calling_ae.strip()!r} is not in receiver.allowed_calling_aes"
