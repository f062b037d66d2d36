"""``rtstation echo NODE...``: C-ECHO each node; round-trip time or the precise reason it failed."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any
from urllib.parse import quote
from concurrent.futures import ThreadPoolExecutor

from ..engine.config.model import Config
from ..engine.config.nodes import resolve_node
from ..engine.outbound.scu import EchoResult, echo
from ..engine.dimse.tls import TlsError, client_context
from .output import fail, print_json
from .remote import ApiCallError, ApiClient, api_fail, connect


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("echo", parents=[common], help="C-ECHO nodes (names or AET@host:port); all when none given")
    p.add_argument("nodes", nargs="*", metavar="NODE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    specs = args.nodes or [n.name for n in config.nodes]
    if not specs:
        return fail("no nodes configured and none given (NODE or AET@host:port)", 2)
    remote = connect(config)
    if remote is not None:
        try:
            rows = asyncio.run(_echo_via_api(remote, specs))
        except ApiCallError as exc:
            return api_fail(exc)
        return _print(rows, args.json)
    try:
        nodes = [resolve_node(s, config.nodes) for s in specs]
    except ValueError as exc:
        return fail(str(exc), 2)
    try:
        contexts = [client_context(config.tls, n) if n.tls else None for n in nodes]
    except TlsError as exc:
        return fail(f"TLS: {exc}", 2)
    with ThreadPoolExecutor(max_workers=min(8, len(nodes))) as pool:  # a dead node must not delay the others
        results: list[EchoResult] = list(pool.map(lambda nc: echo(nc[0], config.station.ae_title, nc[1],
                                                                      config.network.fast_paths),
                                                  zip(nodes, contexts)))
    return _print([{"node": r.node, "address": n.describe(), "ok": r.ok, "rtt_ms": r.rtt_ms, "message": r.message}
                   for r, n in zip(results, nodes)], args.json)


async def _echo_via_api(remote: ApiClient, specs: list[str]) -> list[dict[str, Any]]:
    """The running station echoes (its AE title, TLS contexts and fast paths), all nodes at once."""
    calls = [remote.call("POST", f"/api/v1/nodes/{quote(s, safe='')}/echo") for s in specs]
    return list(await asyncio.gather(*calls))


def _print(rows: list[dict[str, Any]], as_json: bool) -> int:
    if as_json:
        print_json(rows)
    else:
        for r in rows:
            where = r["node"] if r["node"] == r["address"] else f"{r['node']} ({r['address']})"
            print(f"{'OK  ' if r['ok'] else 'FAIL'} {where}: {r['message']}")
    return 0 if all(r["ok"] for r in rows) else 1
