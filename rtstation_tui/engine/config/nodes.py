"""DICOM nodes (destinations): ``[[nodes]]`` entries, and ad-hoc ``AET@host:port`` specs accepted wherever a node
name is."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..dicom.aetitle import ae_title_problem
from .checks import setting as _c

DEFAULT_RETRY = "5x30s,10x5m,24x1h"
_ADHOC = re.compile(r"^(?P<ae>[^@]+)@(?P<host>\[[^\]]+\]|[^:@]+):(?P<port>\d+)$")


@dataclass(frozen=True)
class NodeConfig:
    name: str = _c(kind="name")
    ae_title: str = _c(kind="ae")
    host: str = _c(kind="host")
    port: int = _c(104, min=1, max=65535)
    calling_ae_title: str | None = _c(None, kind="ae")
    max_associations: int = _c(1, min=1, max=16)
    retry: str = _c(DEFAULT_RETRY, kind="retry")
    timeout_s: float = _c(30.0, min=1, max=86400)
    enabled: bool = _c(True)
    tls: bool = _c(False)
    allow_retrieve: bool = _c(False)  # [QR] this node may C-GET/C-MOVE from us (C-MOVE destinations: any node)
    commitment: bool = _c(False)  # ask for Storage Commitment (push model) of every instance sent
    commitment_timeout_s: float = _c(3600.0, min=1, max=7 * 86400)  # no report by then: "commit timed out"
    transforms: tuple[str, ...] = _c(())  # applied to everything this node gets, after the rule's own
    machine_map: tuple[tuple[str, str], ...] = _c(())  # TreatmentMachineName -> this node's name ("*": any)
    default_machine: tuple[tuple[str, str], ...] = _c(())  # beams without one: machine model -> name
    # rate limits for peers that choke (0: none); the sender paces instances with a token bucket (outbound/ratelimit)
    max_instances_per_s: float = _c(0.0, min=0, max=100_000)
    max_mb_per_s: float = _c(0.0, min=0, max=100_000)

    def chain(self) -> str:
        """The node's transforms as one stored chain (machine mapping last: it sees the final beams)."""
        from .transforms import encode_chain, machine_map_spec

        return encode_chain([*self.transforms, machine_map_spec(self.machine_map, self.default_machine)])

    def describe(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def parse_adhoc(spec: str) -> NodeConfig | None:
    """``STORESCP@127.0.0.1:11200`` → a NodeConfig named after the spec; None if ``spec`` is not of that form."""
    m = _ADHOC.match(spec.strip())
    if not m:
        return None
    ae, host, port = m.group("ae").strip(), m.group("host").strip("[]"), int(m.group("port"))
    if ae_title_problem(ae) or not 1 <= port <= 65535:
        return None
    return NodeConfig(name=spec.strip(), ae_title=ae, host=host, port=port)


def resolve_node(spec: str, nodes: tuple[NodeConfig, ...]) -> NodeConfig:
    """A configured node by name, or an ad-hoc one; ValueError says which names exist."""
    for node in nodes:
        if node.name == spec:
            return node
    adhoc = parse_adhoc(spec)
    if adhoc is not None:
        return adhoc
    names = ", ".join(n.name for n in nodes) or "none configured"
    raise ValueError(f"unknown node {spec!r}: use a configured name ({names}) or AET@host:port")
