"""Filters and sorts over the plan metrics: ``label~ADP``, ``max_dose>60Gy``, ``machine=TrueBeam*``,
``received>2026-01-01``, ``approval=APPROVED`` → one parameterized SQL ``WHERE`` over ``metric_plans``.

Why SQL and not Python: a filter over 10,000 plans must answer in well under a second, and SQLite does that from
the table's columns without loading the facts. Values are always bound parameters, never pasted into the SQL.
Text compares ignore case; ``=`` with ``*``, ``?`` or ``[`` is a glob; ``~`` is "contains". Doses take Gy or cGy
(no unit: Gy), dates take ``YYYY-MM-DD`` (local time; ``=`` means that day) or ``YYYY-MM-DDTHH:MM``.

A plan also matches on its ROIs' DVHs: ``roi:NAME.FIELD OP VALUE`` (NAME a glob, any case) holds when some ROI
of the plan has it: ``roi:Lung*.mean>20Gy``, ``roi:PTV*.D95<57Gy``, ``roi:Heart.max>=40Gy``, ``roi:BODY.volume>
20000`` (cc), and the ``[metrics] dvh_points`` stored with each ROI: ``roi:Lung*.V20Gy>30`` (% of the ROI; ``30cc``
for cc), ``roi:Cord.D0.03cc>45Gy``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

# field → (column, kind)
FIELDS: dict[str, tuple[str, str]] = {
    "plan_uid": ("plan_uid", "text"), "label": ("label", "text"), "name": ("name", "text"),
    "patient_id": ("patient_id", "text"), "patient": ("patient_id", "text"),
    "patient_name": ("patient_name", "text"), "machine": ("machine", "text"), "approval": ("approval", "text"),
    "reviewer": ("reviewer", "text"), "intent": ("intent", "text"), "technique": ("technique", "text"),
    "radiation": ("radiation", "text"), "energy": ("energies", "text"), "status": ("status", "text"),
    "fractions": ("fractions", "number"), "beams": ("num_beams", "number"), "total_mu": ("total_mu", "number"),
    "mu": ("total_mu", "number"), "prescription": ("prescription_gy", "dose"),
    "prescription_gy": ("prescription_gy", "dose"), "dose_per_fraction": ("dose_per_fraction_gy", "dose"),
    "max_dose": ("max_dose_gy", "dose"), "mean_dose": ("mean_dose_gy", "dose"), "min_dose": ("min_dose_gy", "dose"),
    "received": ("received", "date"), "computed": ("computed", "date"),
}
OPERATORS = ("!=", ">=", "<=", "!~", "~", "=", ">", "<")
_COND = re.compile(r"^\s*([A-Za-z_]+)\s*(!=|>=|<=|!~|~|=|>|<)\s*(.*?)\s*$")
_ROI_COND = re.compile(r"^\s*roi:(?P<name>.+)\.(?P<field>[A-Za-z]+[0-9.]*(?:%|cc|Gy|cGy)?)\s*"
                       r"(?P<op>!=|>=|<=|=|>|<)\s*(?P<value>.*?)\s*$", re.IGNORECASE)
_SPLIT = re.compile(r"\s*,\s*(?=(?:roi:[^,]*?|[A-Za-z_]+)\s*(?:!=|>=|<=|!~|~|=|>|<))|\s+and\s+", re.IGNORECASE)
ROI_FIELDS = {"mean": ("mean_gy", "dose"), "min": ("min_gy", "dose"), "max": ("max_gy", "dose"),
              "volume": ("volume_cc", "number")}
D_KEYS = ("99", "98", "95", "50", "5", "2", "1")  # the Dx every ROI row holds (dvh.D_LEVELS)
_DOSE = re.compile(r"^([-+]?\d+(?:\.\d*)?|\.\d+)\s*(gy|cgy)?$", re.IGNORECASE)


class QueryError(ValueError):
    """A filter or sort the user gave is wrong; the message names it and what is allowed."""


@dataclass(frozen=True)
class Where:
    sql: str  # "" when there is no condition
    params: tuple[object, ...]


def parse_where(expressions: list[str], points: tuple[str, ...] | None = None) -> Where:
    """``points``: the configured ``[metrics] dvh_points`` (a ROI filter on another point is refused by name);
    None: not known here, any well-formed point is taken."""
    parts: list[str] = []
    params: list[object] = []
    for expr in expressions:
        for cond in _SPLIT.split(expr.strip()):
            if cond:
                sql, values = roi_condition(cond, points) if cond.lstrip().lower().startswith("roi:") \
                    else condition(cond)
                parts.append(sql)
                params.extend(values)
    return Where(" AND ".join(parts), tuple(params))


def roi_condition(text: str, points: tuple[str, ...] | None) -> tuple[str, list[object]]:
    m = _ROI_COND.match(text)
    if m is None:
        raise QueryError(f"filter {text!r} is not roi:NAME.FIELD OP VALUE (e.g. roi:Lung*.mean>20Gy; fields: "
                         f"{', '.join(ROI_FIELDS)}, D{'/D'.join(D_KEYS)}, or a [metrics] dvh_points entry)")
    name, field, op, raw = m["name"].strip(), m["field"], m["op"], m["value"].strip("'\"")
    column, kind = _roi_column(field, raw, points, text)
    value = _dose(raw, text) if kind == "dose" else _number(raw.rstrip("%").removesuffix("cc").strip(), text)
    match = "GLOB" if any(c in name for c in "*?[") else "="
    cmp_sql, cmp_values = _compare(column, op, value)
    return (f"EXISTS (SELECT 1 FROM metric_rois r WHERE r.plan_uid = metric_plans.plan_uid AND lower(r.name) "
            f"{match} lower(?) AND {cmp_sql})", [name, *cmp_values])


def _roi_column(field: str, raw: str, points: tuple[str, ...] | None, text: str) -> tuple[str, str]:
    """SQL expression over metric_rois r and its kind, for a ROI field."""
    lower = field.lower()
    if lower in ROI_FIELDS:
        column, kind = ROI_FIELDS[lower]
        return f"r.{column}", kind
    if re.fullmatch(r"[Dd]\d+", field) and field[1:] in D_KEYS:
        return f"json_extract(r.d_gy, '$.\"{field[1:]}\"')", "dose"
    if points is not None and field not in points:
        configured = ", ".join(points) or "none"
        raise QueryError(f"filter {text!r}: {field} is neither {', '.join(ROI_FIELDS)}, D{'/D'.join(D_KEYS)} nor "
                         f"a [metrics] dvh_points entry (configured: {configured})")
    if not re.fullmatch(r"[DV]\d+(\.\d+)?(%|cc|Gy|cGy)?", field):
        raise QueryError(f"filter {text!r}: unknown ROI field {field!r}")
    key = field.replace('"', "")
    if field.startswith("V"):
        unit = "cc" if raw.lower().endswith("cc") else "percent"
        return f"json_extract(r.points, '$.\"{key}\".{unit}')", "number"
    return f"json_extract(r.points, '$.\"{key}\"')", "dose"


def condition(text: str) -> tuple[str, list[object]]:
    m = _COND.match(text)
    if m is None:
        raise QueryError(f"filter {text!r} is not FIELD OP VALUE (operators: {' '.join(OPERATORS)})")
    name, op, raw = m.group(1).lower(), m.group(2), m.group(3).strip("'\"")
    if name not in FIELDS:
        raise QueryError(f"filter {text!r}: unknown field {name!r}; fields: {', '.join(sorted(FIELDS))}")
    column, kind = FIELDS[name]
    if kind == "text":
        return _text(column, op, raw)
    if op in ("~", "!~"):
        raise QueryError(f"filter {text!r}: {op} is for text fields; {name} takes = != > >= < <=")
    if kind == "date":
        return _date(column, op, raw, text)
    value = _dose(raw, text) if kind == "dose" else _number(raw, text)
    return _compare(column, op, value)


def _text(column: str, op: str, raw: str) -> tuple[str, list[object]]:
    col = f"lower(coalesce({column}, ''))"
    if op in ("~", "!~"):
        return f"instr({col}, lower(?)) {'>' if op == '~' else '='} 0", [raw]
    if op in ("=", "!=") and any(c in raw for c in "*?["):
        return f"{'' if op == '=' else 'NOT '}{col} GLOB lower(?)", [raw]
    return f"{col} {op} lower(?)", [raw]


def _compare(column: str, op: str, value: float) -> tuple[str, list[object]]:
    if op == "!=":
        return f"({column} IS NULL OR {column} != ?)", [value]
    return f"{column} {'=' if op == '=' else op} ?", [value]


def _number(raw: str, text: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise QueryError(f"filter {text!r}: {raw!r} is not a number") from None


def _dose(raw: str, text: str) -> float:
    m = _DOSE.match(raw.replace(" ", ""))
    if m is None:
        raise QueryError(f"filter {text!r}: {raw!r} is not a dose (60Gy, 6000cGy, or 60 for Gy)")
    value = float(m.group(1))
    return value / 100 if (m.group(2) or "").lower() == "cgy" else value


def _date(column: str, op: str, raw: str, text: str) -> tuple[str, list[object]]:
    try:
        start = datetime.fromisoformat(raw)
    except ValueError:
        raise QueryError(f"filter {text!r}: {raw!r} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None
    day = len(raw) <= 10
    end = start + (timedelta(days=1) if day else timedelta(minutes=1))
    t0, t1 = start.timestamp(), end.timestamp()
    if op == "=":
        return f"({column} >= ? AND {column} < ?)", [t0, t1]
    if op == "!=":
        return f"({column} IS NULL OR {column} < ? OR {column} >= ?)", [t0, t1]
    # "> 2026-01-01" means after that day; ">= 2026-01-01" from its start
    bound = {">": t1 if day else t0, ">=": t0, "<": t0, "<=": t1}[op]
    return f"{column} {'<' if op == '<=' else op} ?", [bound]


def parse_sort(spec: str) -> str:
    """``-max_dose,label`` → ``max_dose_gy DESC, label ASC`` (unknown fields are refused by name)."""
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        desc = item.startswith("-")
        name = item.lstrip("+-").lower()
        if name not in FIELDS:
            raise QueryError(f"--sort: unknown field {name!r}; fields: {', '.join(sorted(FIELDS))}")
        column, kind = FIELDS[name]
        column = f"lower({column})" if kind == "text" else column
        out.append(f"{column} IS NULL, {column} {'DESC' if desc else 'ASC'}")
    return ", ".join(out) or "received DESC"
