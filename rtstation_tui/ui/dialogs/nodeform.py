"""Add or edit one DICOM node (``[[nodes]]``): checked as you type, host resolved in a thread.

Returns the changed keys (for a new node: every field that differs from the default, plus the required ones), or
None when cancelled. Why the host is resolved here: a typo in a host name otherwise shows up hours later as a
failed send; ``getaddrinfo`` may take seconds, so it runs in a thread worker and the form stays live meanwhile.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Sequence

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

from ...engine.config.nodes import NodeConfig
from ..commands.registry import CommandScope, bindings
from ..labels import plain
from ..widgets.form import FieldSpec, Form, FormDialog

REQUIRED = ("name", "ae_title", "host", "port")


def resolve_problem(host: str) -> str | None:
    """None if ``host`` resolves, else the resolver's own words (blocking: call it in a thread)."""
    if not host:
        return None  # the field check already says it is empty
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        reason = exc.args[1] if isinstance(exc, socket.gaierror) and len(exc.args) > 1 else str(exc)
        return f"cannot resolve {host!r}: {reason}"
    return None


def node_specs(taken: Sequence[str]) -> list[FieldSpec]:
    def unique(name: Any) -> str | None:
        return f"{name!r} is already the name of another node or group" if name in taken else None

    n = NodeConfig
    return [
        FieldSpec("name", n, "name", "Name", "Unique name used by rules, the console and `rtstation send --to`",
                  unique),
        FieldSpec("ae_title", n, "ae_title", "AE title", "The node's AE title: 1-16 printable ASCII, no backslash"),
        FieldSpec("host", n, "host", "Host", "Host name or IP address (checked with the resolver)"),
        FieldSpec("port", n, "port", "Port", "The node's DICOM port, 1-65535"),
        FieldSpec("enabled", n, "enabled", "Enabled", "Disabled nodes get no sends (rules and by hand)"),
        FieldSpec("calling_ae_title", n, "calling_ae_title", "Our AE title",
                  "Calling AE title towards this node; empty: [station] ae_title"),
        FieldSpec("max_associations", n, "max_associations", "Parallel", "Parallel associations, 1-16"),
        FieldSpec("retry", n, "retry", "Retry", "COUNTxDELAY, ... with s, m, h, d (e.g. 5x30s,10x5m,24x1h)"),
        FieldSpec("timeout_s", n, "timeout_s", "Timeout (s)", "Connection and response timeout in seconds"),
        FieldSpec("tls", n, "tls", "DICOM TLS", "Connect with TLS (client settings in [tls])"),
        FieldSpec("max_instances_per_s", n, "max_instances_per_s", "Max inst/s",
                  "Rate limit for a peer that chokes: instances per second (0: none)"),
        FieldSpec("max_mb_per_s", n, "max_mb_per_s", "Max MB/s", "Rate limit in MB (10^6 bytes) per second (0: none)"),
    ]


class NodeForm(FormDialog, CommandScope, ModalScreen[dict[str, Any] | None]):
    COMMAND_SCOPE = "entry-form"
    BINDINGS = bindings("entry-form")

    def __init__(self, node: NodeConfig | None, taken: Sequence[str]) -> None:
        super().__init__()
        self.node = node
        self.taken = [t for t in taken if node is None or t != node.name]
        self.resolved: dict[str, str | None] = {}

    def compose(self) -> ComposeResult:
        node = self.node or NodeConfig(name="", ae_title="", host="")
        values = {s.key: getattr(node, s.name) for s in node_specs(self.taken)}
        title = f"Edit node {self.node.name}" if self.node else "New node"
        with Vertical(classes="dialog form-dialog"):
            yield Label(plain(title), classes="dialog-title")
            yield Form(node_specs(self.taken), values, id="node-form")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save (Ctrl+S)", id="save", variant="primary")
                yield Button("Cancel (Esc)", id="cancel")

    def on_mount(self) -> None:
        if self.node is not None:
            self.run_worker(self._resolve(self.node.host), group="resolve", exit_on_error=False)

    def on_form_edited(self, event: Form.Edited) -> None:
        if event.key == "host":
            host = str(self.form.raw("host")).strip()
            self.run_worker(self._resolve(host), group="resolve", exclusive=True, exit_on_error=False)

    async def _resolve(self, host: str) -> None:
        if host not in self.resolved:
            self.resolved[host] = await asyncio.to_thread(resolve_problem, host)
        if str(self.form.raw("host")).strip() == host:  # the field may have changed meanwhile
            self.form.set_extra("host", self.resolved[host])

    def action_save(self) -> None:
        self.run_worker(self._save(), group="save", exclusive=True, exit_on_error=False)

    async def _save(self) -> None:
        form = self.form
        await self._resolve(str(form.raw("host")).strip())
        if not form.ready_to_save():
            return
        self.dismiss(self.entry_changes(form, self.node is None, REQUIRED))
