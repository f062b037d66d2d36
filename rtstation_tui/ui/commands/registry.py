"""Every key of the console in one table: the footer, the command palette and the help screen all read it.

Why one table: an operator who sees ``s Send`` in the footer must find "Send plans" in the palette and in the help
screen, and a key added to one place must not be missing from the others (``tests/tui/test_commands.py`` checks it
on every screen). Each screen, dialog and widget declares the *scope* it takes its bindings from; the palette and
the help screen list the commands of every scope on the screen, so they only ever offer what the screen can do.

A command either runs an action of the node it is bound on (``action``: a filter box, a cursor move) or posts a
message the app handles (``message``: send, echo, open an editor, quit) — screens never call into the app.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Iterator

from textual.binding import Binding, BindingType
from textual.dom import DOMNode

from .. import messages as m

KEY_NAMES = {"slash": "/", "question_mark": "?", "space": "space", "escape": "Esc", "enter": "Enter",
             "shift+up": "Shift+↑", "shift+down": "Shift+↓", "up": "↑", "down": "↓"}

# Where a scope lives, for the help screen's headings.
SCOPE_NAMES = {"app": "Everywhere", "main": "Main screen", "tree": "Plan tree", "log": "Log pane",
               "entries": "Editor table", "nodes": "Nodes editor", "rules": "Rules editor",
               "settings": "Settings", "form": "Form fields", "entry-form": "Node / rule form",
               "confirm": "Question", "quit": "Quit question", "send": "Send dialog", "help": "Help",
               "metrics": "Metrics screen", "log-reader": "Log lines", "remote": "Remote screen",
               "filter-box": "Filter box"}


@dataclass(frozen=True)
class Command:
    """One thing the operator can do, with everything the footer, the palette and the help screen show of it."""

    id: str
    keys: str  # Textual key names, comma-separated; "" for a palette-only command
    label: str  # the footer's word
    title: str  # the palette's and the help screen's name
    help: str
    scopes: tuple[str, ...]  # the screens/widgets that bind it (see SCOPE_NAMES)
    action: str = ""  # an action of the node it is bound on, or …
    message: type[m.AppCommand] | None = None  # … a message posted to the app (it runs the action it names)
    show: bool = True  # in the footer
    palette: bool = True  # in the command palette (cursor moves are not)
    priority: bool = False
    key_display: str | None = None
    overrides: str = ""  # id of a screen command this widget command deliberately shadows while focused (or of
    # another widget's command on the same key: the two are never focused at once)

    @property
    def run(self) -> str:
        """The Textual action a binding or the palette runs on the node that declares the scope."""
        return f"command({self.id!r})" if self.message is not None else self.action

    @property
    def key_list(self) -> list[str]:
        return [k.strip() for k in self.keys.split(",") if k.strip()]

    @property
    def key_text(self) -> str:
        """How the palette and help write the (first) key: 's', '/', 'space', 'Ctrl+S'."""
        return key_name(self.key_list[0]) if self.key_list else ""

    def binding(self) -> Binding:
        return Binding(self.keys, self.run, self.label, show=self.show and bool(self.label), priority=self.priority,
                       key_display=self.key_display, tooltip=self.help)


def key_name(key: str) -> str:
    if key in KEY_NAMES:
        return KEY_NAMES[key]
    parts = key.split("+")
    return key if len(parts) == 1 and len(key) == 1 else "+".join(p.capitalize() for p in parts)


def _c(*args: Any, **kwargs: Any) -> Command:
    return Command(*args, **kwargs)


MAIN = ("main",)
COMMANDS: tuple[Command, ...] = (
    # everywhere
    _c("help", "question_mark,f1", "Help", "Keys of this screen", "Every key of the screen you are on, and what it "
       "does (? or F1)", ("app",), action="help", key_display="?"),
    _c("quit-now", "ctrl+q", "Quit", "Quit rtstation", "Stop receiving (in-flight stores finish) and leave, from any "
       "screen", ("app",), message=m.QuitRequested, show=False, palette=False, priority=True),
    # the main screen
    _c("send", "s", "Send", "Send plans", "Send the marked plans, or what is under the cursor (a plan, a patient, unconnected "
       "objects), to chosen nodes", MAIN,
       message=m.SendPlans),
    _c("echo", "e", "Echo", "C-ECHO nodes", "Check that every enabled node answers", MAIN, message=m.EchoNodes),
    _c("filter", "slash", "Filter", "Filter patients", "Words match ID, name, label; and ae:TPS1 mod:MR "
       "state:failed|not-sent|… node:QA since:7d (Esc clears)", MAIN, action="filter", priority=True),
    _c("sort", "o", "Sort", "Sort patients", "Next order: newest received, ID, source AE, modality, failed first",
       MAIN, action="cycle_sort", show=False),
    _c("filter-apply", "enter", "Apply", "Apply filter", "Keep the filter and go back to the tree (the keys typed "
       "behind Enter reach the tree)", ("filter-box",), action="submit", show=False, palette=False, priority=True,
       overrides="log-read"),
    _c("clear-filter", "escape", "Clear filter", "Clear filter", "Empty the filter box and show every patient",
       MAIN, action="clear_filter", show=False, priority=True),
    _c("log", "l", "Log", "Focus log", "Move to the log pane and back (v level, f follow, / search)", MAIN,
       action="toggle_log"),
    _c("retry", "", "", "Retry failed sends", "Queue the failed send jobs of the selected plan(s) again", MAIN,
       message=m.RetryFailed),
    _c("cancel", "", "", "Cancel sends", "Cancel the queued and running send jobs of the selected plan(s)", MAIN,
       message=m.CancelSends),
    _c("rules", "r", "Rules", "Rules", "Edit the routing rules (add, edit, delete, move, enable) with a dry run",
       MAIN, message=m.OpenRules),
    _c("nodes", "n", "Nodes", "Nodes", "Edit the DICOM nodes (add, edit, delete, enable, C-ECHO one)", MAIN,
       message=m.OpenNodes),
    # S is in the footer (compact, 80 columns hold it), in the palette, the help screen and the README
    _c("settings", "S", "Setup", "Settings", "Station AE title, address, port, allowlist, import folder, log "
       "level, theme", MAIN, message=m.OpenSettings),
    # M is not in the 80-column footer either: in the palette, the help screen and the README
    _c("metrics", "m", "Metrics", "Plan metrics", "Plan metrics of every plan (filter, sort), beams and DVHs of the "
       "selected one", MAIN, message=m.OpenMetrics, show=False),
    # D is not in the 80-column footer: in the palette and the help screen; it always asks first
    _c("delete-data", "D", "Delete", "Delete from store", "Delete the patient or plan under the cursor (asks first)",
       MAIN, message=m.DeleteFromStore, show=False),
    # R is not in the 80-column footer either: in the palette, the help screen and the README
    _c("remote", "R", "Remote", "Remote plans", "Query a node for a patient's plans, pull the marked ones", MAIN,
       message=m.OpenRemote, show=False),
    _c("quit", "q", "Quit", "Quit rtstation", "Leave the console: stop its station (in-flight stores finish) or leave it running headless", MAIN,
       message=m.QuitRequested),
    # the plan tree
    _c("tree-down", "j", "Down", "Cursor down", "Next row", ("tree",), action="cursor_down", show=False,
       palette=False),
    _c("tree-up", "k", "Up", "Cursor up", "Previous row", ("tree",), action="cursor_up", show=False, palette=False),
    _c("mark", "space", "Mark", "Mark plan", "Mark or unmark the plan under the cursor for sending", ("tree",),
       action="toggle_mark", key_display="␣"),
    # the log pane
    _c("log-level", "v", "Level", "Log level", "Show fewer or more log records (cycles the level)", ("log",),
       action="cycle_level"),
    _c("log-follow", "f", "Follow", "Follow log", "Keep the newest line in view, or stop there", ("log",),
       action="toggle_follow"),
    _c("log-read", "enter", "Read", "Read log lines", "Open the lines the log pane shows, wrapped, to read them "
       "whole", ("log",), action="read"),
    _c("log-search", "slash", "Search log", "Search log", "Find text in the log pane", ("log",), action="search",
       overrides="filter"),
    _c("log-leave", "escape", "Back", "Leave log", "Back to the tree", ("log",), action="leave", show=False,
       palette=False, overrides="clear-filter"),
    # the nodes and rules editors
    _c("back", "escape", "Back", "Back", "Back to the main screen", ("entries",), action="app.pop_screen"),
    _c("add", "a", "Add", "Add", "Add an entry", ("entries",), action="add"),
    _c("edit", "e", "Edit", "Edit", "Edit the entry under the cursor (Enter too)", ("entries",), action="edit"),
    _c("delete", "d", "Delete", "Delete", "Delete the entry under the cursor (asks first)", ("entries",),
       action="delete"),
    _c("toggle", "space", "On/off", "Enable / disable", "Enable or disable the entry under the cursor",
       ("entries",), action="toggle"),
    _c("table-down", "j", "Down", "Cursor down", "Next row", ("entries",), action="cursor_down", show=False,
       palette=False),
    _c("table-up", "k", "Up", "Cursor up", "Previous row", ("entries",), action="cursor_up", show=False,
       palette=False),
    _c("node-echo", "t", "Echo", "C-ECHO node", "C-ECHO the node under the cursor", ("nodes",), action="echo"),
    _c("rule-up", "K,shift+up", "Up", "Move rule up", "Evaluate the rule under the cursor earlier", ("rules",),
       action="move(-1)"),
    _c("rule-down", "J,shift+down", "Down", "Move rule down", "Evaluate the rule under the cursor later",
       ("rules",), action="move(1)"),
    # settings and the node/rule forms
    _c("settings-back", "escape", "Back", "Back", "Back to the main screen (asks if changes are unsaved)",
       ("settings",), action="close"),
    _c("save", "ctrl+s", "Save", "Save", "Check and save the changes; they apply at once", ("settings",
       "entry-form"), action="save", priority=True),
    _c("form-cancel", "escape", "Cancel", "Cancel", "Close the form without saving", ("entry-form",),
       action="cancel"),
    _c("field-down", "down", "Next", "Next field", "Move to the next field", ("form",), action="app.focus_next",
       show=False, palette=False),
    _c("field-up", "up", "Previous", "Previous field", "Move to the previous field", ("form",),
       action="app.focus_previous", show=False, palette=False),
    # dialogs
    _c("yes", "y", "Yes", "Yes", "Answer yes", ("confirm",), action="answer(True)"),
    _c("no", "n", "No", "No", "Answer no", ("confirm",), action="answer(False)"),
    _c("no-esc", "escape", "No", "No (Esc)", "Answer no", ("confirm",), action="answer(False)", show=False,
       palette=False),
    _c("quit-leave", "l", "Leave running", "Leave the station running", "Quit the console, the station goes on "
       "headless", ("quit",), action="choose('leave')"),
    _c("quit-stop", "s", "Stop station", "Stop the station", "Quit the console and stop the station (in-flight "
       "stores finish)", ("quit",), action="choose('stop')"),
    _c("quit-stay", "escape", "Stay", "Stay", "Back to the console", ("quit",), action="choose('')"),
    _c("send-cancel", "escape", "Cancel", "Cancel", "Close without sending", ("send",), action="cancel"),
    _c("send-go", "enter", "Send", "Send now", "Queue what is shown to the chosen nodes", ("send",), action="send",
       priority=True),
    _c("send-anonymize", "a", "Anonymize", "Anonymize for this node", "Cycle the node under the cursor through the "
       "anonymize profiles (and back to none): it gets de-identified copies, the store keeps the originals",
       ("send",), action="anonymize"),
    _c("help-close", "escape", "Close", "Close help", "Back to the screen", ("help",), action="dismiss"),
    _c("reader-close", "escape", "Close", "Close log lines", "Back to the log pane", ("log-reader",),
       action="dismiss"),
    # the Metrics screen
    _c("metrics-back", "escape", "Back", "Back", "Back to the main screen (in the filter box: empty it first)",
       ("metrics",), action="back"),
    _c("metrics-filter", "slash", "Filter", "Filter plans", "Filter like rtstation metrics --where: label~ADP, "
       "max_dose>60Gy, machine=TrueBeam*, received>2026-01-01 (Enter applies)", ("metrics",), action="filter"),
    _c("metrics-sort", "o", "Sort", "Sort plans", "Sort by the next column (descending, then ascending); a click on "
       "a column header sorts by it", ("metrics",), action="sort"),
    _c("dvh-left", "comma,less_than_sign", "◀ Gy", "Dose cursor down", "Move the DVH plot's dose cursor to lower "
       "doses; the line below reads each ROI's volume there", ("metrics",), action="cursor(-1)", key_display="<"),
    _c("dvh-right", "full_stop,greater_than_sign", "Gy ▶", "Dose cursor up", "Move the DVH plot's dose cursor to "
       "higher doses", ("metrics",), action="cursor(1)", key_display=">"),
    # the Remote screen
    _c("remote-back", "escape", "Back", "Back", "Back to the main screen (a retrieve goes on in the station)",
       ("remote",), action="back"),
    _c("remote-query", "f5", "Query", "Query the node", "Ask the chosen node for the patient's plans (Enter in the "
       "patient ID too)", ("remote",), action="query", key_display="F5"),
    _c("remote-mark", "space", "Mark", "Mark plan", "Mark or unmark the plan under the cursor for pulling",
       ("remote",), action="toggle_mark", key_display="␣"),
    _c("remote-pull", "p", "Pull", "Pull plans", "Retrieve the marked plans (or the one under the cursor) with "
       "their structure sets, images and doses; progress below, the plans appear in the tree", ("remote",),
       action="pull"),
    _c("dvh-all", "a", "All ROIs", "All ROIs / none", "Show every ROI in the plot, or none (space toggles the one "
       "under the cursor in the list)", ("metrics",), action="all_rois"),
)
BY_ID = {c.id: c for c in COMMANDS}


def commands(scope: str) -> list[Command]:
    return [c for c in COMMANDS if scope in c.scopes]


def bindings(scope: str) -> list[BindingType]:
    """A class's ``BINDINGS``: every keyed command of ``scope`` (typed as Textual types ``BINDINGS``)."""
    found: list[BindingType] = [c.binding() for c in commands(scope) if c.keys]
    if not found:
        raise KeyError(f"no commands for scope {scope!r}; scopes: {', '.join(sorted(SCOPE_NAMES))}")
    return found


