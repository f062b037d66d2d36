"""``python -m bench.search [--instances N]``: ``rtstation search`` over the store of a 100,000-instance index.

Target ([QR]): an indexed tag (PatientID, Modality, UIDs) answers in under 1 s. The index is built the way
``bench/scale.py`` builds it (rows only: indexed terms never open a file, which is the point being measured).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from rtstation_tui.engine.dicom.tagpath import parse_term
from rtstation_tui.engine.plans.search import search_store
from rtstation_tui.engine.store.index import Index

from .scale import build

TARGET_S = 1.0


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.search")
    p.add_argument("--instances", type=int, default=100_000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "var"
        build(data_dir, args.instances)
        index = Index(data_dir)
        rows = {}
        for label, terms in (("PatientID exact", ["(0010,0020)=PAT000123"]),
                             ("Modality=RTPLAN + PatientID=?", ["(0008,0060)=RTPLAN", "(0010,0020)=?"]),
                             ("PatientID wildcard PAT0001*", ["(0010,0020)=PAT0001*"])):
            t0 = time.perf_counter()
            result = search_store(index, data_dir / "store", tuple(parse_term(t) for t in terms))
            seconds = time.perf_counter() - t0
            rows[label] = {"seconds": round(seconds, 3), "hits": len(result.hits), "ok": seconds < TARGET_S}
    print(json.dumps({"instances": args.instances, "target_s": TARGET_S, "searches": rows}, indent=2))


if __name__ == "__main__":
    main()
