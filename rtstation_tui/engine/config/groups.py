"""Node groups (``[[groups]]``): one name for several nodes, usable wherever a node name is (rule targets,
``rtstation send --to``, the API's send, the console's send dialog).

Why groups are flat (a group lists nodes, never other groups): what a group sends to must be readable at a glance in
the file and in the send dialog; nesting would hide the real destinations one level down, and "QA-ALL" with a
disabled member must say which node is left out. A group name may not be a node name: ``--to QA`` must mean one
thing.

Expansion keeps the order of the targets as written and drops repeats (a node in two named groups gets one job).
A disabled node is left out of a group's expansion for sends (the group still reaches its other members); naming a
disabled node directly is refused as before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .checks import ConfigError
from .checks import setting as _c
from .nodes import NodeConfig, resolve_node

log = logging.getLogger("rtstation.config")


@dataclass(frozen=True)
class GroupConfig:
    name: str = _c(kind="name")
    nodes: tuple[str, ...] = _c(())


def validate_groups(groups: Sequence[GroupConfig], node_names: Sequence[str], file: str) -> None:
    """Every member a configured node; names unique and not a node's; no empty group; no group in a group."""
    names = [g.name for g in groups]
    known = ", ".join(node_names) or "none configured"
    for i, group in enumerate(groups):
        where = f"groups[{i}] ({group.name!r})"
        if group.name in names[:i]:
            raise ConfigError(file, f"{where}.name", "another group has this name; group names must be unique")
        if group.name in node_names:
            raise ConfigError(file, f"{where}.name", f"{group.name!r} is already the name of a node; a group needs "
                              f"a name of its own (nodes: {known})")
        if not group.nodes:
            raise ConfigError(file, f"{where}.nodes", "a group needs at least one node, e.g. nodes = [\"QA\"]")
        for j, member in enumerate(group.nodes):
            if member in names:
                members = ", ".join(next(g for g in groups if g.name == member).nodes)
                raise ConfigError(file, f"{where}.nodes[{j}]", f"{member!r} is a group; groups cannot contain "
                                  f"groups: list its nodes ({members}) instead")
            if member not in node_names:
                raise ConfigError(file, f"{where}.nodes[{j}]", f"unknown node {member!r}; nodes: {known}")
            if member in group.nodes[:j]:
                raise ConfigError(file, f"{where}.nodes[{j}]", f"{member!r} is listed twice")


def group_of(name: str, groups: Sequence[GroupConfig]) -> GroupConfig | None:
    return next((g for g in groups if g.name == name), None)


def expand(targets: Iterable[str], groups: Sequence[GroupConfig]) -> tuple[str, ...]:
    """Targets with each group replaced by its nodes, in order, each node once."""
    out: list[str] = []
    for target in targets:
        group = group_of(target, groups)
        for name in (group.nodes if group is not None else (target,)):
            if name not in out:
                out.append(name)
    return tuple(out)


def describe_targets(targets: Iterable[str], groups: Sequence[GroupConfig]) -> str:
    """``QA-ALL (QA, PHYS), ARCHIVE``: what the operator wrote, with what each group stands for."""
    parts = []
    for target in targets:
        group = group_of(target, groups)
        parts.append(f"{target} ({', '.join(group.nodes)})" if group is not None else target)
    return ", ".join(parts)


def left_out(target: str, named: Sequence[str], nodes: Sequence[NodeConfig]) -> bool:
    """A disabled node reached only through a group: the group's send goes on without it."""
    node = next((n for n in nodes if n.name == target), None)
    return node is not None and not node.enabled and target not in named


def resolve_targets(targets: Sequence[str], nodes: Sequence[NodeConfig],
                    groups: Sequence[GroupConfig]) -> list[NodeConfig]:
    """The nodes a send to ``targets`` (node names, group names, ``AET@host:port``) goes to.

    ValueError: an unknown name (listing nodes and groups), or a group whose every node is disabled."""
    out: list[NodeConfig] = []
    for target in targets:
        group = group_of(target, groups)
        if group is None:
            node = _resolve(target, nodes, groups)
            if node.name not in (n.name for n in out):
                out.append(node)
            continue
        members = [resolve_node(name, tuple(nodes)) for name in group.nodes]
        enabled = [n for n in members if n.enabled]
        if not enabled:
            raise ValueError(f"group {group.name}: every node is disabled ({', '.join(group.nodes)})")
        for node in members:
            if not node.enabled:
                log.info("group %s: node %s is disabled and gets nothing", group.name, node.name)
            elif node.name not in (n.name for n in out):
                out.append(node)
    return out


def expand_for_send(targets: Sequence[str], config: Any) -> list[str]:
    """The node names (or ``AET@host:port`` specs) a send to ``targets`` reaches: ``resolve_targets`` by name."""
    return [n.name for n in resolve_targets(targets, config.nodes, config.groups)]


def _resolve(target: str, nodes: Sequence[NodeConfig], groups: Sequence[GroupConfig]) -> NodeConfig:
    try:
        return resolve_node(target, tuple(nodes))
    except ValueError:
        if not groups:
            raise
        names = ", ".join(n.name for n in nodes) or "none configured"
        raise ValueError(f"unknown node or group {target!r}: use a configured node ({names}), a group "
                         f"({', '.join(g.name for g in groups)}) or AET@host:port") from None
