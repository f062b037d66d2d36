"""Command palette provider: every console key is also a command (operators who forget a key type its name).

Why one table: the palette and the footer must never disagree about what exists.
"""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

# (name, help, action on the app, key)
COMMANDS: tuple[tuple[str, str, str, str], ...] = (
    ("Send plans", "Send the marked plans (or the one under the cursor) to chosen nodes", "send", "s"),
    ("C-ECHO nodes", "Check that every enabled node answers", "echo", "e"),
    ("Filter patients", "Filter the tree by patient ID, name or plan label", "screen.filter", "/"),
    ("Focus log", "Move to the log pane (v level, f follow, / search)", "screen.toggle_log", "l"),
    ("Retry failed sends", "Queue the failed send jobs of the selected plan(s) again", "retry_failed", "palette"),
    ("Cancel sends", "Cancel the queued and running send jobs of the selected plan(s)", "cancel_active", "palette"),
    ("Rules", "Edit the routing rules (add, edit, delete, move, enable) with a dry run", "rules", "r"),
    ("Nodes", "Edit the DICOM nodes (add, edit, delete, enable, C-ECHO one)", "nodes", "n"),
    ("Settings", "Station AE title, address, port, allowlist, import folder, log level, theme", "settings", "S"),
    ("Mark plan", "Mark or unmark the plan under the cursor for sending", "mark", "space"),
    ("Quit rtstation", "Stop receiving (in-flight stores finish) and leave", "quit", "q"),
)


class StationCommands(Provider):
    async def discover(self) -> Hits:
        for name, help_text, action, key in COMMANDS:
            yield DiscoveryHit(self._title(name, key), partial(self._run, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, action, key in COMMANDS:
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(self._title(name, key)), partial(self._run, action), help=help_text)

    @staticmethod
    def _title(name: str, key: str) -> str:
        return name if key == "palette" else f"{name}  ({key})"

    async def _run(self, action: str) -> None:
        app = self.app
        if action == "mark":
            app.main.tree.action_toggle_mark()  # type: ignore[attr-defined]
            return
        await app.run_action(action)
