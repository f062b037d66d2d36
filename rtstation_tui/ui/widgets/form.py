"""A keyboard form whose fields are checked as you type, by the same rules the config loader applies.

Why reuse ``configcheck.check_value``: the console must never accept what ``load_config`` would refuse (or refuse
what it accepts), and the messages must be the ones an operator would see for a bad file. Each field is one row
(label, input) plus an error line that appears only when there is something wrong, so a form fits 80x24; the help
line at the bottom explains the focused field.
"""

from __future__ import annotations

from dataclasses import Field, dataclass, fields
from typing import Any, Callable

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.events import DescendantFocus
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from ...engine.config.checks import ConfigError, check_value
from ..commands.registry import CommandScope, bindings
from ..labels import plain

Check = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class FieldSpec:
    """One form field for the dataclass field ``name`` of ``cls``; ``key`` is how the owner knows it."""

    key: str
    cls: type
    name: str
    label: str
    help: str = ""
    check: Check | None = None  # one more rule on the converted value (unique name, known node, regex)
    suggester: Suggester | None = None
    choices: tuple[str, ...] = ()  # a Select instead of an Input (else the field's own ``choices``)

    @property
    def options(self) -> tuple[str, ...]:
        return self.choices or tuple(self.field.metadata.get("choices", ())) if self.kind == "text" else ()

    @property
    def field(self) -> Field[Any]:
        return {f.name: f for f in fields(self.cls)}[self.name]

    @property
    def kind(self) -> str:
        typ = str(self.field.type).replace(" ", "")
        base = typ.removesuffix("|None")
        return {"bool": "bool", "int": "int", "float": "float", "tuple[str,...]": "list"}.get(base, "text")

    @property
    def optional(self) -> bool:
        return str(self.field.type).replace(" ", "").endswith("|None")

    @property
    def dom_id(self) -> str:
        return "f-" + self.key.replace(".", "-").replace("_", "-")


