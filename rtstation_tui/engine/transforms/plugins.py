"""Site plug-ins: Python functions installed as package entry points, never shell commands.

- ``rtstation.transforms``: ``plugin:NAME`` in a chain runs the function the entry point NAME names,
  ``fn(objects: list[Dataset]) -> list[Dataset]`` (deep copies are passed in; the store never sees them). A function
  attribute ``changes_identity = True`` says it replaces UIDs (default False).
- ``rtstation.hooks``: entry points named ``on_ready`` / ``on_sent`` (or ``on_ready.anything`` for several), called
  as ``fn(event: dict)`` when a bundle is ready / a send job ends (``hooks.py`` in outbound calls them).

Why entry points: a site's code is installed and versioned like any package (pip, its own tests), found by name
without configuration paths, and runs in-process with a traceback in the log when it fails. A plug-in that raises
fails its own job (the exception becomes a TransformError with its reason), nothing else.
"""

from __future__ import annotations

import copy
import logging
from importlib.metadata import entry_points
from typing import Any, Callable, Sequence

from pydicom.dataset import Dataset

from ..config.model import Config
from .base import TransformError

log = logging.getLogger("rtstation.plugins")
TRANSFORMS_GROUP = "rtstation.transforms"
HOOKS_GROUP = "rtstation.hooks"


def installed(group: str) -> dict[str, Any]:
    """Entry point name → entry point, of one group (the first of a name wins, as importlib orders them)."""
    out: dict[str, Any] = {}
    for ep in entry_points(group=group):
        out.setdefault(ep.name, ep)
    return out


class PluginTransform:
    def __init__(self, name: str, fn: Callable[[list[Dataset]], list[Dataset]]) -> None:
        self.name = f"plugin:{name}"
        self.fn = fn
        self.changes_identity = bool(getattr(fn, "changes_identity", False))

    @property
    def config(self) -> str:
        return f"{getattr(self.fn, '__module__', '?')}.{getattr(self.fn, '__qualname__', '?')}"

    def describe(self) -> str:
        doc = (getattr(self.fn, "__doc__", "") or "").strip().splitlines()
        return f"{self.name}: site plug-in {self.config}" + (f" ({doc[0]})" if doc else "")

    def apply(self, objects: Sequence[Dataset]) -> list[Dataset]:
        try:
            out = self.fn([copy.deepcopy(o) for o in objects])
        except TransformError:
            raise
        except Exception as exc:
            log.exception("plug-in transform %s (%s) failed; its job fails, nothing is sent", self.name, self.config)
            raise TransformError(f"{self.name} raised {type(exc).__name__}: {exc}") from None
        if not isinstance(out, list) or not all(isinstance(o, Dataset) for o in out):
            raise TransformError(f"{self.name} returned {type(out).__name__}, not a list of datasets")
        return out


def build(name: str, config: Config) -> PluginTransform:
    ep = installed(TRANSFORMS_GROUP).get(name)
    if ep is None:
        names = ", ".join(sorted(installed(TRANSFORMS_GROUP))) or "none"
        raise TransformError(f"no plug-in transform {name!r} is installed (entry points {TRANSFORMS_GROUP}: {names})")
    try:
        fn = ep.load()
    except Exception as exc:
        log.exception("plug-in transform %s (%s) cannot be loaded", name, ep.value)
        raise TransformError(f"plug-in {name!r} ({ep.value}) cannot be loaded: {type(exc).__name__}: {exc}") from None
    if not callable(fn):
        raise TransformError(f"plug-in {name!r} ({ep.value}) is not a function")
    return PluginTransform(name, fn)
