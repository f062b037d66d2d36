"""The main screen's first screen with an empty store: how to send data in, and which nodes answer C-ECHO.

Why a mixin of ``MainScreen`` in its own file: it is one job (the day-one hint) with its own little state, and
``main.py`` stays about the tree. It uses the screen's ``config``, ``api``, ``tree``, ``shown_plan`` and
``echoes``.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

from textual.screen import Screen

from ...engine.api import EchoOutcome, StationAPI
from ...engine.config.model import Config
from ..labels import describe_echo
from ..messages import EchoAnswered
from ..widgets.details import PlanDetailsView
from ..widgets.plantree import PlanTree

_Base = Screen[None] if TYPE_CHECKING else object  # the screen it is mixed into, for the type checker


class FirstScreen(_Base):
    """Mixed into ``MainScreen`` (before ``Screen``): the empty-store hint and its start-up C-ECHO."""

    config: Config
    api: StationAPI
    shown_plan: str | None
    echoes: dict[str, EchoOutcome]
    _station_up = False
    _empty: bool | None = None  # None: not known yet; True: the first screen is the empty-store hint
    _echoed = False

    @property
    def tree(self) -> PlanTree:
        raise NotImplementedError  # MainScreen's

    def station_started(self) -> None:
        """The station runs (its sender can echo): the first screen may now ask the nodes."""
        self._station_up = True
        self._echo_if_first_screen()

    def _echo_if_first_screen(self) -> None:
        """Once, when the store is empty: C-ECHO every enabled node, so the screen that says how to send data in
        also says which nodes would not get anything out. Not with data in the store: that screen is the tree."""
        if self._echoed or not (self._station_up and self._empty) or self.api.status().send_unavailable:
            return
        self._echoed = True
        for node in self.config.nodes:
            if node.enabled:
                self.run_worker(self._echo(node.name), group="echo", exit_on_error=False)
        if self.shown_plan is None and not self.tree.patients:
            self.query_one(PlanDetailsView).show(None, self._how_to_send_in(True))

    async def _echo(self, name: str) -> None:
        outcome = await asyncio.to_thread(self.api.echo, name)
        self.echoes[name] = outcome
        self.post_message(EchoAnswered(outcome))  # the send dialog and the nodes editor show it too
        if self._empty and self.shown_plan is None and not self.tree.patients:
            self.query_one(PlanDetailsView).show(None, self._how_to_send_in(True))

    def _echo_lines(self) -> str:
        """One line per enabled node: ✓ answers, ✗ with the exact reason, … not answered yet."""
        lines = []
        for node in self.config.nodes:
            if node.enabled:
                echo = self.echoes.get(node.name)
                mark = "…" if echo is None else ("✓" if echo.ok else "✗")
                lines.append(f"  {mark} {node.name} ({node.describe()}): "
                             f"{'C-ECHO…' if echo is None else describe_echo(echo)}")
        return ("\n\nNodes (C-ECHO at start):\n" + "\n".join(lines)) if lines and self._echoed else ""

    def _how_to_send_in(self, receives: bool) -> str:
        """An empty store's first screen says how data gets in, with this station's own AE title and address."""
        st = self.config.station
        host = st.bind if st.bind not in ("", "0.0.0.0", "::") else socket.gethostname()
        if not receives:
            return ("Nothing received yet. This console does not listen (--no-listen): import files with "
                    "rtstation import PATH.")
        return (f"Nothing received yet.\n\nSend DICOM to AE title {st.ae_title} at {host} port {st.port}, for example "
                f"from a shell:\n  storescu -aec {st.ae_title} {host} {st.port} RP*.dcm\nor import files: "
                "rtstation import PATH" + self._echo_lines())

