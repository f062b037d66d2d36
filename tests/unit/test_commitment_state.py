"""Storage commitment bookkeeping without a peer: a node that cannot be asked says why, a request nobody answers
times out with a clear state, a report for a transaction we never asked about changes nothing."""

from __future__ import annotations

from pydicom.dataset import Dataset

from helpers import free_port
from rtstation_tui.engine.config.nodes import NodeConfig
from rtstation_tui.engine.outbound import commitment
from rtstation_tui.engine.outbound.queue import ItemRow, JobQueue


def _item(uid: str) -> ItemRow:
    return ItemRow(job_id=1, seq=1, sop_uid=uid, sop_class="1.2.840.10008.5.1.4.1.1.2", modality="CT", path="/x",
                   size=1, transfer_syntax="1.2.840.10008.1.2.1", state="done", status=0, error="", permanent=0,
                   sent_at=0.0)


def test_unreachable_node_timeout_and_unknown_reports(tmp_path) -> None:
    queue = JobQueue(tmp_path)
    node = NodeConfig(name="PACS", ae_title="PACS", host="127.0.0.1", port=free_port(), commitment=True,
                      commitment_timeout_s=5, timeout_s=2)
    row = commitment.request(queue, node, "RTSTATION", 1, [_item("1.2.3")])
    assert row.state == "request failed" and "refused" in row.detail  # nothing listens there
    with queue.transaction() as conn:  # as a request that went out before a restart, never answered
        conn.execute("INSERT INTO commitments VALUES ('9.9', 2, 'PACS', 'waiting', 0, 0, 10, 1, 0, '')")
    assert commitment.state_of(queue, 2) == "waiting"
    expired: list[int] = []
    assert commitment.expire(queue, now=11, announce=expired.append) == 1
    assert expired == [2]  # the console hears of it: its tree stops saying "sent"
    assert commitment.state_of(queue, 2).startswith("commit timed out: no N-EVENT-REPORT")
    stranger = Dataset()
    stranger.TransactionUID = "7.7.7"
    assert commitment.report(queue, stranger) is False


def test_a_report_settles_the_request_and_the_station_hears_of_the_job(tmp_path) -> None:
    """The console's tree shows `committed` when the report comes: the report names the job to announce."""
    from types import SimpleNamespace

    queue = JobQueue(tmp_path)
    with queue.transaction() as conn:
        conn.execute("INSERT INTO commitments VALUES ('5.5', 3, 'PACS', 'waiting', 0, 0, 1e12, 1, 0, '')")
        conn.execute("INSERT INTO commitment_items VALUES ('5.5', '1.2.840.10008.5.1.4.1.1.2', '1.2.3', 'waiting', '')")
    heard: list[int] = []
    reports = commitment.CommitmentReports(lambda: queue, heard.append)
    ds, ref = Dataset(), Dataset()
    ds.TransactionUID = "5.5"
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", "1.2.3"
    ds.ReferencedSOPSequence = [ref]
    event = SimpleNamespace(event_information=ds, assoc=SimpleNamespace(requestor=SimpleNamespace(ae_title="PACS")))
    assert reports.on_report(event) == (0x0000, None)
    assert heard == [3] and commitment.state_of(queue, 3) == "committed"
