"""AE title rules of PS3.5 (value representation AE), shared by the configuration checks and the receiver."""

from __future__ import annotations

AE_MAX = 16


def ae_title_problem(value: str) -> str | None:
    """Why ``value`` is not a valid AE title, or None. Part 5: up to 16 chars, no backslash, no control chars."""
    stripped = value.strip(" ")
    if not stripped:
        return "an AE title must not be empty or only spaces"
    if len(value) > AE_MAX:
        return f"an AE title has at most {AE_MAX} characters, this one has {len(value)}"
    bad = [c for c in value if c == "\\" or ord(c) < 0x20 or ord(c) > 0x7E]
    if bad:
        return f"an AE title may hold printable ASCII except backslash; found {bad[0]!r}"
    return None
