"""``rtstation serve``: the station without a console (systemd, scripts, tests)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Callable

from ..engine.config.model import Config, ConfigError
from ..engine.logsetup import ROOT, setup_logging
from ..engine.intake.receiver import ReceiverError
from ..engine.store.lock import StationLocked
from ..engine.config.reload import ReloadError
from ..engine.station import Station
from .output import fail

log = logging.getLogger("rtstation.serve")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common], help="run headless: receive, index, forward; logs to stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    setup_logging(config, stream=sys.stdout, level=args.log_level)

    def reread() -> Config:
        from . import load  # the same file and command-line overrides as at start

        return load(args)

    try:
        return asyncio.run(serve(config, reread, fixed_level=args.log_level is not None))
    except StationLocked as exc:
        return fail(str(exc))


async def serve(config: Config, reread: Callable[[], Config] | None = None, *, fixed_level: bool = False) -> int:
    station = Station(config)
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
    api = station.api_server
    log.info("rtstation %s serving: AE %s on %s, data in %s, control API %s", _version(), config.station.ae_title,
             station.receiver.address if station.receiver else "-", config.data_dir,
             f"on {api.path}" if api is not None and api.serving else "off")
    await stopping.wait()
    log.info("stopping: refusing new associations, finishing in-flight stores")
    await station.stop()
    log.info("stopped")
    return 0


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
