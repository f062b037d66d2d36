"""[CONSOLE] D deletes the patient or plan under the cursor: the question names what goes (plan label, patient,
objects by modality, size); yes removes it from the tree and the store; a patient whose plan is still queued is
refused with the job named, and nothing is asked."""

from __future__ import annotations

from tui_support import FIXED_TIME, FakeSender, QueueRow, fill_plans, make_app, make_config, screen_text, until

from rtstation_tui.ui.dialogs.delete import DeleteDialog

def details(app) -> str:
    """The details pane's own text (a toast over it must not hide or fake what it says), whitespace folded."""
    return " ".join(str(app.main.query_one("#details").content).split())


PLANS = [("PAT01", "DOE^JANE", "LIVE"), ("PAT01", "DOE^JANE", "BIG1"), ("PAT02", "ROE^RICH", "QUEUED1")]


async def test_d_asks_naming_what_goes_then_deletes_and_refuses_while_a_job_is_queued(tmp_path):
    config = make_config(tmp_path)
    uids = fill_plans(config, tmp_path, PLANS)
    sender = FakeSender()
    sender.queue.rows.append(QueueRow(7, "QA", uids["QUEUED1"], "QUEUED1", "queued", 0, 4, created=FIXED_TIME))
    app = make_app(config, sender=sender)
    async with app.run_test(size=(100, 30)) as pilot:
        tree = app.main.tree
        await until(pilot, lambda: tree.patients, what="patients")
        await until(pilot, lambda: "Stored: 10 objects" in screen_text(app), what="the patient's disk usage")
        await pilot.press("enter")
        await until(pilot, lambda: uids["LIVE"] in tree.plans, what="plans")
        tree.move_cursor(tree.plan_node(uids["LIVE"]))
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, DeleteDialog), what="the question")
        text = screen_text(app)
        assert "Plan LIVE of patient PAT01 (DOE JANE) leaves the store" in text
        assert "5 objects (2 CT, 1 RTDOSE, 1 RTPLAN, 1 RTSTRUCT)" in text and "kB" in text
        await pilot.press("y")
        await until(pilot, lambda: uids["LIVE"] not in tree.plans and uids["BIG1"] in tree.plans,
                    what="LIVE gone from the tree")
        await until(pilot, lambda: any("Deleted plan LIVE of patient PAT01" in n.message for n in app._notifications),
                    what="the notice")
        assert app.api.plan_details(uids["LIVE"]) is None
        # the details follow the cursor to the row it now stands on, never describe what is gone
        await until(pilot, lambda: "Plan      LIVE" not in screen_text(app), what="the details of LIVE gone")

        tree.move_cursor(tree.patient_node("PAT02"))
        await pilot.press("D")
        await until(pilot, lambda: any("job 7 to QA (queued, QUEUED1)" in n.message and n.severity == "error"
                                       for n in app._notifications), what="the refusal")
        assert not isinstance(app.screen, DeleteDialog) and "PAT02" in tree.patients

        tree.move_cursor(tree.patient_node("PAT01"))
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, DeleteDialog), what="the patient question")
        assert "Every object of patient PAT01 (DOE JANE) leaves the store" in screen_text(app)
        await pilot.press("n")  # no keeps it
        await until(pilot, lambda: not isinstance(app.screen, DeleteDialog), what="the question closed")
        assert "PAT01" in tree.patients
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, DeleteDialog), what="asked again")
        await pilot.press("y")
        await until(pilot, lambda: "PAT01" not in tree.patients and tree.patient_node("PAT01") is None,
                    what="PAT01 gone from the tree")
        await until(pilot, lambda: "Patient PAT01" not in details(app) and "Patient PAT02" in details(app),
                    what="the details on the patient the cursor now stands on")
        assert app.api.patients() and [p.patient_id for p in app.api.patients()] == ["PAT02"]


async def test_a_removed_patient_hands_the_cursor_to_the_next_row_at_once(tmp_path):
    """The cursor never stays on a removed row until some redraw: the next patient is under it (and highlighted, so
    the details follow) the moment the row goes, from the patient row or from a plan row inside it."""
    config = make_config(tmp_path)
    uids = fill_plans(config, tmp_path, PLANS)
    app = make_app(config, sender=FakeSender())
    async with app.run_test(size=(100, 30)) as pilot:
        tree = app.main.tree
        await until(pilot, lambda: {"PAT01", "PAT02"} <= set(tree.patients), what="patients")
        first, second = list(tree.patients)[:2]
        tree.patient_node(first).expand()
        await until(pilot, lambda: tree.plans, what="plans of the first patient")
        plan = next(u for u, p in tree.plans.items() if p.patient_id == first)
        tree.move_cursor(tree.plan_node(plan))
        await pilot.pause()
        tree.remove_patient(first)
        assert tree.cursor_data is not None and tree.cursor_data.patient_id == second
        await until(pilot, lambda: f"Patient {second}" in details(app),
                    what="the details on the patient now under the cursor")
        tree.remove_patient(second)
        assert tree.cursor_data is None
