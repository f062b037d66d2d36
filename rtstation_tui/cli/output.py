"""Shared output helpers: every listing has a ``--json`` form that scripts rely on."""

from __future__ import annotations

import json
import sys
from typing import Any


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=False, ensure_ascii=False)
    sys.stdout.write("\n")


def fail(message: str, code: int = 1) -> int:
    print(f"rtstation: {message}", file=sys.stderr)
    return code
