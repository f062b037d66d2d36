"""The CLI's door to a running station: when a station answers on the data_dir's API socket, commands that read
or change the live station (``send``, ``queue retry|cancel``, ``echo``, ``show``, ``rules test``, ``stop``) ask it
through the API; when none answers they work offline on the data_dir, as they always did."""

from __future__ import annotations

from ..engine.config.model import Config
from ..engine.service.client import ApiCallError, ApiClient, live_station
from .output import fail

__all__ = ["ApiCallError", "ApiClient", "api_fail", "connect"]


def connect(config: Config) -> ApiClient | None:
    """The running station's API client, or None when no station answers (the command works offline)."""
    found = live_station(config.api_socket)
    return found[0] if found is not None else None


def api_fail(exc: ApiCallError) -> int:
    """The station's refusal as the offline command would say it: exit 2 for a bad request or an unknown name, 1 for a refusal (409, 503)."""
    return fail(exc.message, 2 if exc.status in (400, 404) else 1)
