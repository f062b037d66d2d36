"""[ACTIONS] in the console: a plan's tags (a rule's ``tag = "…"``) and each node's storage commitment state
(`sent` → `committed` / `commit failed: N instances (reasons)`), in the tree and the details, at 80x24."""

from __future__ import annotations

from tui_support import FakeSender, fill_plans, make_app, make_config, screen_text, until

from rtstation_tui.engine.events import JobChanged
from rtstation_tui.engine.plans.queries import JobInfo
from rtstation_tui.engine.store.index import Index
from rtstation_tui.engine.store.tags import add_tag

FAILED = "commit failed: 1 instances (0x0112 no such object instance)"


def flat(text: str) -> str:
    """The screen's words in order, without the borders and line breaks a wrapped value gets at 80 columns."""
    return " ".join(w for w in text.replace("▕", " ").split() if w not in ("│", "▎", "▊"))


async def test_tags_and_commitment_states_show_in_the_tree_and_details_and_follow_reports(tmp_path):
    config = make_config(tmp_path)
    uid = fill_plans(config, tmp_path, [("PAT01", "DOE^JANE", "LIVE")])["LIVE"]
    index = Index(config.data_dir)
    add_tag(index.conn, uid, "research", "rule:to-research")
    index.close()
    sender = FakeSender()
    sender.queue.rows += [JobInfo(1, "QA", uid, "LIVE", "done", 5, 5, commitment=FAILED),
                          JobInfo(2, "ARCHIVE", uid, "LIVE", "done", 5, 5, commitment="committed")]
    app = make_app(config, sender=sender)
    async with app.run_test(size=(80, 24)) as pilot:
        tree = app.main.tree
        await until(pilot, lambda: "PAT01" in tree.patients, what="PAT01")
        await pilot.press("enter")
        await until(pilot, lambda: tree.plan_node(uid), what="LIVE in the tree")
        label = lambda: str(tree.plan_node(uid).label)  # noqa: E731
        assert "QA: commit failed" in label() and "ARCHIVE: committed" in label() and "#research" in label()
        tree.move_cursor(tree.plan_node(uid))
        await until(pilot, lambda: app.main.query_one("#details").plan_uid == uid, what="details of LIVE")
        await until(pilot, lambda: "Tags research" in flat(screen_text(app)), what="the tag in the details")
        text = flat(screen_text(app))
        assert f"QA done 5/5, {FAILED}" in text, text
        assert "ARCHIVE done 5/5, committed" in text
        # a new send to QA: delivered, waiting for the node's word, then its report
        app.apply_events([JobChanged(3, "QA", uid, "LIVE", "done", 5, 5, 0, "", "waiting")])
        await until(pilot, lambda: "QA: sent" in label(), what="QA: sent while the node has not vouched")
        app.apply_events([JobChanged(3, "QA", uid, "LIVE", "done", 5, 5, 0, "", "committed")])
        await until(pilot, lambda: "QA: committed" in label(), what="QA: committed after the report")
