"""The disk fills up in the middle of a transfer: the C-STORE is answered 0xA700, nothing is stored, the space is
freed at once and the same association carries on. Simulated with a file-size limit (RLIMIT_FSIZE) on the real
``rtstation serve`` process: a write past it fails with EFBIG, as one fails with ENOSPC on a full disk."""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
from pathlib import Path

from helpers import PEER_ENV, dataset_bytes, dcmtk, free_port, station_toml, stored_files, wait_for, write_config

from rtstation_tui.synthetic import make_ct_bulk

LIMIT = 6_000_000  # bytes: a 64×64 CT and the index's WAL fit, a 2048×2048 CT (8.4 MB) does not


def limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def test_disk_full_mid_transfer_answers_a700_and_the_association_goes_on(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "var"
    cfg = write_config(tmp_path / "rt.toml", station_toml(data_dir, port))
    small = make_ct_bulk(tmp_path / "small", 4, rows=64, cols=64, patient_id="SMALL")
    big = make_ct_bulk(tmp_path / "big", 1, rows=2048, cols=2048, patient_id="BIG")
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "rtstation_tui", "serve", "--config", str(cfg)],
                                  stdout=log, stderr=subprocess.STDOUT, preexec_fn=limit_file_size)
    try:
        wait_for(lambda: "serving" in log_path.read_text(), 30, what="serve to start")
        files = [small[0], small[1], big[0], small[2], small[3]]
        proc = subprocess.run([dcmtk("storescu"), "-v", "-nh", "-xi", "-aet", "TPS", "-aec", "RTSTATION", "127.0.0.1",
                               str(port), *map(str, files)], env=PEER_ENV, capture_output=True, text=True,
                              timeout=60)
        responses = re.findall(r"Received Store Response \(([^)]*)\)", proc.stderr)
        assert responses == ["Success", "Success", "Refused: OutOfResources", "Success", "Success"], proc.stderr
        wait_for(lambda: "released: 4 instances" in log_path.read_text(), what="the association's closing line")
        text = log_path.read_text()
        assert "no space to receive" in text and "refused with 0xA700, nothing stored" in text
        assert "Exception in thread" not in text and "Traceback" not in text
        stored = {dataset_bytes(f) for f in stored_files(data_dir)}
        assert stored == {dataset_bytes(f) for f in small}  # the big one is nowhere under a real name
        assert not list((data_dir / "tmp").iterdir()), "the half-written spool file must be gone"
        audit = [json.loads(line) for f in (data_dir / "logs").glob("audit-*.jsonl")
                 for line in f.read_text().splitlines()]
        [refused] = [r for r in audit if r["kind"] == "store_refused"]
        assert refused["status"] == "0xA700" and "File too large" in refused["reason"]
    finally:
        server.kill()
        server.wait()
