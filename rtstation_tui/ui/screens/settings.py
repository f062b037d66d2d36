"""The station settings: AE title, address, port, allowlist, settle time, disk threshold, import folder, log level,
theme — checked as you type, saved with Ctrl+S, applied live.

Why the form starts from the file's own text and not from the running configuration: the running one has paths
made absolute and command line overrides applied; showing those would turn an untouched ``./var/incoming`` into
``/home/…/var/incoming`` on the next save. Only fields the operator changed are written (``Form.changed``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import tomlkit
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Label

from ...engine.config.model import SECTIONS, Config
from ...engine.config.tomlfile import ConfigFile
from ..commands.registry import CommandScope, bindings
from ..labels import plain
from ..messages import SaveConfig
from ..themes import ThemeCatalog
from ..widgets.form import FieldSpec, Form, FormHost

# (section.key, label, help)
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("station.ae_title", "AE title", "Our AE title (called AE of senders); a change restarts the listener"),
    ("station.bind", "Bind address", "Address to listen on: 0.0.0.0 all, 127.0.0.1 this machine only; restarts"),
    ("station.port", "Port", "DICOM port 1-65535; a change restarts the listener (in-flight stores finish)"),
    ("receiver.allowed_calling_aes", "Allowed AEs", "Comma-separated: ECLIPSE, ECLIPSE@10.1.2.3, *@10.0.0.0/8; "
     "empty: anyone"),
    ("receiver.settle_seconds", "Settle (s)", "A plan missing objects is ready-incomplete after this long"),
    ("receiver.min_free_mb", "Min free MB", "Below this much free disk, C-STOREs are refused (0xA700)"),
    ("import.folder", "Import folder", "Watched folder; empty: none (takes effect at the next start)"),
    ("import.recursive", "Recursive", "Also import from sub-folders"),
    ("import.include", "Include", "Comma-separated glob patterns of file names to import"),
    ("import.exclude", "Exclude", "Comma-separated glob patterns never imported"),
    ("import.settle_seconds", "File settle (s)", "A file counts once its size and mtime are stable this long"),
    ("import.after_import", "After import", "delete, move (to data_dir/imported/) or keep"),
    ("import.source_ae", "Import AE", "The calling AE rules see for imported objects"),
    ("logging.level", "Log level", "Level of the log file and the log pane's records"),
    ("ui.theme", "Theme", "Console colours: dark, light, high-contrast, or a file of yours in [ui] themes_dir "
     "(default ~/.config/rtstation/themes)"),
)


def settings_specs(themes: Sequence[str] = ()) -> list[FieldSpec]:
    """The form's fields; ``themes`` are the theme names the console found (built-in and the user's)."""
    specs = []
    for key, label, help_text in FIELDS:
        section, name = key.split(".")
        cls = SECTIONS[section][1]
        choices = tuple(themes) if key == "ui.theme" else ()
        specs.append(FieldSpec(key, cls, name, label, help_text, choices=choices))
    return specs


def settings_values(path: Path | None, running: Config) -> dict[str, Any]:
    """Each field as the file has it (else its default; without a file: the running value). Blocking: a thread."""
    raw: dict[str, Any] = tomlkit.parse(path.read_text(encoding="utf-8")).unwrap() if path else {}
    out: dict[str, Any] = {}
    for spec in settings_specs():
        section, name = spec.key.split(".")
        if path is None:
            out[spec.key] = getattr(getattr(running, SECTIONS[section][0]), name)
        elif name in raw.get(section, {}):
            out[spec.key] = raw[section][name]
        else:
            out[spec.key] = spec.field.default
    return out


def write_settings(cf: ConfigFile, changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        section, name = key.split(".")
        if value is None:
            cf.unset(section, name)
        else:
            cf.set(section, name, value)


class SettingsScreen(FormHost, CommandScope, Screen[None]):
    FIRST_FIELD = "station.ae_title"
    COMMAND_SCOPE = "settings"
    BINDINGS = bindings("settings")

    def __init__(self, values: dict[str, Any], path: Path | None, themes_dir: Path | None = None) -> None:
        super().__init__()
        self.values = values
        self.config_path = path  # the configuration file, for the title
        self.themes_dir = themes_dir  # [ui] themes_dir, scanned when the screen opens

    def compose(self) -> ComposeResult:
        yield Label(plain(f"Settings  ({self.config_path or 'built-in defaults'})  Ctrl+S save · Esc back"),
                    classes="screen-title")
        themes = ThemeCatalog.scan(self.themes_dir).names()  # a file added since the start is offered too
        yield Form(settings_specs(themes), self.values, id="settings-form")
        yield Footer()

    def action_save(self) -> None:
        form = self.form
        if not form.ready_to_save():
            return
        changes = form.changed()
        if not changes:
            self.notify("Nothing changed.", title="Settings")
            return
        self.run_worker(self._save(changes), group="save", exit_on_error=False)

    async def _save(self, changes: dict[str, Any]) -> None:
        request = SaveConfig(lambda cf: write_settings(cf, changes), "Changed " + ", ".join(changes))
        self.post_message(request)
        if await request.reply is not None:
            form = self.form
            form.initial_raw = {key: form.raw(key) for key in form.specs}  # saved: this is the new baseline
            if any(key.startswith("import.") for key in changes):  # the watcher has no live reload (yet)
                self.notify("The import folder settings take effect at the next start.", title="Settings",
                            severity="warning", timeout=10)

    def action_close(self) -> None:
        if self.form.changed():
            self.run_worker(self._ask_close(), group="close", exclusive=True, exit_on_error=False)
        else:
            self.app.pop_screen()

    async def _ask_close(self) -> None:
        from ..dialogs.confirm import ConfirmDialog

        if await self.app.push_screen_wait(ConfirmDialog("Discard changes?", "The settings have unsaved changes.",
                                                         "Discard", "Stay")):
            self.app.pop_screen()
