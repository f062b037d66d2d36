"""What the console app's parts share of the app, typed in one place.

Why: the app is written in parts (``actions.py``: keys and status; ``editing.py``: saving the editors' changes;
``app.py``: lifecycle and events). The parts used to annotate ``self`` as ``StationApp`` and import ``app.py`` for
it, while ``app.py`` imports them — a type-level cycle. Each part now derives from ``ConsoleBase``, which declares
the state they share and the app's own methods they call; ``StationApp`` derives from all of them.
"""

from __future__ import annotations

from textual.app import App
from textual.notifications import SeverityLevel

from ..engine.config.model import Config
from ..engine.station import Station
from ..engine.api import EchoOutcome, StationAPI
from .labels import literal
from .screens.main import MainScreen
from .widgets.bars import RateMeter


class ConsoleBase(App[int]):
    config: Config
    station: Station
    api: StationAPI
    last_echo: dict[str, EchoOutcome]  # per node, shown by the nodes screen
    rate: RateMeter
    stopping: bool
    theme_name: str
    _main: MainScreen

    @property
    def main(self) -> MainScreen:
        return self._main

    @property
    def arriving(self) -> int:
        """Associations open now (app.py counts them from the engine's events)."""
        raise NotImplementedError

    async def stop_and_exit(self, code: int = 0, *, terminal_lost: bool = False) -> None:
        """Stop the station and leave (app.py)."""
        raise NotImplementedError

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        """Every notification is shown as written, whatever ``markup`` says (widgets' ``notify`` passes True):
        they quote AE titles, node, rule and file names, and peers' error texts (labels.py says why)."""
        super().notify(literal(message, lines=True), title=literal(title), severity=severity, timeout=timeout,
                       markup=False)

    def remember_echo(self, outcome: EchoOutcome) -> None:
        self.last_echo[outcome.node] = outcome
