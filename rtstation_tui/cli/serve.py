"""``rtstation serve``: the station without a console (systemd, scripts, tests)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Callable

from ..engine.config.model import Config, ConfigError
from ..engine.loops import Ticker
from ..engine.logsetup import ROOT, setup_logging
from ..engine.intake.receiver import ReceiverError
from ..engine.store.lock import StationLocked
from ..engine.config.reload import ReloadError
from ..engine.station import Station
from .output import fail

log = logging.getLogger("rtstation.serve")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common], help="run headless: receive, index, forward; logs to stdout")
    p.add_argument("--no-receiver", action="store_true",
                   help="no DICOM listener: only the watched import folder and the sender (rules, queue) run")
    p.add_argument("--watch-folder", metavar="PATH", help="watch this folder instead of [import] folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    setup_logging(config, stream=sys.stdout, level=args.log_level)
    watch = Path(args.watch_folder).absolute() if args.watch_folder else None

    def with_options(cfg: Config) -> Config:
        return replace(cfg, import_=replace(cfg.import_, folder=watch)) if watch is not None else cfg

    def reread() -> Config:
        from . import load  # the same file and command-line overrides as at start

        return with_options(load(args))

    try:
        return asyncio.run(serve(with_options(config), reread, fixed_level=args.log_level is not None,
                                 receive=not args.no_receiver))
    except StationLocked as exc:
        return fail(str(exc))


def effective(config: Config, address: str) -> list[str]:
    """What this process runs with, as the log's first lines: a support call starts with them."""
    acl = config.receiver.allowed_calling_aes
    nodes = [f"{n.name} {n.describe()}" + ("" if n.enabled else " (disabled)") for n in config.nodes]
    return [f"configuration: {config.path or 'built-in defaults (no file found)'}",
            f"  AE {config.station.ae_title} on {address or 'no receiver (--no-receiver)'}",
            f"  data_dir {config.data_dir}",
            f"  allowed calling AEs: {', '.join(acl) if acl else 'any'}",
            f"  import folder: {config.import_.folder or 'off'}",
            f"  nodes: {'; '.join(nodes) if nodes else 'none'}"]


async def serve(config: Config, reread: Callable[[], Config] | None = None, *, fixed_level: bool = False,
                receive: bool = True) -> int:
    station = Station(config, receive=receive)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    station.on_stop_request(stopping.set)  # rtstation stop: the same graceful stop as SIGTERM
    station.reread = reread  # POST /api/v1/config/reload: the same file and overrides as SIGHUP
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    if reread is not None:  # installed before start: a SIGHUP's default action would kill the process
        loop.add_signal_handler(signal.SIGHUP, reload, station, reread, fixed_level)
    try:
        await station.start()
    except ReceiverError as exc:
        log.error("%s", exc)
        await station.stop()
        return 1
    address = station.receiver.address if station.receiver else ""
    for line in effective(config, address):
        log.info("%s", line)
    api = station.api_server
    log.info("rtstation %s serving: AE %s on %s, data in %s, control API %s", _version(), config.station.ae_title,
             address or "- (no receiver)", config.data_dir,
             f"on {api.path}" if api is not None and api.serving else "off")
    heartbeat = Ticker("heartbeat", lambda: _heartbeat(station),
                       lambda: max(station.config.logging.heartbeat_minutes * 60, 1.0))
    if config.logging.heartbeat_minutes > 0:
        heartbeat.start()
    await stopping.wait()
    await heartbeat.stop()
    log.info("stopping: refusing new associations, finishing in-flight stores")
    await station.stop()
    log.info("stopped")
    return 0


async def _heartbeat(station: Station) -> None:
    """One line of counters: a quiet log still says the station is alive, and how it is doing."""
    if station.config.logging.heartbeat_minutes <= 0:
        return
    midnight = datetime.now().replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    today = await asyncio.to_thread(station.received_since, midnight)
    active, failed = await asyncio.to_thread(station.job_counts)
    free = await asyncio.to_thread(station.free_disk_mb)
    log.info("heartbeat: receiver %s, %d objects received today, %d send jobs waiting or running, %d failed, "
             "%.0f MB free", station.receiver_state if station.receiver else "off", today, active, failed, free)


def reload(station: Station, reread: Callable[[], Config], fixed_level: bool) -> None:
    """SIGHUP: read the configuration again and apply it; a bad one is logged and the running one stays."""
    log.info("SIGHUP: reloading the configuration from %s", station.config.path or "built-in defaults")
    try:
        changed = station.reload(reread())
    except (ConfigError, ReloadError) as exc:
        log.error("configuration NOT reloaded, the running one stays in force: %s", exc)
        return
    if "logging.level" in changed and not fixed_level:
        logging.getLogger(ROOT).setLevel(station.config.logging.level)


def _version() -> str:
    from .. import __version__

    return __version__
