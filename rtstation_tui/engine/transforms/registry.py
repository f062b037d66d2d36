"""Transforms by the names rules, nodes, jobs and the command line use (``config/transforms.py`` lists them and
checks their syntax); a chain is built spec by spec.

Why names: a queued job stores the chain's specs, not objects, so a restart rebuilds the same transforms from the
config.
"""

from __future__ import annotations

from ..config.model import Config
from ..config.transforms import chain_problem, decode_chain, spec_problem, split_spec
from .base import Transform, TransformError


def build_transform(spec: str, config: Config) -> Transform:
    """The transform a spec names; TransformError says what is wrong and what exists."""
    problem = spec_problem(spec, config.anonymize.profile_names())
    if problem:
        raise TransformError(problem)
    kind, arg = split_spec(spec)
    if kind == "anonymize":
        from .anonymize import build

        return build(config, arg or config.anonymize.default_profile)
    if kind == "overlay":
        from .overlay import build as build_overlay

        return build_overlay(arg)
    if kind == "seg":
        from .derived import build_seg

        return build_seg(arg)
    if kind == "classic":
        from .derived import Classic

        return Classic()
    if kind == "machine_map":
        from .machines import build as build_machines

        return build_machines(arg)
    if kind == "plugin":
        from .plugins import build as build_plugin

        return build_plugin(arg, config)
    from .tags import TagEdit

    return TagEdit(spec)


def build_chain(stored: str, config: Config) -> list[Transform]:
    """A job's ``transform`` column (one spec or a JSON list of them) as the transforms, in order."""
    try:
        specs = decode_chain(stored)
    except ValueError as exc:
        raise TransformError(str(exc)) from None
    problem = chain_problem(specs)  # e.g. a rule's seg and its node's overlay: refused when the job is queued
    if problem:
        raise TransformError(problem)
    return [build_transform(spec, config) for spec in specs]


def describe(stored: str, config: Config) -> list[str]:
    """What each transform of the chain does, for the dry runs; a spec that cannot be built says why."""
    out = []
    problem = chain_problem(decode_chain(stored))
    if problem:  # a rule's chain and its node's may each be fine and not go together
        out.append(f"cannot apply: {problem}")
    for spec in decode_chain(stored):
        kind, arg = split_spec(spec)
        try:
            if kind == "anonymize":  # without reading (or making) the project key: a dry run changes nothing
                profile = config.anonymize.profile(arg or config.anonymize.default_profile)
                out.append(f"anonymize:{profile.name}: {'; '.join(profile.options())}")
                continue
            out.append(build_transform(spec, config).describe())
        except ValueError as exc:
            out.append(f"{spec}: cannot apply: {exc}")
    return out
