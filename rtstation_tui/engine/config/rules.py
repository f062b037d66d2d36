"""``[[rules]]`` entries as configuration: fields and load-time validation. Evaluation is ``rules.py``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from .checks import ConfigError
from .checks import setting as _c
from .groups import GroupConfig, expand
from .nodes import parse_adhoc

INCLUDE_PARTS = ("images", "structures", "plan", "doses", "registrations")


@dataclass(frozen=True)
class RuleConfig:
    name: str = _c(kind="name")
    targets: tuple[str, ...] = _c(())  # may be empty when the rule has an export
    enabled: bool = _c(True)
    source_ae: str | None = _c(None)
    plan_label: str | None = _c(None)
    machine: str | None = _c(None)
    approval: str = _c("ANY", choices=("APPROVED", "UNAPPROVED", "REJECTED", "ANY"), upper=True)
    patient_id: str | None = _c(None)
    modality: str | None = _c(None)
    include: tuple[str, ...] = _c(INCLUDE_PARTS, choices=INCLUDE_PARTS)
    stop: bool = _c(False)
    when_incomplete: str = _c("hold", choices=("send", "hold"))
    transforms: tuple[str, ...] = _c(())  # the chain every target of this rule gets (the store keeps originals)
    export: str | None = _c(None)  # folder template, e.g. "/exports/{calling_ae}/{patient_id}/{plan_label}"
    export_format: str = _c("folder", choices=("folder", "zip"))
    tag: str | None = _c(None)  # a label stored with the plan in the index (``rtstation show --tag``)
    # remove the bundle from the store once every target committed it (storage commitment); needs targets that
    # all have commitment = true (check_delete_after_send)
    delete_after_send: bool = _c(False)


EXPORT_FIELDS = ("calling_ae", "patient_id", "patient_name", "plan_label", "plan_uid", "rule", "tag", "date")


def export_problem(template: str) -> str | None:
    """An export folder template must be absolute and name only known fields."""
    import os

    try:
        template.format(**{f: "x" for f in EXPORT_FIELDS})
    except (KeyError, IndexError, ValueError) as exc:
        return f"{template!r}: fields are {{{'}, {'.join(EXPORT_FIELDS)}}} ({type(exc).__name__}: {exc})"
    if not os.path.isabs(template):
        return f"{template!r} is not an absolute path"
    if ".." in template.replace("\\", "/").split("/"):
        return f"{template!r}: '..' is not allowed"
    return None


def label_pattern_problem(pattern: str) -> str | None:
    """``re:`` patterns must compile; plain and ``glob:`` patterns always do."""
    if pattern.startswith("re:"):
        try:
            re.compile(pattern[3:])
        except re.error as exc:
            return f"bad regular expression: {exc}"
    return None


def validate_rules(rules: tuple[RuleConfig, ...], node_names: list[str], file: str,
                   group_names: list[str] | None = None) -> None:
    groups = group_names or []
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        where = f"rules[{i}] ({rule.name!r})"
        if rule.name in seen:
            raise ConfigError(file, f"{where}.name", "another rule has this name; names must be unique")
        seen.add(rule.name)
        if not rule.targets and not rule.export:
            raise ConfigError(file, f"{where}.targets", "a rule needs at least one target node or an export")
        if rule.export_format != "folder" and not rule.export:
            raise ConfigError(file, f"{where}.export_format", "applies to an export: set export = \"/path/...\" too")
        problem = export_problem(rule.export) if rule.export else None
        if problem:
            raise ConfigError(file, f"{where}.export", problem)
        if rule.tag is not None and not (rule.tag.strip() and rule.tag.isprintable() and len(rule.tag) <= 64):
            raise ConfigError(file, f"{where}.tag", f"{rule.tag!r} is not allowed: 1 to 64 printable characters")
        for target in rule.targets:
            if target not in node_names and target not in groups and parse_adhoc(target) is None:
                known = ", ".join(node_names) or "none configured"
                also = f"; groups: {', '.join(groups)}" if groups else ""
                raise ConfigError(file, f"{where}.targets", f"unknown node {target!r}; nodes: {known}{also}")
        for key in ("plan_label", "machine", "source_ae", "modality"):
            value = getattr(rule, key)
            problem = label_pattern_problem(value) if value else None
            if problem:
                raise ConfigError(file, f"{where}.{key}", f"{value!r}: {problem}")
        if rule.patient_id:
            try:
                re.compile(rule.patient_id)
            except re.error as exc:
                raise ConfigError(file, f"{where}.patient_id", f"{rule.patient_id!r}: bad regular expression: {exc}") from None


def check_delete_after_send(rules: tuple[RuleConfig, ...], commitment: dict[str, bool], file: str,
                            groups: Sequence[GroupConfig] = ()) -> None:
    """A rule that deletes after sending needs proof of delivery from every target: each must be a configured node
    with ``commitment = true`` (an ad-hoc ``AET@host:port`` target cannot have one; a group's every node counts).
    ``commitment``: node -> its setting."""
    for i, rule in enumerate(rules):
        if not rule.delete_after_send:
            continue
        where = f"rules[{i}] ({rule.name!r}).delete_after_send"
        if not rule.targets:
            raise ConfigError(file, where, "needs target nodes with commitment = true: only a node's storage "
                              "commitment proves the bundle was kept before the store removes it")
        lacking = [t for t in expand(rule.targets, groups) if not commitment.get(t, False)]
        if lacking:
            raise ConfigError(file, where, f"every target must have commitment = true before the store deletes "
                              f"what it sent; without it: {', '.join(lacking)}")
