"""Values from the network (a PatientID holding ESC, CR/LF, NUL) never forge log lines nor repaint a terminal:
the daily file, stdout and the console's log pane escape control characters; tracebacks keep their lines."""

from __future__ import annotations

import logging

from rtstation_tui.engine.events import BusLogHandler, EventBus
from rtstation_tui.engine.logsetup import FORMAT, SafeFormatter

HOSTILE = "A\x00B\x1b[2J\r\n2026-01-01 00:00:00 INFO forged line\x07"


def record(exc_info=None) -> logging.LogRecord:  # type: ignore[no-untyped-def]
    return logging.LogRecord("rtstation.receiver", logging.WARNING, __file__, 1, "patient %s", (HOSTILE,), exc_info)


def test_file_and_console_lines_escape_control_characters() -> None:
    line = SafeFormatter(FORMAT).format(record())
    assert "\n" not in line and "\x1b" not in line and "\x00" not in line and "\x07" not in line
    assert "A\\x00B\\x1b[2J\\x0d\\x0a2026-01-01 00:00:00 INFO forged line\\x07" in line


def test_tracebacks_keep_their_lines() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        text = SafeFormatter(FORMAT).format(record(sys.exc_info()))
    assert text.count("\n") >= 2 and "Traceback (most recent call last):" in text


def test_the_console_pane_gets_escaped_text_too() -> None:
    text = BusLogHandler(EventBus()).format(record())
    assert text == "patient A\\x00B\\x1b[2J\\x0d\\x0a2026-01-01 00:00:00 INFO forged line\\x07"


def test_an_exception_message_from_the_network_is_escaped_in_its_traceback() -> None:
    """[HARDEN2] 13: pynetdicom logs tracebacks whose message quotes the peer's bytes (a calling AE)."""
    import sys

    try:
        try:
            raise KeyError("inner X\x1b[31m\nFORGED")
        except KeyError:
            raise ValueError("calling AE X\x1b[31m\n2026-01-01 00:00:00 INFO forged line") from None
    except ValueError:
        text = SafeFormatter(FORMAT).format(record(sys.exc_info()))
    assert "\x1b" not in text and "Traceback (most recent call last):" in text
    assert not any(line.startswith(("2026-01-01", "FORGED")) for line in text.splitlines()), text
    assert "ValueError: calling AE X\\x1b[31m\\x0a2026-01-01" in text and "inner" not in text  # from None