def to_text(value: Any) -> str:
    """A value as the form shows it: lists comma-separated, 30.0 as 30, None as empty."""
    if value is None:
        return ""
    if isinstance(value, (tuple, list)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def parse_number(text: str, kind: str) -> Any:
    """'30' → 30, '2.5' → 2.5 (floats only), anything else stays text so the checker names it as typed.
    A whole float is written as an integer (``timeout_s = 30`` stays ``30``, not ``30.0``)."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    if kind == "float":
        try:
            number = float(text)
        except ValueError:
            return text
        return int(number) if number.is_integer() else number
    return text


def convert(spec: FieldSpec, raw: Any) -> tuple[Any, str | None]:
    """Form text (or a checkbox's bool) → the value to write, or the problem, in the loader's words."""
    kind = spec.kind
    value: Any = raw
    if kind in ("int", "float") and isinstance(raw, str):
        value = parse_number(raw, kind)
    elif kind == "list":
        value = [part.strip() for part in str(raw).split(",") if part.strip()]
    elif kind == "text":
        value = str(raw).strip()
        if spec.optional and value == "":
            return None, None  # an empty optional field removes the key
    try:
        checked = check_value(value, spec.field, spec.key, "form")
    except ConfigError as exc:
        return None, exc.message
    problem = spec.check(checked) if spec.check is not None else None
    if problem:
        return None, problem
    if kind == "list":
        return list(checked), None
    if kind == "float" or (kind == "text" and not spec.field.metadata.get("upper")):
        return value, None  # what the operator typed: 30 not 30.0, a path as a string
    return checked, None  # normalised by the checker (APPROVED, INFO)


class Form(CommandScope, VerticalScroll):
    """The fields of one form. The owner reads ``values()`` and ``problems()`` and may add its own (async) ones."""

    COMMAND_SCOPE = "form"
    BINDINGS = bindings("form")

    class Edited(Message):
        def __init__(self, form: Form, key: str) -> None:
            super().__init__()
            self.form, self.key = form, key

    def __init__(self, specs: list[FieldSpec], values: dict[str, Any], *, id: str | None = None) -> None:
        super().__init__(id=id, classes="form")
        self.specs = {s.key: s for s in specs}
        self.initial = values
        self.extra: dict[str, str] = {}  # problems found by the owner (host resolution)

    def compose(self) -> ComposeResult:
        for spec in self.specs.values():
            with Horizontal(classes="form-row"):
                yield Label(spec.label, classes="form-label")
                value = self.initial.get(spec.key)
                if spec.kind == "bool":
                    yield Checkbox("yes" if value else "no", bool(value), id=spec.dom_id, compact=True)
                elif spec.options:
                    shown = str(value).upper() if spec.field.metadata.get("upper") else str(value)
                    options = list(spec.options) + ([shown] if shown not in spec.options else [])
                    yield Select([(plain(o), o) for o in options], value=shown, allow_blank=False, id=spec.dom_id,
                                 compact=True)
                else:
                    yield Input(to_text(value), id=spec.dom_id, compact=True, suggester=spec.suggester)
            yield Static("", id=f"e{spec.dom_id[1:]}", classes="form-error")
        yield Static("", id="form-help", classes="form-help")

    def on_mount(self) -> None:
        self.initial_raw = {key: self.raw(key) for key in self.specs}
        for spec in self.specs.values():
            self._show(spec.key, None)

    def raw(self, key: str) -> Any:
        spec = self.specs[key]
        widget = self.query_one(f"#{spec.dom_id}")
        return widget.value  # type: ignore[attr-defined]

    def set_raw(self, key: str, value: Any) -> None:
        widget = self.query_one(f"#{self.specs[key].dom_id}")
        widget.value = value if isinstance(value, bool) else to_text(value)  # type: ignore[attr-defined]

    def check(self, key: str) -> str | None:
        value, problem = convert(self.specs[key], self.raw(key))
        problem = problem or self.extra.get(key)
        self._show(key, problem)
        return problem

    def set_extra(self, key: str, problem: str | None) -> None:
        if problem:
            self.extra[key] = problem
        else:
            self.extra.pop(key, None)
        self.check(key)

    def problems(self) -> dict[str, str]:
        out = {}
        for key in self.specs:
            problem = self.check(key)
            if problem:
                out[key] = problem
        return out

    def ready_to_save(self) -> bool:
        """True when every field is valid; otherwise the first bad field gets the focus and a "Not saved" notice
        names it (every form saves the same way, so the refusal looks the same everywhere)."""
        problems = self.problems()
        if not problems:
            return True
        first = next(iter(problems))
        self.focus_field(first)
        self.notify(f"{self.specs[first].label}: {problems[first]}", title="Not saved", severity="error")
        return False

    def values(self) -> dict[str, Any]:
        return {key: convert(spec, self.raw(key))[0] for key, spec in self.specs.items()}

    def changed(self) -> dict[str, Any]:
        """Only the fields the operator touched: untouched keys are never rewritten (their file text stays)."""
        out = {}
        for key, spec in self.specs.items():
            value = convert(spec, self.raw(key))[0]
            if self.raw(key) != self.initial_raw[key] and value != convert(spec, self.initial_raw[key])[0]:
                out[key] = value
        return out

    def error_text(self, key: str) -> str:
        return str(self.query_one(f"#e{self.specs[key].dom_id[1:]}", Static).content)

    def focus_field(self, key: str) -> None:
        self.query_one(f"#{self.specs[key].dom_id}").focus()

    def _show(self, key: str, problem: str | None) -> None:
        err = self.query_one(f"#e{self.specs[key].dom_id[1:]}", Static)
        err.update(plain(f"✗ {problem}" if problem else ""))  # quotes what was typed, or a resolver's words
        err.display = bool(problem)

    def _key_of(self, widget: Any) -> str | None:
        for key, spec in self.specs.items():
            if widget.id == spec.dom_id:
                return key
        return None

    def on_input_changed(self, event: Input.Changed) -> None:
        self._edited(event.input)

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.checkbox.label = "yes" if event.value else "no"  # the state in words, not only the box's colour
        self._edited(event.checkbox)

    def on_select_changed(self, event: Select.Changed) -> None:
        self._edited(event.select)

    def _edited(self, widget: Any) -> None:
        key = self._key_of(widget)
        if key is not None:
            self.check(key)
            self.post_message(self.Edited(self, key))

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        key = self._key_of(event.widget)
        if key is not None:
            self.query_one("#form-help", Static).update(plain(self.specs[key].help))  # "[station] ae_title"


class FormHost:
    """A screen or dialog built around one ``Form``: its first field has focus and Enter in a field saves.

    Textual calls ``on_mount`` / ``on_input_submitted`` of every class in the MRO, so a host's own ``on_mount``
    adds to this one instead of replacing it. ``action_save`` is the host's."""

    FIRST_FIELD = "name"

    @property
    def form(self) -> Form:
        return self.query_one(Form)  # type: ignore[attr-defined]

    def on_mount(self) -> None:
        self.form.focus_field(self.FIRST_FIELD)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_save()

    def action_save(self) -> None:
        raise NotImplementedError


class FormDialog(FormHost):
    """An entry dialog (node, rule): Save returns the changed keys, Cancel/Esc returns None."""

    def entry_changes(self, form: Form, new: bool, required: tuple[str, ...]) -> dict[str, Any]:
        """The keys the operator changed; for a new entry also the ``required`` ones (the file needs them)."""
        changes = form.changed()
        if new:
            values = form.values()
            changes = {k: values[k] for k in required} | {k: v for k, v in changes.items() if v is not None}
        return changes

    def action_cancel(self) -> None:
        self.dismiss(None)  # type: ignore[attr-defined]

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(None)  # type: ignore[attr-defined]
