"""``rtstation stop``: stop the station serving this data_dir, as SIGTERM would (no new associations, in-flight
stores finish, the index is flushed), and wait until it has let go of the data_dir."""

from __future__ import annotations

import argparse
import time

from ..engine.config.model import Config
from ..engine.store.lock import DataDirLock, StationLocked
from .output import fail
from .remote import ApiCallError, api_fail, connect

POLL_S = 0.2


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("stop", parents=[common], help="stop the station serving this data_dir (graceful)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S", help="how long to wait (default 60 s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    remote = connect(config)
    if remote is None:
        return fail(f"no station answers on {config.api_socket}: nothing to stop")
    try:
        answer = remote.call_sync("POST", "/api/v1/stop")
    except ApiCallError as exc:
        return api_fail(exc)
    pid = answer.get("pid")
    print(f"stopping the station (pid {pid}): in-flight stores finish first")
    deadline = time.monotonic() + args.timeout
    lock = DataDirLock(config.data_dir)
    while time.monotonic() < deadline:
        try:
            lock.acquire()
        except StationLocked:
            time.sleep(POLL_S)  # another process's lock: nothing to wait on but the lock itself
            continue
        lock.release()
        print(f"stopped (pid {pid})")
        return 0
    return fail(f"the station (pid {pid}) did not stop within {args.timeout:.0f} s")
