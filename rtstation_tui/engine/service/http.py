"""What every resource shares: JSON errors with the fitting status, query/body parameters checked by name, paging,
and who is calling (the peer's pid/uid from the Unix socket, for the log).

Why one error type: a caller (script, CLI, console) must always get ``{"error": ..., "field": ...}`` with a status
it can act on — 400 names the bad field, 404 an unknown resource, 409 a conflict with the current state, 503 when the
station cannot do it now — never an HTML page or a traceback.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import struct
from typing import Any, Awaitable, Callable, Sequence

from aiohttp import web

from .jsonable import to_json

log = logging.getLogger("rtstation.api")
MAX_LIMIT = 1000
READ_ONLY_POSTS = ("/patients/select", "/rules/dry-run", "/rules/test", "/selection/preview")


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def reply(data: Any, status: int = 200) -> web.Response:
    return web.json_response(to_json(data), status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))


def _error(status: int, message: str, field: str = "") -> web.Response:
    body: dict[str, Any] = {"error": message, "status": status}
    if field:
        body["field"] = field
    return web.json_response(body, status=status)


def peer(request: web.Request) -> str:
    """``pid N uid U`` of the process on the other end of the Unix socket (SO_PEERCRED), for the log."""
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    if sock is None or sock.family != socket.AF_UNIX:  # asyncio hands out a TransportSocket, not a socket
        return "?"
    pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                         struct.calcsize("3i")))
    return f"pid {pid} uid {uid}"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure as JSON; every request that changes something in the log, with who asked."""
    if request.method != "GET":  # queries sent as POST (a long ID list, rules to try) are not worth a line
        level = logging.DEBUG if request.path.endswith(READ_ONLY_POSTS) else logging.INFO
        log.log(level, "api: %s %s from %s", request.method, request.path, peer(request))
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(exc.status, exc.message, exc.field)
    except web.HTTPException as exc:
        if exc.content_type == "application/json":
            raise
        return _error(exc.status, exc.reason if exc.status != 404 else f"no resource {request.path}")
    except Exception as exc:  # a bug must not end the server; the log has the traceback
        log.exception("api: %s %s failed", request.method, request.path)
        return _error(500, f"internal error: {exc}")


def over_unix_socket(request: web.Request) -> bool:
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    return sock is not None and sock.family == socket.AF_UNIX


def token_check(token: Callable[[], str]) -> Any:
    """Requests that come over TCP need ``Authorization: Bearer <token>``; the Unix socket's mode guards the rest."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not over_unix_socket(request):
            expected = token()
            given = request.headers.get("Authorization", "")
            if not expected or not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
                log.warning("api: refused %s %s from %s: no valid bearer token", request.method, request.path,
                            request.remote)
                return _error(401, "this listener needs a bearer token (Authorization: Bearer <token>)")
        return await handler(request)

    return check


# -- parameters -------------------------------------------------------------------------------------------------
def query_int(request: web.Request, name: str, default: int, lo: int = 0, hi: int = 10**12) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name}: must be an integer, got {raw!r}", name) from None
    if not lo <= value <= hi:
        raise ApiError(400, f"{name}: must be between {lo} and {hi}, got {value}", name)
    return value


def query_bool(request: web.Request, name: str, default: bool) -> bool:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ApiError(400, f"{name}: must be true or false, got {raw!r}", name)


def query_choice(request: web.Request, name: str, choices: Sequence[str]) -> str:
    raw = request.query.get(name, "")
    if raw and raw not in choices:
        raise ApiError(400, f"{name}: must be one of {', '.join(choices)}, got {raw!r}", name)
    return raw


async def body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the request body is not JSON: {exc}", "body") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object", "body")
    return data


def field_str(data: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise ApiError(400, f"{name}: is required", name)
        return None
    if not isinstance(value, str) or (required and not value):
        raise ApiError(400, f"{name}: must be a non-empty string, got {value!r}", name)
    return value


def field_list(data: dict[str, Any], name: str, *, required: bool = False) -> list[str] | None:
    """A list of strings; a comma-separated string is accepted too (as ``--to a,b`` on the command line)."""
    value = data.get(name)
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if value is None or value == []:
        if required:
            raise ApiError(400, f"{name}: is required (a list of strings)", name)
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ApiError(400, f"{name}: must be a list of non-empty strings, got {value!r}", name)
    return value


def field_bool(data: dict[str, Any], name: str, default: bool = False) -> bool:
    value = data.get(name, default)
    if not isinstance(value, bool):
        raise ApiError(400, f"{name}: must be true or false, got {value!r}", name)
    return value


def page(request: web.Request, items: Sequence[Any], default_limit: int = 100) -> dict[str, Any]:
    """``{"items", "total", "offset", "limit"}`` for ``?offset=&limit=`` (limit at most MAX_LIMIT)."""
    offset = query_int(request, "offset", 0)
    limit = query_int(request, "limit", default_limit, 1, MAX_LIMIT)
    return {"items": list(items[offset:offset + limit]), "total": len(items), "offset": offset, "limit": limit}