class CommandScope:
    """Mixin of a screen, dialog or widget that takes its keys from the registry: ``COMMAND_SCOPE = "nodes"``.

    ``action_command`` is what a message command's binding runs: it posts the message; the app handles it."""

    COMMAND_SCOPE: ClassVar[str] = ""

    def action_command(self, command_id: str) -> None:
        message = BY_ID[command_id].message
        assert isinstance(self, DOMNode) and message is not None
        self.post_message(message())


def scoped_nodes(screen: DOMNode) -> Iterator[tuple[DOMNode, str]]:
    """(node, scope) for the screen, every widget on it that declares a scope, then the app."""
    nodes: Iterable[DOMNode] = [screen, *screen.walk_children(with_self=False)]
    seen: set[str] = set()
    for node in nodes:
        for scope in _scopes(node):
            if scope not in seen:
                seen.add(scope)
                yield node, scope
    for scope in _scopes(screen.app):
        yield screen.app, scope


def _scopes(node: DOMNode) -> list[str]:
    """A class's scope and those of its bases (the nodes editor is also an 'entries' table)."""
    out: list[str] = []
    for cls in type(node).__mro__:
        scope = cls.__dict__.get("COMMAND_SCOPE")
        if scope and scope not in out:
            out.append(scope)
    return out


def screen_commands(screen: DOMNode) -> list[tuple[DOMNode, Command]]:
    """What the palette and the help screen offer on ``screen``: the commands of every scope on it, in table order."""
    return [(node, c) for node, scope in scoped_nodes(screen) for c in commands(scope)]


def help_rows(screen: DOMNode) -> list[tuple[str, Command]]:
    """(scope, command) for the help screen: every command on ``screen``, keyed or palette-only."""
    return [(scope, c) for _, scope in scoped_nodes(screen) for c in commands(scope)]
