"""Command palette provider: every command of the screen is also in the palette, read from the one registry
(``registry.py``), so operators who forget a key can type its name — and the palette never offers what the screen
under it cannot do.
"""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode

from .registry import Command, screen_commands


def palette_entries(screen: DOMNode) -> list[tuple[DOMNode, Command]]:
    """(node that runs it, command) for each palette entry of ``screen`` (the tests compare these to the footer)."""
    return [(node, c) for node, c in screen_commands(screen) if c.palette]


def palette_title(command: Command) -> str:
    return f"{command.title}  ({command.key_text})" if command.keys else command.title


class StationCommands(Provider):
    async def discover(self) -> Hits:
        for node, command in palette_entries(self.screen):
            yield DiscoveryHit(palette_title(command), partial(self._run, node, command), help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for node, command in palette_entries(self.screen):
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(score, matcher.highlight(palette_title(command)), partial(self._run, node, command),
                          help=command.help)

    @staticmethod
    async def _run(node: DOMNode, command: Command) -> None:
        await node.app.run_action(command.run, node)
