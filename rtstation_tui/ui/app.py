"""The operator console: a Textual app around the same ``Station`` that ``rtstation serve`` runs.

Lifecycle: the station starts in a worker after the first paint (the console is usable at once, even while the
receiver binds or the start-up recovery reads a big index) and stops before the app exits — from ``q``, Ctrl+Q,
SIGTERM, ``rtstation stop``, or any other way out (``on_unmount``). Stopping refuses new associations and lets
in-flight stores finish, so nothing acknowledged is lost. A hung-up terminal (the SSH connection dropped, SIGHUP:
``ui/terminal.py``) never stops the station: the app exits without stopping it and the process goes on headless
(``ui/headless.py``) until SIGTERM or ``rtstation stop``. An attached console that loses its terminal just ends
(open work is the serving station's); with the terminal gone it leaves within ~2 s.

Engine events arrive on this loop from the station's bus; they are queued and applied at most ``FLUSH_HZ`` times a
second, so a peer sending a thousand objects a second costs ten screen updates, not a thousand.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

from textual.app import App
from textual.css.query import NoMatches

from ..engine.api import EchoOutcome, ReceiverError, StationAPI, StationLocked
from ..engine.config.model import Config
from ..engine.events import (AssociationClosed, AssociationOpened, BundleChanged, BundleReady, BusLogHandler, Event,
                             ImportFolderState, InstanceQuarantined, InstancesStored, JobChanged, JobProgress,
                             LogEvent, MetricsComputed, ObjectsDeleted, ReceiveProgress, ReceiverState, RetrieveFinished,
                             RetrieveProgress, RulesEvaluated)
from ..engine.logsetup import add_handler, remove_handler, setup_logging
from ..engine.service.client import ApiCallError
from ..engine.service.remote import RemoteStation, attach
from ..engine.station import Station
from .actions import StationActions
from .commands.registry import CommandScope, bindings
from .commands.station import StationCommands
from .editing import ConfigEditing
from .labels import Palette, plain
from .screens.main import MainScreen
from .screens.metrics import MetricsScreen
from .screens.remote import RemoteScreen
from .headless import continue_headless, keep_the_shell
from .terminal import ConsoleDriver, TerminalLost
from .themes import ThemeCatalog, ThemeError
from .widgets.bars import RateMeter
from .widgets.logpane import LogLine

log = logging.getLogger("rtstation.console")
FLUSH_HZ = 10
TERMINAL_LOST_GRACE = 0.5  # s that open associations may go on once the terminal is gone; then they are aborted
EXIT_FALLBACK = 3.0  # s after the station stopped with the terminal gone: leave even if Textual's exit hangs




class StationApp(StationActions, ConfigEditing, CommandScope):
    CSS_PATH = "app.tcss"
    TITLE = "rtstation"
    COMMANDS = App.COMMANDS | {StationCommands}
    COMMAND_SCOPE = "app"
    BINDINGS = bindings("app")

    def __init__(self, config: Config, *, theme: str | None = None, log_level: str | None = None,
                 listen: bool = True, station: RemoteStation | None = None) -> None:
        super().__init__()
        self.config = config
        # a station served by another process (attached), or one that runs here, started and stopped with the console
        self.station: Station | RemoteStation = station if station is not None else Station(config, receive=listen)
        self.attached = station is not None
        # the header says which, short enough for 80 columns: "here pid N" (this console runs the station) or
        # "attached pid N" (the serving process's pid)
        self.owner = (f"attached pid {station.pid}" if station is not None else f"here pid {os.getpid()}")
        self.api: StationAPI = self.station  # everything the screens read or ask goes through this interface
        self.listen = listen
        self.level = logging.getLevelName(log_level or config.logging.level)
        self.theme_name = theme or config.ui.theme
        self.theme_catalog = ThemeCatalog.scan(config.ui.themes_dir)
        self._pending: list[Event] = []
        self._flush_due = False
        self._last_flush = 0.0
        self._open: set[int] = set()
        self._log_handler: BusLogHandler | None = None
        self._unsubscribe: Any = None
        self.stopping = False
        self.terminal_lost = False
        self.headless = False  # the app exits, the station it runs goes on (run_console continues it)
        self.left_running = False  # … because the operator chose so on q (else: the terminal was lost)
        self._leaving = False
        self._stop_task: asyncio.Future[None] | None = None
        self._starting: asyncio.Future[None] | None = None
        self.rate = RateMeter()
        self.last_echo: dict[str, EchoOutcome] = {}  # per node, shown by the nodes screen

    def get_driver_class(self) -> Any:
        """Textual's Linux driver, plus noticing a hung-up terminal (``ui/terminal.py``)."""
        from textual.drivers.linux_driver import LinuxDriver

        cls = super().get_driver_class()
        return ConsoleDriver if cls is LinuxDriver else cls

    # -- start ---------------------------------------------------------------------------------------------------
    async def on_mount(self) -> None:
        themes, theme_problems = self.theme_catalog.load_all()
        for theme in themes:  # all of them, so the palette's theme switcher offers them too
            self.register_theme(theme)
        t = self.theme_catalog.load(self.theme_name)
        self.register_theme(t)
        self.theme = t.name
        self._main = MainScreen(self.config, self.api, self.level, Palette.from_theme(t))
        await self.push_screen(self._main)
        if self.owner:
            self._main.header.set_owner(self.owner)
        if isinstance(self.station, Station):  # rtstation stop (the API) stops it as q would
            self.station.on_stop_request(lambda: self.run_worker(self.stop_and_exit(), group="station"))
        if not self.listen:
            self._main.header.set_state("off")
        self._unsubscribe = self.api.subscribe(self.on_engine_events)
        self._log_handler = BusLogHandler(self.station.bus, level=logging.DEBUG)
        add_handler(self._log_handler)
        self._log_themes(theme_problems)
        self._install_signals()
        self._starting = asyncio.ensure_future(self._start_station())  # a task, not a worker: exit must not cancel it
        self.set_interval(1.0, self._tick)
        self.set_interval(5.0, self.refresh_status)
        self.refresh_status()

    def _log_themes(self, problems: list[str]) -> None:
        """Once the log pane listens: which user files replace a built-in theme, and which theme files are bad."""
        for entry in self.theme_catalog.overrides:
            log.info("theme %s: using %s instead of the built-in one", entry.name, entry.file)
        for problem in problems:
            log.warning("theme not offered: %s", problem)

    async def _start_station(self) -> None:
        try:
            await self.station.start()
        except StationLocked as exc:
            self.exit(1, return_code=1, message=plain(f"rtstation: {exc}"))  # printed by Rich: never markup
            return
        except ApiCallError as exc:  # the station we attach to went away between the probe and now
            self.exit(1, return_code=1, message=f"rtstation: {exc.message}")
            return
        except ReceiverError as exc:  # the header shows "error" (ReceiverState event); the rest keeps running
            log.error("%s", exc)
        except Exception as exc:  # the console stays up to show it; the log file has the traceback
            log.exception("the station failed to start")
            self._main.header.set_state("error", f"start failed: {exc}")
            return
        else:
            log.info("console %s: AE %s on %s", "attached" if self.attached else "started",
                     self.config.station.ae_title, self.api.status().address or "(not listening)")
        status = self.api.status()
        if self.is_running:  # the import folder's state so far (later changes come as events)
            self._main.header.set_import(status.import_state, status.import_folder, status.import_detail)
            self._main.station_started()  # an empty store's first screen echoes the nodes
        if not status.send_unavailable and self.is_running:  # jobs persisted from before this start: bars at once
            jobs = await asyncio.to_thread(self.api.jobs, True)
            if self.is_running and not self.stopping:
                self.apply_events([JobChanged(r.id, r.node, r.plan_uid, r.label, r.state, r.done, r.total,
                                              r.failed, r.error or "", r.commitment) for r in reversed(jobs)])

    def _install_signals(self) -> None:
        """SIGHUP (terminal lost) and SIGTERM: finish in-flight stores, stop, exit 0. Textual handles neither."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGHUP, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (RuntimeError, ValueError, NotImplementedError):  # not the main thread (some test runners)
                pass

    def _on_signal(self, sig: int) -> None:
        if sig == signal.SIGHUP:  # the terminal hung up (the driver may not have seen it yet)
            self.on_terminal_lost(TerminalLost())
            return
        log.warning("%s: stopping; in-flight stores finish first", signal.Signals(sig).name)
        self.run_worker(self.stop_and_exit(), group="station")

    def on_terminal_lost(self, _: TerminalLost) -> None:
        """The driver saw the terminal hang up (with or without the SIGHUP that usually comes too): a console
        running the station goes headless, an attached one ends (the station is another process's)."""
        if self.terminal_lost:
            return
        self.terminal_lost = True
        if self.attached or self.stopping:  # a stop already under way finishes as asked
            log.warning("terminal lost: the console ends")
            self.run_worker(self.stop_and_exit(terminal_lost=True), group="station")
        else:
            self.go_headless()

    def go_headless(self) -> None:
        """Leave the app without stopping the station: ``run_console`` goes on running it on this same loop."""
        self.headless = True
        self.exit(0, return_code=0)

    def leave_running(self) -> None:
        """``q`` → "leave running": the terminal is fine and goes back to the shell (``ui/headless.py``)."""
        self.left_running = True
        self.go_headless()

    async def stop_station(self, timeout: float = 30.0) -> None:
        """Stop the station once, however many ways out are taken at the same time (q, then SIGHUP, then exit).
        ``timeout``: how long open associations may go on before they are aborted (the first caller's)."""
        if self._stop_task is None:
            self.stopping = True
            self._stop_task = asyncio.ensure_future(self._stop_after_start(timeout))
        await asyncio.shield(self._stop_task)

    async def _stop_after_start(self, timeout: float) -> None:
        """A quit in the first instant waits for the start to finish, so nothing is left running behind it."""
        if self._starting is not None:
            await asyncio.wait([self._starting])
        await self.station.stop(timeout)

    async def stop_and_exit(self, code: int = 0, *, terminal_lost: bool = False) -> None:
        gone = terminal_lost and self.is_headless is False and (self.terminal_lost or not _terminal_alive())
        if not self.stopping:
            self._main.header.set_state("stopping", "finishing in-flight stores")
        # With the terminal gone nobody can watch a long transfer end: the C-STOREs in flight finish (an abort waits
        # for the store handler), what is acknowledged is stored and indexed, and the process leaves within ~2 s.
        await self.stop_station(TERMINAL_LOST_GRACE if gone else 30.0)
        if gone and not self._leaving:
            self._leaving = True
            log.info("terminal lost: %s, exiting", "console detached" if self.attached else "station stopped")
            _exit_later(code)  # everything that matters is done (stores, index, lock): a hung exit must not stay
        self.exit(code, return_code=code)

    async def on_unmount(self) -> None:
        """Any way out: the station must still stop cleanly (in-flight stores finish, the index is flushed)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        if not self.headless:
            await self.stop_station()
        if self._log_handler is not None:
            remove_handler(self._log_handler)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGHUP, signal.SIGTERM):
            try:
                loop.remove_signal_handler(sig)
            except (RuntimeError, ValueError, NotImplementedError):
                pass

    def watch_theme(self, theme: str) -> None:
        """A theme chosen in the command palette: labels are Rich text with theme colours, so redo them."""
        main = getattr(self, "_main", None)
        if main is not None and main.is_mounted:
            main.set_palette(Palette.from_theme(self.current_theme))

    # -- engine events ------------------------------------------------------------------------------------------
    def on_engine_events(self, batch: list[Event]) -> None:
        """Called by the bus on this loop; queues the batch and schedules one flush (at most FLUSH_HZ per second)."""
        self._pending.extend(batch)
        if not self._flush_due:
            self._flush_due = True
            delay = self._last_flush + 1 / FLUSH_HZ - time.monotonic()
            if delay > 0:
                self.set_timer(delay, self.flush_events)
            else:
                self.call_later(self.flush_events)

    def flush_events(self) -> None:
        self._flush_due = False
        self._last_flush = time.monotonic()
        batch, self._pending = self._pending, []
        if not self.is_running:
            return
        try:
            self.apply_events(batch)
        except NoMatches:  # a flush racing the exit, while the screen is being taken down: nothing to show
            if self.is_running and self._main.is_attached:
                raise

    def apply_events(self, batch: list[Any]) -> None:
        """Apply a batch of events to the screen (public so tests can inject events)."""
        main = self._main
        patients: set[str] = set()
        plans: set[str] = set()
        settled = jobs_changed = metrics = store_changed = False
        lines: list[LogLine] = []
        for ev in batch:
            if isinstance(ev, LogEvent):
                lines.append(LogLine(ev.at, ev.level, ev.logger, ev.message))
            elif isinstance(ev, InstancesStored):
                new = [i for i in ev.items if i.status != "duplicate"]
                patients.update(i.patient_id for i in ev.items)
                main.status.today += len(new)
                self.rate.add(len(new))
            elif isinstance(ev, (BundleChanged, BundleReady, RulesEvaluated)):
                patients.add(ev.patient_id)
                plans.add(ev.plan_uid)
                settled = True
            elif isinstance(ev, ReceiverState):
                if not self.stopping or ev.state != "stopped":
                    main.header.set_state(ev.state, ev.detail, ev.address)
                if ev.state == "reconnecting":  # a receive may end unseen: the next progress shows it again
                    main.tree.clear_receiving()
                if isinstance(self.station, RemoteStation) and self.owner:  # a restarted service has a new pid
                    self.owner = f"attached pid {self.station.pid}"
                    main.header.set_owner(self.owner)
            elif isinstance(ev, AssociationOpened):
                self._open.add(ev.assoc_id)
            elif isinstance(ev, AssociationClosed):
                self._open.discard(ev.assoc_id)
                main.tree.association_ended(ev.assoc_id)
            elif isinstance(ev, ReceiveProgress):
                if not main.tree.set_receiving(ev.patient_id, ev.assoc_id, None if ev.done else ev.received):
                    patients.add(ev.patient_id)  # not in the tree yet: its row is read (if the filter lets it)
            elif isinstance(ev, ImportFolderState):
                main.header.set_import(ev.state, ev.folder, ev.detail, ev.pending)
            elif isinstance(ev, InstanceQuarantined):
                self.notify(f"{ev.name}: quarantined ({ev.reason})", severity="warning")
            elif isinstance(ev, ObjectsDeleted):
                if ev.patient_gone:
                    main.tree.remove_patient(ev.patient_id)
                    main.rows_removed()
                else:
                    patients.add(ev.patient_id)
                    if main.shown_plan in ev.plan_uids:
                        main.rows_removed()
                plans.update(ev.plan_uids)
                settled = store_changed = True
            elif isinstance(ev, MetricsComputed):
                metrics = True
            elif isinstance(ev, (JobChanged, JobProgress)):
                main.on_job_event(ev)
                jobs_changed = jobs_changed or isinstance(ev, JobChanged)
        if lines:
            main.logpane.add(lines)
        if patients or plans:
            main.bundle_touched(patients, plans, settled)
        main.status.arriving = len(self._open)
        main.status.refresh_text()
        if jobs_changed or store_changed:
            self.refresh_status()
        if metrics and isinstance(self.screen, MetricsScreen):
            self.screen.metrics_changed()
        self._retrieve_events([ev for ev in batch if isinstance(ev, (RetrieveProgress, RetrieveFinished))])

    def _retrieve_events(self, events: list[RetrieveProgress | RetrieveFinished]) -> None:
        """[QR]: to the Remote screen if one is open; a finished retrieve is also said when it is not on top."""
        if not events:
            return
        remote = self.get_screen("remote") if self.is_screen_installed("remote") else None
        if isinstance(remote, RemoteScreen) and remote.is_mounted:
            remote.retrieve_events(events)
        for ev in events:
            if isinstance(ev, RetrieveFinished) and self.screen is not remote:
                self.notify(f"retrieve of {ev.patient_id} from {ev.node}: {ev.message}", title="Remote",
                            severity="information" if ev.ok else "error", markup=False)

    @property
    def arriving(self) -> int:
        return len(self._open)

    def busy_reason(self) -> str:
        """An attached console leaves the station running: quitting it interrupts nothing."""
        return "" if self.attached else super().busy_reason()


def _terminal_alive() -> bool:
    """Is our controlling terminal still there? (After an SSH drop, opening it fails.)"""
    try:
        with open("/dev/tty", "rb"):
            return True
    except OSError:
        return False


def _exit_later(code: int) -> None:
    """Only once the station has stopped (stores finished, index flushed, lock released): if Textual's own exit has
    not ended the process within EXIT_FALLBACK seconds (a terminal that is gone can hang it), leave anyway."""

    def leave() -> None:
        log.warning("terminal lost: the console's exit hung for %.0f s; leaving now (the station is stopped)",
                    EXIT_FALLBACK)
        logging.shutdown()
        os._exit(code)

    timer = threading.Timer(EXIT_FALLBACK, leave)
    timer.daemon = True
    timer.start()


def run_console(config: Config, log_level: str | None = None, reread: Callable[[], Config] | None = None) -> int:
    """``rtstation`` / ``rtstation tui``. Returns the exit status (2: bad theme, 1: data_dir in use)."""
    try:
        ThemeCatalog.scan(config.ui.themes_dir).load(config.ui.theme)
    except ThemeError as exc:
        print(f"rtstation: configuration error: {exc}", file=sys.stderr)
        return 2
    remote = attach(config)
    if remote is not None:  # the station's own configuration (an operator in its group may not write its log dir)
        config = remote.config
    elif os.isatty(0) and os.isatty(1):  # this console will run the station: the shell's job must be able to end
        keep_the_shell()  # while the station is left running (q → leave running); nothing runs in threads yet
    writable = remote is None or os.access(config.log_dir, os.W_OK)
    setup_logging(config, stream=None, level=log_level, file=writable)  # the file; the pane is added by the app
    app = StationApp(config, log_level=log_level, station=remote)
    if isinstance(app.station, Station):  # consoles attached to it save their edits through its API, re-read so
        app.station.reread = reread
    return asyncio.run(_console(app))


async def _console(app: StationApp) -> int:
    """The app, then — when it left a station running (the terminal was lost) — that station headless, on the same
    event loop the station's tasks live on."""
    result = await app.run_async()
    if app.headless and isinstance(app.station, Station):
        return await continue_headless(app.station, app._starting, lost=not app.left_running)
    return int(result if isinstance(result, int) else app.return_code or 0)
