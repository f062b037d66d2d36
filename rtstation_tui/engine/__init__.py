"""The engine: everything the station does, the same under ``rtstation serve`` and inside the console.

Never imports Textual, Rich or the UI (an import-linter contract). Its sub-packages are layers, top to bottom
(``pyproject.toml`` checks the order): ``station`` (the facade) → ``api`` → ``intake`` | ``outbound`` | ``metrics`` →
``transforms`` (outgoing copies) → ``derive`` → ``plans`` → ``store`` | ``dimse`` → ``events``, ``audit``, ``loops``, ``logsetup`` →
``config`` → ``dicom``.
"""
