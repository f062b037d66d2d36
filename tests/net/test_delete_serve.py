"""``rtstation delete`` and ``POST /api/v1/delete`` against a running ``rtstation serve``, and an attached console's
``RemoteStation``: refused while a job waits to retry (naming it), then the plan goes and its CT stays for the
other plan; the last plan takes the CT; the store's usage is what the index says."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import Serve, free_port, rtstation, wait_for
from rtstation_tui.engine.api import DeleteRefused, NothingToDelete
from rtstation_tui.engine.service.remote import RemoteStation
from rtstation_tui.synthetic import add_plan, make_patient


def test_delete_through_the_running_station(serve: Serve, config: Path, data_dir: Path, tmp_path: Path) -> None:
    p = make_patient(tmp_path / "in" / "a1", "DEL1", slices=3, rows=8, cols=8, label="A1")
    q = add_plan(tmp_path / "in" / "a2", p, "A2")
    rtstation("import", str(tmp_path / "in"), config=config)
    remote = RemoteStation(data_dir / "api.sock")
    remote.connect()
    wait_for(lambda: len(remote.plans_of("DEL1")) == 2, what="two plans indexed")
    assert remote.store_usage("DEL1")[0] == 9
    [job] = remote.send([p.plan_uid], [f"NOBODY@127.0.0.1:{free_port()}"])  # a node that is down: retried later
    wait_for(lambda: remote.delete_preview("DEL1", [p.plan_uid]).blocked_by, what="the job active")
    refused = rtstation("delete", "--plan", "A1", "--yes", config=config, check=False)
    assert refused.returncode == 1 and f"job {job} to NOBODY" in refused.stderr and "is not deleted" in refused.stderr
    with pytest.raises(DeleteRefused, match=f"job {job}"):
        remote.delete("DEL1", [p.plan_uid], "console:test")
    assert remote.cancel_active([p.plan_uid]) == [job]

    out = rtstation("delete", "--plan", "A1", "--yes", config=config).stdout
    assert "deleted plan A1 of patient DEL1: 3 objects" in out and "3 shared objects stay" in out
    assert "api: POST /api/v1/delete" in serve.text()
    preview = remote.delete_preview("DEL1")
    assert (preview.what, preview.instances, [label for _, label in preview.plans]) == ("patient", 6, ["A2"])
    done = remote.delete("DEL1", [q.plan_uid], "console:test")
    assert done.deleted and done.patient_gone and done.instances == 6  # the CT went with the last plan
    assert remote.patients() == [] and not list((data_dir / "store").rglob("*.dcm"))
    with pytest.raises(NothingToDelete):
        remote.delete_preview("DEL1")
