"""What screens ask of the app: messages posted up the DOM, handled by ``StationApp``.

Why messages and not ``self.app.<method>``: a screen that calls into the app has to know the app's type, and the
app imports every screen — a type-level cycle through half of ``ui/``. A posted message only needs this module; the
app decides what it means (open the nodes editor, save the file, remember an echo). Screens get what they show
(config, the station's interface, last echoes) when they are made, and a save answers on a future carried by its message.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, ClassVar

from textual.message import Message

from ..engine.config.model import Config
from ..engine.config.tomlfile import ConfigFile

Edit = Callable[[ConfigFile], None]


# -- commands of the main screen (the registry binds their keys; the app runs them) ------------------------------
class AppCommand(Message):
    """A request for one of the app's actions; ``ACTION`` names it (``StationApp.action_<ACTION>``)."""

    ACTION: ClassVar[str] = ""


class SendPlans(AppCommand):
    """Send the marked plans (or the one under the cursor): the app opens the send dialog."""

    ACTION = "send"


class EchoNodes(AppCommand):
    """C-ECHO every enabled node."""

    ACTION = "echo"


class RetryFailed(AppCommand):
    """Queue the failed send jobs of the selected plans again."""

    ACTION = "retry_failed"


class CancelSends(AppCommand):
    """Cancel the queued and running send jobs of the selected plans (after a question)."""

    ACTION = "cancel_active"


class DeleteFromStore(AppCommand):
    """Delete the patient or plan under the cursor from the store (after a question naming what goes)."""

    ACTION = "delete_from_store"


class OpenRules(AppCommand):
    """Open the rules editor."""

    ACTION = "rules"


class OpenNodes(AppCommand):
    """Open the nodes editor."""

    ACTION = "nodes"


class OpenSettings(AppCommand):
    """Open the settings editor (the app reads the file first)."""

    ACTION = "settings"


class OpenMetrics(AppCommand):
    """Open the Metrics screen (plan metrics and DVHs)."""

    ACTION = "metrics"


class OpenRemote(AppCommand):
    """Open the Remote screen (query a node, pull plans)."""

    ACTION = "remote"


class QuitRequested(AppCommand):
    """Leave the console (the app asks first when objects arrive or jobs run)."""

    ACTION = "quit"


# -- the editors ---------------------------------------------------------------------------------------------------
class SaveConfig(Message):
    """Apply ``edit`` to the configuration file, save it and apply it live.

    ``reply`` gets the running configuration after the save, or None when nothing was saved (the app has said why
    in a notification). The editor awaits it to rebuild its table from what was really saved."""

    def __init__(self, edit: Edit, what: str) -> None:
        super().__init__()
        self.edit = edit
        self.what = what
        self.reply: asyncio.Future[Config | None] = asyncio.get_running_loop().create_future()


class EchoAnswered(Message):
    """A node answered (or failed) a C-ECHO from the nodes editor: the app remembers it for the next visit."""

    def __init__(self, outcome: Any) -> None:
        super().__init__()
        self.outcome = outcome

