"""The API server: aiohttp on a Unix socket, run in the station's own asyncio loop (no thread), started and stopped
with the station.

Why a Unix socket with mode 0660: only the station's owner and group may connect (the data_dir is 0750 too), with
no token to leak; the socket lives in the data_dir so consoles and the CLI find the station serving it. A socket
file left by a crashed process is removed at start: the caller holds the data_dir lock, so nobody else serves it.
An API that cannot bind is logged and the station keeps receiving (the API is a door, not the station).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import secrets
import ssl
import stat
from pathlib import Path
from typing import Any, Callable

from aiohttp import web

from ..logsetup import SafeFormatter, add_handler, remove_handler
from .actions import Actions
from .configedit import ConfigEdits
from .retrieves import Retrieves
from .http import errors, token_check
from .routes import V1, Reads
from .selections import Selections
from .stream import EventHub, events

log = logging.getLogger("rtstation.api")
LOG_RECORDS = 2000  # recent log records kept for GET /api/v1/log
SUN_PATH_MAX = 107  # bytes of a Unix socket path (Linux sun_path, minus the terminating NUL)


class _RecordKeeper(logging.Handler):
    """Log records → the recent-records ring and the event stream. ``emit`` runs in any thread."""

    def __init__(self, server: ApiServer, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.INFO)
        self.server, self.loop = server, loop
        self.setFormatter(SafeFormatter("%(message)s"))
        self._numbers = itertools.count(1)  # next() is atomic: records come from many threads

    def emit(self, record: logging.LogRecord) -> None:
        try:
            row = {"seq": next(self._numbers), "at": record.created, "level": record.levelno, "logger": record.name,
                   "message": self.format(record)}
            self.server.logs.append(row)  # deque.append: safe from any thread
            event = {"type": "LogEvent", "at": record.created, "level": record.levelno, "logger": record.name,
                     "message": row["message"]}
            self.loop.call_soon_threadsafe(self.server.hub.add, event)
        except RuntimeError:  # the loop closed at shutdown
            pass
        except Exception:
            self.handleError(record)


def ensure_token(path: Path) -> str:
    """The token in ``path``, or a new random one written there (0640: the station's group may read it)."""
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if len(token) < 16:
            raise ValueError(f"{path}: the token is shorter than 16 characters")
        return token
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    return token


class ApiServer:
    def __init__(self, station: Any, path: Path, *, replay: int = 10000, client_timeout: float = 10.0,
                 on_stop: Callable[[], None] | None = None) -> None:
        self.station, self.path = station, Path(path)
        self.hub = EventHub(replay)
        self.logs: collections.deque[dict[str, Any]] = collections.deque(maxlen=LOG_RECORDS)
        self.client_timeout = client_timeout
        self.on_stop = on_stop
        self._runner: web.AppRunner | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._keeper: _RecordKeeper | None = None
        self.serving = False
        self.token = ""  # the TCP listener's bearer token ("" while there is none: every TCP request is refused)
        self.tcp_address = ""

    def app(self) -> web.Application:
        from ... import __version__

        app = web.Application(middlewares=[errors, token_check(lambda: self.token)])
        Reads(self.station, self.logs, __version__).add_to(app)
        Actions(self.station, lambda: self.on_stop).add_to(app)
        ConfigEdits(self.station).add_to(app, V1)
        Selections(self.station).add_to(app)
        Retrieves(self.station).add_to(app)
        app.router.add_get(f"{V1}/events", self._events)
        return app

    async def _events(self, request: web.Request) -> web.StreamResponse:
        return await events(request, self.hub, self.client_timeout)

    async def start(self) -> None:
        """Bind and serve; on failure log why and return (the station runs on without its API)."""
        self._unsubscribe = self.station.subscribe(self.hub.publish)
        self._keeper = _RecordKeeper(self, asyncio.get_running_loop())
        add_handler(self._keeper)
        try:
            self._prepare_path()
            self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False, shutdown_timeout=2.0)
            await self._runner.setup()
            await web.UnixSite(self._runner, str(self.path)).start()
            os.chmod(self.path, 0o660)
        except (OSError, ValueError) as exc:
            log.error("control API not available: cannot listen on %s: %s", self.path, exc)
            await self._cleanup_runner()
            return
        self.serving = True
        log.debug("control API on %s (pid %d)", self.path, os.getpid())  # serve says it in its "serving" line
        if self.station.config.api.tcp_port:
            await self._start_tcp()

    async def _start_tcp(self) -> None:
        """The optional TCP listener: bearer token always, TLS with [tls] certificate and key if asked."""
        config = self.station.config
        api = config.api
        try:
            self.token = ensure_token(config.api_token_file)
            ctx = None
            if api.tcp_tls:
                ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                ctx.load_cert_chain(str(config.tls.certificate), str(config.tls.key))
            assert self._runner is not None
            await web.TCPSite(self._runner, api.tcp_bind, api.tcp_port, ssl_context=ctx).start()
        except (OSError, ssl.SSLError, ValueError) as exc:
            log.error("control API: no TCP listener on %s:%d: %s", api.tcp_bind, api.tcp_port, exc)
            return
        self.tcp_address = f"{'https' if ctx else 'http'}://{api.tcp_bind}:{api.tcp_port}"
        log.info("control API also on %s (bearer token in %s)", self.tcp_address, config.api_token_file)

    def _prepare_path(self) -> None:
        if len(os.fsencode(self.path)) > SUN_PATH_MAX:
            raise ValueError(f"the path is longer than {SUN_PATH_MAX} bytes (a Unix socket limit); set [api] socket")
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        if self.path.exists() or self.path.is_symlink():
            if not stat.S_ISSOCK(self.path.lstat().st_mode):
                raise ValueError("a file that is not a socket is in the way; remove it or set [api] socket")
            self.path.unlink()  # left by a process that died: we hold the data_dir lock

    async def stop(self) -> None:
        self.hub.close()  # event streams end their responses
        await self._cleanup_runner()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._keeper is not None:
            remove_handler(self._keeper)
        if self.serving:
            self.path.unlink(missing_ok=True)
            self.serving = False

    async def _cleanup_runner(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
