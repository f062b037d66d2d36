"""Reference storage SCP for tests: writes exactly the dataset bytes that came over the wire.

Why: DCMTK storescu re-encodes some files while sending, so "stored byte for byte" can only be checked against
what a raw receiver got from the same command. Runs as its own process (pynetdicom settings are process-wide).
usage: python refscp.py PORT OUTDIR [AET]
A file OUTDIR/refuse.json ({"<SOP Instance UID>": status}) makes it answer those instances with that status.
"""

import json
import socket
import sys
from pathlib import Path

from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import Verification

port, out = int(sys.argv[1]), Path(sys.argv[2])
aet = sys.argv[3] if len(sys.argv) > 3 else "REFSCP"
out.mkdir(parents=True, exist_ok=True)
_config.UNRESTRICTED_STORAGE_SERVICE = True
counter: dict[str, int] = {}


def on_open(event):
    event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def on_store(event):
    sop = str(event.request.AffectedSOPInstanceUID)
    counter[sop] = counter.get(sop, 0) + 1
    refuse = out / "refuse.json"
    status = json.loads(refuse.read_text()).get(sop) if refuse.exists() else None
    if status is not None:
        with open(out / "refused.jsonl", "a") as fh:
            fh.write(json.dumps({"sop": sop, "status": status}) + "\n")
        return status
    name = f"{sop}.{counter[sop]}.bin"
    (out / name).write_bytes(event.encoded_dataset(include_meta=False))
    with open(out / "received.jsonl", "a") as fh:
        fh.write(json.dumps({"sop": sop, "ts": str(event.context.transfer_syntax), "file": name,
                             "sop_class": str(event.request.AffectedSOPClassUID)}) + "\n")
    return 0


ae = AE(aet)
ae.maximum_pdu_size = 65536
ae.add_supported_context(Verification)
print("REFSCP_READY", flush=True)
ae.start_server(("127.0.0.1", port), block=True,
                evt_handlers=[(evt.EVT_CONN_OPEN, on_open), (evt.EVT_C_STORE, on_store)])
