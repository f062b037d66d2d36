"""Helpers shared by the rules and import-folder tests: config snippets, the audit log, what a storescp received."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydicom


def node_toml(name: str, spec: str, retry: str = "5x1s") -> str:
    ae, rest = spec.split("@")
    host, port = rest.split(":")
    return (f'[[nodes]]\nname = "{name}"\nae_title = "{ae}"\nhost = "{host}"\nport = {port}\nretry = "{retry}"\n'
            f'timeout_s = 10\n\n')


def rule_toml(name: str, targets: list[str], **fields: Any) -> str:
    lines = [f'[[rules]]\nname = "{name}"\ntargets = {json.dumps(targets)}']
    for k, v in fields.items():
        lines.append(f"{k} = {json.dumps(v)}")
    return "\n".join(lines) + "\n\n"


def audit_records(log_dir: Path, kind: str = "rule_decision") -> list[dict[str, Any]]:
    out = []
    for f in sorted(log_dir.glob("audit*.jsonl")):
        for line in f.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("kind") == kind:
                out.append(rec)
    return out


def decisions_for(log_dir: Path, plan_uid: str) -> dict[str, dict[str, Any]]:
    """rule name -> the latest audit record of that rule for this plan."""
    return {r["rule"]: r for r in audit_records(log_dir) if r["plan_uid"] == plan_uid}


def received(files: list[Path]) -> list[tuple[str, str, str]]:
    """(PatientID, Modality, SOPInstanceUID) of each reception, in file order."""
    out = []
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        out.append((str(ds.PatientID), str(ds.Modality), str(ds.SOPInstanceUID)))
    return out
