"""[QR] the console's Remote screen with a FakeStation: the node's plans as the table shows them (80x24), marking,
the retrieve asked of the station, and its sub-operation counts from the events."""

from __future__ import annotations

from tui_support import FakeSender, make_app, make_config, screen_text, until

from rtstation_tui.engine.events import RetrieveFinished, RetrieveProgress
from rtstation_tui.engine.qr.pull import RemotePlan
from rtstation_tui.ui.screens.remote import RemoteScreen

PLANS = [RemotePlan("1.2.3.1", "A1", "APPROVED", "20260101", "TrueBeam1", 8, True, False),
         RemotePlan("1.2.3.2", "B2[red]", "UNAPPROVED", "20260102", "Halcyon2", 3, False, True)]


async def test_query_mark_pull_and_progress(tmp_path):
    app = make_app(make_config(tmp_path), sender=FakeSender())
    app.api.remote[("ARCHIVE", "QRA")] = PLANS
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, RemoteScreen), what="the Remote screen")
        screen = app.screen
        assert app.focused is screen.query_one("#remote-patient")  # the first node is chosen: type the ID at once
        screen.query_one("#remote-node").value = "ARCHIVE"
        await pilot.press(*"NOPE", "enter")
        await until(pilot, lambda: "no patient 'NOPE'" in screen_text(app), what="the node's refusal")
        screen.query_one("#remote-patient").value = ""
        await pilot.press(*"QRA", "enter")
        await until(pilot, lambda: "2 plans of QRA on ARCHIVE" in screen_text(app), what="the plans")
        text = screen_text(app)
        assert "A1" in text and "APPROVED" in text and "2026-01-01" in text and "TrueBeam1" in text
        assert "B2[red]" in text and "≥3" in text and "yes" in text  # a value shown as it is; a lower bound
        await pilot.press("space", "down", "space", "up", "space")  # mark A1, B2, unmark A1
        assert screen.marked == {"1.2.3.2"}
        await pilot.press("p")
        await until(pilot, lambda: app.api.retrieved, what="the retrieve asked of the station")
        assert app.api.retrieved == [("ARCHIVE", "QRA", ("1.2.3.2",))]
        await until(pilot, lambda: 1 in screen.running, what="the retrieve known to the screen")
        app.apply_events([RetrieveProgress(1, "ARCHIVE", "QRA", "RTSTRUCT: structure set", 2, 5, 1, 0)])
        await until(pilot, lambda: "remaining 2  completed 5  failed 1  warning 0" in screen_text(app),
                    what="sub-operation counts")
        assert "pulling B2[red] from ARCHIVE: RTSTRUCT: structure set" in screen_text(app)
        app.apply_events([RetrieveFinished(1, "ARCHIVE", "QRA", True, "retrieved 7 (C-MOVE)", 7, 0, 0, ("B2",))])
        await until(pilot, lambda: "pulled B2[red] from ARCHIVE: retrieved 7" in screen_text(app), what="the end")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, RemoteScreen), what="back to the main screen")
        app.apply_events([RetrieveFinished(9, "ARCHIVE", "QRA", False, "0xA801 move destination unknown")])
        await pilot.press("R")  # the same screen again: the last query, and what the retrieve did
        await until(pilot, lambda: isinstance(app.screen, RemoteScreen), what="the Remote screen again")
        text = screen_text(app)
        assert "B2[red]" in text and "pulled B2[red] from ARCHIVE" in text
