"""The header (who and where we are, is the receiver listening) and the status line (what is happening).

Why not Textual's Header: it shows a clock (changes every second, breaks snapshots, says nothing useful) and has
one title; operators need AE title, address and receiver state at a glance, in words as well as colour.
"""

from __future__ import annotations

import collections
import time

from rich.text import Text
from textual.widgets import Static

from ...engine.api import human_bytes
from ..labels import Palette, literal

STATE_SYMBOL = {"listening": "●", "stopped": "○", "error": "✗", "starting": "…", "stopping": "…",
                "off": "○", "reconnecting": "…"}


class StationHeader(Static):
    def __init__(self, ae_title: str, address: str, import_folder: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.ae_title, self.address, self.import_folder = ae_title, address, import_folder
        self.state, self.detail = "starting", ""
        self.import_state, self.import_detail = ("off" if import_folder == "off" else "…"), ""
        self.palette = Palette()
        self.owner = ""  # "here pid N" (this console runs the station) or "attached pid N"

    def on_mount(self) -> None:
        self.update(self.render_text())

    def set_state(self, state: str, detail: str = "", address: str = "") -> None:
        self.state, self.detail = state, detail
        if address:
            self.address = address
        self.update(self.render_text())

    def set_owner(self, owner: str) -> None:
        """Which process runs the station: this console, or the one it is attached to."""
        self.owner = owner
        self.update(self.render_text())

    def set_import(self, state: str, folder: str, detail: str = "", pending: int = 0) -> None:
        """The watched import folder: off, watching (with files still settling) or error (detail says why)."""
        self.import_state, self.import_detail = state, detail or (f"{pending} settling" if pending else "")
        if folder:
            self.import_folder = folder.rstrip("/").rsplit("/", 1)[-1] or folder
        self.update(self.render_text())

    def render_text(self) -> Text:
        pal = self.palette
        colour = {"listening": pal.ok, "error": pal.error}.get(self.state, pal.warn)
        text = Text.assemble((" rtstation ", "bold reverse"), " ", (literal(self.ae_title), "bold"),
                             f"  {literal(self.address)}  ",
                             (f"{STATE_SYMBOL.get(self.state, '?')} {self.state}", f"bold {colour}"))
        if self.detail:
            text.append(f"  {literal(self.detail)}", colour)  # error texts, folder names: as they are (labels.py)
        if self.owner:  # before the import folder: at 80 columns the pid must not be the part that is cut
            text.append(f"  {literal(self.owner)}", "dim")
        if self.import_state == "off":
            text.append("   import: off", "dim")
        else:
            style = pal.error if self.import_state == "error" else "dim"
            text.append(f"   import {literal(self.import_folder)}: {self.import_state}", style)
            if self.import_detail:
                text.append(f" ({literal(self.import_detail)})", style)
        return text


class RateMeter:
    """Instances per second over the last few seconds, from InstancesStored batches."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self.samples: collections.deque[tuple[float, int]] = collections.deque()

    def add(self, n: int, at: float | None = None) -> None:
        self.samples.append((time.monotonic() if at is None else at, n))

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        while self.samples and self.samples[0][0] < now - self.window:
            self.samples.popleft()
        return sum(n for _, n in self.samples) / self.window


class StatusLine(Static):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.today = 0
        self.rate = 0.0
        self.free_mb: float | None = None
        self.min_free_mb = 0
        self.jobs: tuple[int, int] | None = None  # (waiting, failed); None: no sender
        self.store_bytes: int | None = None  # the store's size (the index's sum), shown when the line has room
        self.arriving = 0
        self.palette = Palette()

    def on_mount(self) -> None:
        self.refresh_text()

    def refresh_text(self) -> None:
        pal = self.palette
        text = Text.assemble(f" today {self.today} received", "  ·  ", f"{self.rate:.0f}/s")
        if self.arriving:
            text.append(f"  ·  {self.arriving} association{'s' if self.arriving != 1 else ''} open", pal.warn)
        if self.jobs is not None:
            waiting, failed = self.jobs
            text.append(f"  ·  jobs {waiting} waiting")
            text.append(f", {failed} failed", pal.error if failed else "")
        if self.free_mb is not None:
            low = self.free_mb < max(self.min_free_mb * 2, 1)
            text.append("  ·  free disk ")
            text.append(f"{self.free_mb / 1000:.1f} GB" if self.free_mb >= 1000 else f"{self.free_mb:.0f} MB",
                        pal.error if low else "")
        if self.store_bytes is not None:  # at 80 columns it does not fit: the patient's details pane says it
            store = f"  ·  store {human_bytes(self.store_bytes)}"
            if text.cell_len + len(store) <= self.size.width:
                text.append(store)
        self.update(text)

    def on_resize(self) -> None:
        self.refresh_text()
