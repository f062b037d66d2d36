"""Stored bytes for the C-STOREs of our C-GET and C-MOVE SCP: the file as it is in the store, never
re-encoded (unless the peer accepted no context in the stored transfer syntax: then decoded and sent in one it
accepted, UIDs kept).

Why: pynetdicom's Query/Retrieve SCP (``QueryRetrieveServiceClass._get_scp``/``_move_scp``) only takes
``Dataset`` objects from the handler and passes each one to ``assoc.send_c_store(dataset, msg_id=...)`` on the
association it sends on, which would re-encode it through pydicom (undefined lengths, odd encodings, private
elements would not survive byte for byte). ``send_c_store`` itself also takes a file path and then streams the
file's dataset bytes (``STORE_SEND_CHUNKED_DATASET``, set in ``settings.py``). So the handler yields a small
stand-in ``Dataset`` (SOP Class and Instance UID) and ``send_stored_files`` makes that association's
``send_c_store`` look the UID up and send the stored file instead. For C-MOVE the sending association is made by
pynetdicom from the destination the handler yields: ``move_destination_kwargs`` hands it our contexts and an
``EVT_CONN_OPEN`` handler that installs the same lookup (and TCP_NODELAY). Both modes ([network] fast_paths on or
off) use this: it is correctness, not speed. Listed in ``manifest.py``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import pydicom
from pydicom.dataset import Dataset
from pynetdicom import evt

from .requestor import prepare_requestor

log = logging.getLogger("rtstation.qr")

_PATHS = "rtstation_stored_paths"  # our own attribute on the Association instance


def stand_in(sop_class: str, sop_uid: str) -> Dataset:
    """What the handler yields for one stored file (the lookup key is the SOP Instance UID)."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    return ds


def send_stored_files(assoc: Any, paths: Mapping[str, Path], originator: str = "") -> None:
    """From now on, ``assoc.send_c_store(stand_in)`` sends ``paths[SOPInstanceUID]`` (other datasets as given).
    ``originator``: the Move Originator AE title of C-MOVE sub-operations, the AE that asked for the C-MOVE (Part 7
    9.1.1.1; pynetdicom's SCP would name itself, so the receiver could not tell whose retrieve they belong to)."""
    current = assoc.__dict__.get(_PATHS)
    if current is None:
        current = {}
        stock = assoc.send_c_store

        def send(dataset: Any, msg_id: int = 1, priority: int = 2, originator_aet: str | None = None,
                 originator_id: int | None = None) -> Any:
            if originator and originator_aet is not None:
                originator_aet = originator
            path = current.get(str(getattr(dataset, "SOPInstanceUID", "") or "")) \
                if isinstance(dataset, Dataset) else None
            if path is None:
                return stock(dataset, msg_id, priority, originator_aet, originator_id)
            try:
                return stock(path, msg_id, priority, originator_aet, originator_id)
            except ValueError:  # the peer took no context in the stored syntax: decode, send in one it took
                log.info("sending %s decoded: the peer accepted no context in its stored transfer syntax", path.name)
                return stock(pydicom.dcmread(path), msg_id, priority, originator_aet, originator_id)

        assoc.send_c_store = send
        setattr(assoc, _PATHS, current)
    current.clear()
    current.update(paths)


def move_destination_kwargs(paths: Mapping[str, Path], contexts: list[Any], fast_paths: bool, tls: Any = None,
                            host: str = "", originator: str = "") -> dict[str, Any]:
    """The third item of a C-MOVE handler's destination: pynetdicom passes it to ``ae.associate``. The sending
    association is prepared as the sender's are (``requestor.prepare_requestor``: TCP_NODELAY; with fast paths the
    loop that cannot steal C-STORE responses, which under load stalls a sub-operation for the DIMSE timeout).
    ``tls``: the SSL context for the destination (``tls.client_context``), whose certificate must name ``host``;
    ``originator``: the AE title that asked for the C-MOVE."""
    def on_open(event: Any) -> None:
        prepare_requestor(event.assoc, fast_paths)
        send_stored_files(event.assoc, paths, originator)

    kwargs: dict[str, Any] = {"contexts": contexts, "evt_handlers": [(evt.EVT_CONN_OPEN, on_open)]}
    if tls is not None:
        kwargs["tls_args"] = (tls, host)
    return kwargs
