"""Regenerate docs/console.svg, the README's screenshot: ``.venv/bin/python docs/make_screenshot.py``.

A throw-away store (plan B1 of tests/data/breast_boost, two complete synthetic patients) in a temp directory,
the console driven by Textual's Pilot (open the first patient, select B1, mark it), saved with Textual's own
``save_screenshot``. Nothing listens on the network (the header says "off").
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from tui_support import fill_store, make_app, make_config, until  # noqa: E402

from rtstation_tui.synthetic import make_patient  # noqa: E402


async def main(out: Path, size: tuple[int, int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        config = make_config(tmp_path)
        make_patient(tmp_path / "more", "SYN002", name="MUSTER^MAX", slices=3, rows=8, cols=8, label="HN_VMAT",
                     machine="TrueBeam2", approval="UNAPPROVED", seed="docs")
        fill_store(config, tmp_path)
        from rtstation_tui.engine.importer import BatchWriter, Importer
        from rtstation_tui.engine.index import Index
        from rtstation_tui.engine.store import Store

        index = Index(config.data_dir)
        writer = BatchWriter(index)
        Importer(Store(config.data_dir, "os"), index, writer).run([tmp_path / "more"], "import", "MONACO")
        writer.flush()
        index.close()
        app = make_app(config)
        async with app.run_test(size=size) as pilot:
            await until(pilot, lambda: len(app.main.tree.patients) == 3, what="patients")
            await until(pilot, lambda: "console started" in " ".join(app.main.logpane.log_widget.lines))
            await pilot.press("enter")
            await until(pilot, lambda: app.main.tree.plans, what="plans")
            await pilot.press("down", "space", "up")  # B1, mark it (the cursor moves on), back to B1
            await until(pilot, lambda: app.main.query_one("#details").plan_uid, what="details")
            await pilot.pause()
            app.save_screenshot(out.name, path=str(out.parent))
    print(f"wrote {out}")


if __name__ == "__main__":
    asyncio.run(main(ROOT / "docs" / "console.svg", (100, 30)))
