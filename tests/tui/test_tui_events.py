"""How the console reads the engine: batched events, lazy reads, the sender's persisted queue at start."""

from __future__ import annotations

from tui_support import FakeSender, QueueRow, fill_store, make_app, make_config, screen_text, until

from rtstation_tui.engine.events import LogEvent
from rtstation_tui.engine.plans import queries as queries_module

B1 = "1.2.246.352.71.5.320687012.24189.20090603083342"


async def test_events_are_applied_in_batches(tmp_path):
    """Many bus deliveries in a row cost one screen update (the flush runs at most 10 times a second)."""
    config = make_config(tmp_path)
    app = make_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main.ready, what="tree loaded")
        applied: list[int] = []
        original = app.apply_events
        ours = lambda batch: sum(getattr(e, "logger", "") == "rtstation.test" for e in batch)  # noqa: E731
        app.apply_events = lambda batch: (applied.append(ours(batch)), original(batch))  # type: ignore[method-assign]
        for i in range(50):
            app.on_engine_events([LogEvent(20, "rtstation.test", f"line {i}")])
        await until(pilot, lambda: sum(applied) == 50, what="all 50 events applied")
        assert len([n for n in applied if n]) == 1, applied
        assert "line 49" in screen_text(app)


async def test_opening_reads_no_reference_chain(tmp_path, monkeypatch):
    """The tree opens from the summary tables; chains are computed for the selected plan only."""
    config = make_config(tmp_path)
    fill_store(config, tmp_path)
    calls: list[str] = []
    for name in ("bundle_for", "patient_view"):
        real = getattr(queries_module, name)
        monkeypatch.setattr(queries_module, name, lambda *a, _n=name, _r=real: (calls.append(_n), _r(*a))[1])
    app = make_app(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: len(app.main.tree.patients) == 2, what="patients")
        await pilot.press("enter")
        await until(pilot, lambda: B1 in app.main.tree.plans, what="plans")
        assert calls == []  # patients and their plans: summary rows only
        await pilot.press("down")
        await until(pilot, lambda: app.main.query_one("#details").plan_uid == B1, what="details")
        assert calls == ["bundle_for"]


async def test_persisted_jobs_show_at_start_and_history_in_tree_and_details(tmp_path):
    config = make_config(tmp_path)
    fill_store(config, tmp_path, synthetic=False)
    sender = FakeSender()
    sender.queue.rows += [QueueRow(1, "QA", B1, "B1", "done", 4, 4), QueueRow(2, "ARCHIVE", B1, "B1", "failed", 0, 4,
                                                                             error="association rejected"),
                          QueueRow(3, "QA", "9.9", "X", "waiting-retry", 1, 10)]
    app = make_app(config, sender=sender)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: "QA ← X" in screen_text(app), what="the waiting job's bar")
        assert app.main.progress.counts() == (1, 0)
        await until(pilot, lambda: app.main.tree.patients, what="patients")
        await pilot.press("enter")
        await until(pilot, lambda: B1 in app.main.tree.plans, what="plans")
        label = str(app.main.tree.plan_node(B1).label)
        assert "QA: done" in label and "ARCHIVE: failed" in label
        await pilot.press("down")
        await until(pilot, lambda: "Send history" in screen_text(app), what="send history in the details")
        assert "association rejected" in screen_text(app)


def test_patients_query_with_a_broad_filter(tmp_path):
    """More IDs than SQLite host parameters: still answered (read all, keep the matches)."""
    from rtstation_tui.engine.station import Station

    station = Station(make_config(tmp_path), receive=False)
    conn = station.index.conn
    conn.executemany("INSERT INTO patients VALUES (?,?,?)", [(f"P{i:05d}", f"N^{i}", 0) for i in range(2000)])
    wanted = [f"P{i:05d}" for i in range(0, 2000, 2)]
    rows = station.patients(only=wanted)
    assert [r.patient_id for r in rows] == wanted
    station.index.close()


def test_patient_search_is_literal(tmp_path):
    """'_' and '%' in a typed filter are characters, not LIKE wildcards."""
    from rtstation_tui.engine.plans.queries import search
    from rtstation_tui.engine.station import Station

    station = Station(make_config(tmp_path), receive=False)
    station.index.conn.executemany("INSERT INTO patients VALUES (?,?,?)",
                                   [("AB_12", "X^Y", 0), ("ABX12", "X^Y", 0), ("P50%", "A^B", 0), ("P500", "A^B", 0)])
    conn = station.index.conn
    assert search(conn, "b_1") == ["AB_12"]
    assert search(conn, "50%") == ["P50%"]
    assert sorted(search(conn, "x^y")) == ["ABX12", "AB_12"]
    assert [p.patient_id for p in station.patients("b_1")] == ["AB_12"]  # what the console's filter asks
    station.index.close()
