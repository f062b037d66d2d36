"""Saving what the editors changed, and applying it to the running station.

Why through ``ConfigFile`` only: the operator's comments, key order and formatting must survive (issue 7), the
write must be atomic with a ``.bak`` of the previous file, and the new text must pass the same loader as at start.

Why "before and after" of the file and not "the running config and the file": the console may run with command
line overrides (``--port``, ``--data-dir``, ``--theme``); an edit of an unrelated key must not silently drop them.
Only what the edit changed in the file is taken over; the rest keeps its running value.

Applied live: nodes and rules go to ``Station.reload`` (the next decision uses them; running jobs continue). A new
port, bind address or AE title restarts the listener (``Station.restart_receiver``: in-flight stores finish), and
the header follows. Log level and theme apply at once. All file work runs in a thread; restarts in a worker.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path

from ..engine.config.model import Config
from ..engine.config.checks import ConfigError
from ..engine.config.tomlfile import ConfigFile
from ..engine.logsetup import ROOT
from ..engine.api import ReceiverError
from ..engine.config.reload import ReloadError
from ..engine.service.client import ApiCallError
from ..engine.service.remote import RecordedEdits, RemoteStation
from .host import ConsoleBase
from .labels import Palette
from .messages import EchoAnswered, Edit, SaveConfig
from .themes import ThemeCatalog, ThemeError

log = logging.getLogger("rtstation.console")
LISTENER = ("ae_title", "bind", "port")
KEPT = (*LISTENER, "data_dir")  # keys a command-line option may have overridden


def edit_file(path: Path, edit: Edit) -> tuple[Config, Config]:
    """Apply ``edit`` to the file and save it; returns the file's configuration before and after."""
    cf = ConfigFile(path)
    before = cf.validate()
    edit(cf)
    return before, cf.save()


def merged(running: Config, before: Config, after: Config) -> Config:
    """``after``, except that station keys the edit did not change keep their running (maybe overridden) values."""
    station = after.station
    for key in KEPT:
        if getattr(before.station, key) == getattr(after.station, key):
            station = replace(station, **{key: getattr(running.station, key)})
    ui = after.ui if before.ui != after.ui else running.ui
    return replace(after, station=station, ui=ui)


