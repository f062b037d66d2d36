"""[CONSOLE] sort and filter the tree: newest received first by default, ``o`` cycles the order (patient ID, source
AE, modality, failed first); the filter box takes ``ae:`` ``mod:`` ``state:`` ``node:`` ``since:`` terms besides the
words it always took, lists (and so lets the operator select and send) only the matching plans, underlines what
matched, and says what is wrong with a term it cannot read.

Three patients, imported as sent by two TPSs at three times; the send queue (a double) holds A's plan done to QA and
failed to ARCHIVE, C's failed to QA, nothing for B."""

from __future__ import annotations

import sqlite3

import pytest
from tui_support import FIXED_TIME, FakeSender, QueueRow, import_settled, make_app, snapshot_config, until

from rtstation_tui.synthetic import make_patient

PATIENTS = (("A001", "ALPHA^ANN", "A_PLAN", "TPS1", 3), ("B002", "BETA^BOB", "B_PLAN", "TPS2", 2),
            ("C003", "GAMMA^CY", "C_PLAN", "TPS1", 1))  # id, name, label, sent by, days ago


@pytest.fixture
def store(tmp_path, monkeypatch):
    cfg = snapshot_config(tmp_path, monkeypatch)
    uids = {}
    for pid, name, label, ae, _ in PATIENTS:
        folder = tmp_path / "in" / pid
        uids[label] = make_patient(folder, pid, name=name, slices=2, rows=8, cols=8, label=label,
                                   seed=f"sort-{pid}").plan_uid
        import_settled(cfg, [folder], source_ae=ae)
    with sqlite3.connect(cfg.data_dir / "index.sqlite") as conn:
        for pid, _, _, _, days in PATIENTS:
            at = FIXED_TIME - days * 86400
            conn.execute("UPDATE patients SET updated=? WHERE patient_id=?", (at, pid))
            conn.execute("UPDATE instances SET received_at=? WHERE patient_id=?", (at, pid))
    sender = FakeSender()
    at = {"created": FIXED_TIME}
    sender.queue.rows += [QueueRow(1, "QA", uids["A_PLAN"], "A_PLAN", "done", 4, 4, **at),
                          QueueRow(2, "ARCHIVE", uids["A_PLAN"], "A_PLAN", "failed", 0, 4, 4, error="refused", **at),
                          QueueRow(3, "QA", uids["C_PLAN"], "C_PLAN", "failed", 0, 4, 4, error="refused", **at)]
    return cfg, uids, sender


def order(app) -> list[str]:
    return [n.data.patient_id for n in app.main.tree.root.children]


async def filter_by(pilot, text: str) -> None:
    app = pilot.app
    await pilot.press("slash")
    box = app.main.query_one("#filter")
    box.value = text  # as typed (one change instead of one per key: typing is tests/tui/test_console_truth.py's)
    await until(pilot, lambda: box.value == text and not app.main.filtering, what=f"filter {text!r} applied")


async def listed(pilot, patients: list[str], plans: set[str]) -> None:
    """The tree lists these patients, in this order, and (once the opened ones are read) exactly these plans."""
    tree = pilot.app.main.tree
    await until(pilot, lambda: order(pilot.app) == patients and set(tree.plans) == plans,
                what=f"{patients} with {len(plans)} plan(s)")


def details(app) -> str:
    return " ".join(str(app.main.query_one("#details").content).split())


async def test_sort_cycles_and_filter_terms_list_only_matching_plans(store):
    cfg, uids, sender = store
    app = make_app(cfg, sender=sender)
    async with app.run_test(size=(80, 24)) as pilot:
        tree = app.main.tree
        await until(pilot, lambda: len(tree.patients) == 3, what="patients")
        assert order(app) == ["C003", "B002", "A001"]  # newest received first
        for expected in (["A001", "B002", "C003"], ["A001", "C003", "B002"]):  # patient ID, then source AE
            await pilot.press("o")
            await until(pilot, lambda: order(app) == expected and not app.main.filtering, what=f"order {expected}")
        await pilot.press("o", "o")  # modality (all alike: by ID), then failed first, never sent next
        await until(pilot, lambda: order(app) == ["A001", "C003", "B002"] and app.main.sort_key == "state",
                    what="failed first")

        await filter_by(pilot, "ae:TPS2")
        await listed(pilot, ["B002"], {uids["B_PLAN"]})  # opened: its plan in view

        await filter_by(pilot, "state:failed node:QA")
        await listed(pilot, ["C003"], {uids["C_PLAN"]})
        label = tree.plan_node(uids["C_PLAN"]).label
        underlined = {label.plain[s.start:s.end] for s in label.spans if "underline" in str(s.style)}
        assert {"QA", "failed"} <= underlined, underlined  # what matched, in the row's send state "QA: failed"
        plan_rows = [n for n in tree.root.children[0].children if n.data and n.data.kind == "plan"]
        assert [n.data.plan_uid for n in plan_rows] == [uids["C_PLAN"]]  # the only plan row j/k can land on

        await filter_by(pilot, "state:failed")  # to any node: A (ARCHIVE) and C (QA)
        await listed(pilot, ["A001", "C003"], {uids["A_PLAN"], uids["C_PLAN"]})  # in the order chosen: failed first

        await filter_by(pilot, "state:not-sent")
        await listed(pilot, ["B002"], {uids["B_PLAN"]})

        await filter_by(pilot, "beta mod:RTPLAN")  # words and terms together
        await listed(pilot, ["B002"], {uids["B_PLAN"]})

        await filter_by(pilot, "since:2026-01-01")  # C was received on Jan 1st, the others before
        await listed(pilot, ["C003"], {uids["C_PLAN"]})

        await filter_by(pilot, "mod:MR")
        assert order(app) == [] and "No plan matches 'mod:MR'" in details(app)

        await filter_by(pilot, "state:lost")
        assert order(app) == []
        assert "state:lost is not a state; allowed: failed, sent, sending, not-sent" in details(app)

        await pilot.press("escape")
        await until(pilot, lambda: len(tree.patients) == 3 and not app.main.filtering, what="filter cleared")


async def test_the_patient_under_the_cursor_shows_what_sort_and_filter_look_at(store):
    cfg, _, sender = store
    app = make_app(cfg, sender=sender)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: len(app.main.tree.patients) == 3, what="patients")
        await until(pilot, lambda: "Received" in details(app), what="the first patient's facts")
        text = details(app)  # C003: newest, so first and under the cursor
        assert "Patient C003" in text and "plans from TPS1" in text and "CT RTDOSE RTPLAN RTSTRUCT" in text, text
        assert "1 with a failed send, 0 never sent" in text
