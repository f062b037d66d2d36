"""Transforms by the names rules, nodes and the command line use: ``anonymize:PROFILE``, ``overlay[:ROI,...]``
(more come with [ACTIONS]).

Why names: a queued job stores the name, not an object, so a restart rebuilds the same transform from the config.
"""

from __future__ import annotations

from ..config.model import Config
from .base import Transform, TransformError

KINDS = ("anonymize", "overlay")


def build_transform(spec: str, config: Config) -> Transform:
    """The transform a spec names; TransformError says what is wrong and what exists."""
    kind, _, arg = spec.strip().partition(":")
    if kind == "anonymize":
        from .anonymize import build

        return build(config, arg or config.anonymize.default_profile)
    if kind == "overlay":
        from .overlay import build as build_overlay

        return build_overlay(arg)
    raise TransformError(f"unknown transform {spec!r}: use anonymize:PROFILE or overlay[:ROI,...]")