class ConfigEditing(ConsoleBase):
    """Part of ``StationApp``: one door for every editor's save (editors post ``SaveConfig``; this answers)."""

    _save_lock: asyncio.Lock | None = None
    _saves: set[asyncio.Future[Config | None]] = set()

    def on_save_config(self, request: SaveConfig) -> None:
        """An editor asks for a save: run it, then answer with the running configuration (None: not saved)."""

        def answer(task: asyncio.Future[Config | None]) -> None:
            if request.reply.done():  # the editor went away meanwhile: the save still completed
                return
            if task.cancelled():
                request.reply.set_result(None)
            elif (exc := task.exception()) is not None:
                request.reply.set_exception(exc)
            else:
                request.reply.set_result(self.config if task.result() is not None else None)

        asyncio.ensure_future(self.save_config(request.edit, request.what)).add_done_callback(answer)

    def on_echo_answered(self, message: EchoAnswered) -> None:
        self.remember_echo(message.outcome)

    async def save_config(self, edit: Edit, what: str) -> Config | None:
        """Edit, save and apply; None (and a notification saying why) when nothing was saved.

        Saves run one at a time and are never cancelled half-way (a file written but not applied would make the
        console lie), so callers run them in plain, non-exclusive workers."""
        if self._save_lock is None:
            self._save_lock, self._saves = asyncio.Lock(), set()
        task = asyncio.ensure_future(self._locked_save(edit, what))
        self._saves.add(task)  # a screen closed mid-save cancels its worker, not this task
        task.add_done_callback(self._saves.discard)
        return await asyncio.shield(task)

    async def _locked_save(self, edit: Edit, what: str) -> Config | None:
        assert self._save_lock is not None
        async with self._save_lock:
            try:
                return await self._save_config(edit, what)
            except Exception as exc:  # a bug must show, not take the console (and the receiver) down
                log.exception("saving the configuration failed")
                self.notify(f"{type(exc).__name__}: {exc}", title="Not saved", severity="error", timeout=20)
                return None

    async def _save_config(self, edit: Edit, what: str) -> Config | None:
        if isinstance(self.station, RemoteStation):
            return await self._save_remote(self.station, edit, what)
        path = self.config.path
        if path is None:
            self.notify("The console runs on built-in defaults: start it with --config FILE to edit settings.",
                        title="Not saved", severity="error", timeout=15)
            return None
        try:
            before, after = await asyncio.to_thread(edit_file, path, edit)
        except (ConfigError, KeyError, OSError) as exc:
            self.notify(str(exc), title="Not saved", severity="error", timeout=20)
            return None
        log.info("configuration saved (%s): %s", what, path)
        await self.apply_config(merged(self.config, before, after))
        self.notify(f"{what}. Saved to {path.name} (previous version: {path.name}.bak).", title="Saved")
        return after

    async def _save_remote(self, station: RemoteStation, edit: Edit, what: str) -> Config | None:
        """Attached: the station edits its own file (the operator may not be able to write it) and applies it."""
        recorded = RecordedEdits()
        edit(recorded)  # type: ignore[arg-type]  # the editors call only ConfigFile's editing methods
        try:
            await asyncio.to_thread(station.edit_config, recorded.ops)
        except ApiCallError as exc:
            self.notify(exc.message, title="Not saved", severity="error", timeout=20)
            return None
        old, new = self.config, station.config
        log.info("configuration saved by the station (%s): %s", what, new.path)
        if any(getattr(old.station, k) != getattr(new.station, k) for k in LISTENER) and not self.stopping:
            try:
                await self.api.restart_receiver(new)
            except ReceiverError as exc:
                self.notify(str(exc), title="Listener", severity="error", timeout=20)
        self._show_config(old, station.config)
        self.notify(f"{what}. Saved by the station to {new.path.name if new.path else 'its file'}.", title="Saved")
        return station.config

    async def apply_config(self, new: Config) -> None:
        old, self.config = self.config, new
        self.main.config = new
        restart = any(getattr(old.station, k) != getattr(new.station, k) for k in LISTENER)
        try:
            if restart and self.api.status().receives and not self.stopping:
                self.main.header.set_state("starting", "restarting the listener; in-flight stores finish")
                await self.api.restart_receiver(new)
            else:
                self.api.reload(new)
        except ReceiverError as exc:
            self.notify(str(exc), title="Listener", severity="error", timeout=20)
        except ReloadError as exc:
            self.notify(f"saved, but not applied: {exc}", title="Configuration", severity="error", timeout=20)
        self._show_config(old, new)

    def _show_config(self, old: Config, new: Config) -> None:
        """The header, log level and theme follow the configuration in force."""
        self.config = self.main.config = new
        header = self.main.header
        header.ae_title = new.station.ae_title
        header.address = f"{new.station.bind}:{new.station.port}"
        header.update(header.render_text())
        if old.logging.level != new.logging.level:
            logging.getLogger(ROOT).setLevel(new.logging.level)  # the file's level; the pane keeps its own filter
        if old.ui != new.ui:
            self.apply_theme(new.ui.theme)

    def apply_theme(self, name: str) -> None:
        """Rescan first: the themes directory may have changed, or gained the file the operator just made."""
        try:
            self.theme_catalog = ThemeCatalog.scan(self.config.ui.themes_dir)
            theme = self.theme_catalog.load(name)
        except ThemeError as exc:
            self.notify(str(exc), title="Theme", severity="error")
            return
        self.register_theme(theme)
        self.theme = theme.name
        self.theme_name = name
        self.main.set_palette(Palette.from_theme(theme))
