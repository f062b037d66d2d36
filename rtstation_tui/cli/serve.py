"""``rtstation serve``: the station without a console (systemd, scripts, tests)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from ..engine.config import Config
from ..engine.logsetup import setup_logging
from ..engine.receiver import ReceiverError
from ..engine.process import StationLocked
from ..engine.station import Station
from .output import fail

log = logging.getLogger("rtstation.serve")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common], help="run headless: receive, index, forward; logs to stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    setup_logging(config, stream=sys.stdout, level=args.log_level)
    try:
        return asyncio.run(serve(config))
    except StationLocked as exc:
        return fail(str(exc))


async def serve(config: Config) -> int:
    station = Station(config)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await station.start()
    except ReceiverError as exc:
        log.error("%s", exc)
        await station.stop()
        return 1
    log.info("rtstation %s serving: AE %s on %s, data in %s", _version(), config.station.ae_title,
             station.receiver.address if station.receiver else "-", config.data_dir)
    await stopping.wait()
    log.info("stopping: refusing new associations, finishing in-flight stores")
    await station.stop()
    log.info("stopped")
    return 0


def _version() -> str:
    from .. import __version__

    return __version__
