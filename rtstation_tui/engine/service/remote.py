"""``RemoteStation``: the ``StationAPI`` of a station running in another process, over its control API, so the
console attaches to ``rtstation serve`` (or to another console's station) and works as it does in-process.

Why two clients: the console calls the query methods from thread workers (and a few, like ``status``, on the
loop), so they use a blocking stdlib HTTP connection over the Unix socket, one per call (``client.py``).
The event stream is an aiohttp task on the console's loop: it turns each JSON event back into its typed event and
posts it into a local ``EventBus``, so subscribers get the same batches as from an in-process station. When the
connection drops the bus gets ``ReceiverState("reconnecting")`` and the stream reconnects with its last sequence
number (and the run's epoch: after a restart of the station everything of the new run is replayed).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import quote, urlencode


from ..api import EchoOutcome, StationAPI, StationStatus
from ..config.model import Config
from ..config.reload import ReloadError
from ..config.rules import RuleConfig
from ..events import Event, EventBus, ReceiverState, Subscriber
from ..intake.receiver import ReceiverError
from ..metrics.query import QueryError
from ..metrics.views import DvhCurve, PlanMetrics
from ..outbound.deletion import DeletePreview, DeleteRefused, NothingToDelete
from ..plans.queries import JobInfo, LooseObject, PatientRow, PlanDetails, PlanRow, PlanVerdicts, SendPreview
from ..plans.selection import Selection, SelectionPreview
from ..qr.pull import RemotePlan, RemoteUnavailable
from .client import ApiCallError, ApiClient
from .jsonable import from_json, to_json

log = logging.getLogger("rtstation.attach")
EVENT_TYPES: dict[str, type[Event]] = {cls.__name__: cls for cls in Event.__subclasses__()}
RECONNECT_S = 0.25  # between attempts to reach a station that went away (a restart takes about a second)


class RemoteStation:
    """A station in another process. ``start``/``stop`` attach and detach; they never start or stop that station."""

    def __init__(self, socket_path: Path, pid: int = 0) -> None:
        self.socket_path, self.pid = Path(socket_path), pid
        self.client = ApiClient(self.socket_path)
        self.bus = EventBus()
        self._config: Config | None = None
        self._task: asyncio.Task[None] | None = None
        self.last_seq: int | None = None
        self.epoch = ""
        self.connected = False
        self.on_reset: Callable[[], None] | None = None  # the stream lost events: the caller re-reads

    # -- transport --------------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: Any = None) -> Any:
        return self.client.call_sync(method, path, body)

    def _get(self, path: str, **query: Any) -> Any:
        q = {k: v for k, v in query.items() if v is not None}
        return self._call("GET", f"/api/v1{path}" + (f"?{urlencode(q)}" if q else ""))

    def _post(self, path: str, body: Any = None) -> Any:
        return self._call("POST", f"/api/v1{path}", body if body is not None else {})

    # -- attaching --------------------------------------------------------------------------------------------
    def connect(self) -> None:
        """Read the station's pid and configuration (blocking; ApiCallError if none answers)."""
        self.pid = int(self._get("/status").get("pid") or 0)
        self._config = from_json(Config, self._get("/config"))

    async def start(self) -> None:
        """Attach: follow the station's events (``connect`` first, if not done: raises ApiCallError if it is gone)."""
        self.bus.start()
        if self._config is None:
            await asyncio.to_thread(self.connect)
        st = await asyncio.to_thread(self.status)  # the header's state until the stream's events change it
        self.bus.post(ReceiverState(st.receiver_state if st.receives else "off", st.address, st.receiver_detail))
        self._task = asyncio.create_task(self._follow(), name="attach-events")
        log.info("attached to the station of pid %d on %s", self.pid, self.socket_path)

    async def stop(self, timeout: float = 0.0) -> None:
        """Detach (the station goes on)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.bus.stop()

    async def _follow(self) -> None:
        import aiohttp

        while True:
            try:
                await self._read_stream(self.client)
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError):
                pass
            if self.connected:
                self.connected = False
                log.warning("lost the station (pid %d): reconnecting", self.pid)
                self.bus.post(ReceiverState("reconnecting", "", f"station pid {self.pid} gone"))
            await asyncio.sleep(RECONNECT_S)  # retry pacing while the station restarts, not synchronisation

    async def _read_stream(self, client: ApiClient) -> None:
        query = "" if self.last_seq is None else f"?since={self.last_seq}&epoch={quote(self.epoch)}"
        async with client.session(timeout=None) as s, s.get(f"http://station/api/v1/events{query}") as r:
            if r.status != 200:
                return
            kind = ""
            async for raw in r.content:
                line = raw.decode(errors="replace").rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    self._message(kind, json.loads(line[6:]))
                    kind = ""

    def _message(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "hello":
            again = self.epoch != "" and not self.connected
            self.epoch, self.connected = str(data.get("epoch", "")), True
            if self.last_seq is None:
                self.last_seq = int(data["seq"])
            if again:
                status = self._get("/status")
                self.pid = int(status.get("pid") or self.pid)
                log.info("reconnected to the station (pid %d)", self.pid)
                self.bus.post(ReceiverState(status["receiver_state"], status["address"], status["receiver_detail"]))
            return
        if kind == "reset":
            self.last_seq = int(data["seq"])
            log.warning("missed events of the station (more than its replay buffer): re-reading")
            if self.on_reset is not None:
                self.on_reset()
            return
        seq = data.pop("seq", None)
        cls = EVENT_TYPES.get(str(data.pop("type", "")))
        if seq is not None:
            self.last_seq = int(seq)
        if cls is not None:
            try:
                self.bus.post(from_json(cls, data))
            except (TypeError, KeyError, ValueError):  # a newer station's event this console does not know
                log.debug("event %s not understood: %r", cls.__name__, data)

    # -- StationAPI -----------------------------------------------------------------------------------------------
    @property
    def config(self) -> Config:
        assert self._config is not None, "start() reads the station's configuration"
        return self._config

    def status(self) -> StationStatus:
        return from_json(StationStatus, self._get("/status"))  # type: ignore[no-any-return]

    def patients(self, text: str = "", only: Sequence[str] | None = None) -> list[PatientRow]:
        rows = self._post("/patients/select", {"text": text, "only": list(only) if only is not None else None})
        return from_json(list[PatientRow], rows)  # type: ignore[no-any-return]

    def label_matches(self, text: str, limit: int = 20) -> list[str]:
        return list(self._get("/label-matches", text=text, limit=limit))

    def _maybe(self, path: str) -> Any:
        try:
            return self._get(path)
        except ApiCallError as exc:
            if exc.status == 404:
                return None
            raise

    def plans_of(self, patient_id: str) -> list[PlanRow]:
        rows = self._maybe(f"/patients/{quote(patient_id, safe='')}/plans")
        return from_json(list[PlanRow], rows or [])  # type: ignore[no-any-return]

    def unconnected(self, patient_id: str) -> list[LooseObject]:
        rows = self._maybe(f"/patients/{quote(patient_id, safe='')}/unconnected")
        return from_json(list[LooseObject], rows or [])  # type: ignore[no-any-return]

    def plan_details(self, plan_uid: str) -> PlanDetails | None:
        found = self._maybe(f"/plans/{quote(plan_uid, safe='')}")
        return from_json(PlanDetails, found) if found is not None else None

    def received_since(self, since: float) -> int:
        return int(self._get("/received", since=int(since))["instances"])

    def free_disk_mb(self) -> float:
        return float(self._get("/status")["free_disk_mb"])

    def job_counts(self) -> tuple[int, int]:
        jobs = self._get("/status")["jobs"]
        return int(jobs["active"]), int(jobs["failed"])

    def send_preview(self, plan_uids: Sequence[str]) -> list[SendPreview]:
        found = [self._maybe(f"/plans/{quote(uid, safe='')}/preview") for uid in plan_uids]
        return [from_json(SendPreview, p) for p in found if p is not None]

    def send(self, plan_uids: Sequence[str], nodes: Sequence[str],
             transforms: Mapping[str, str] | None = None, force: bool = False) -> list[int]:
        """As in-process: one request per plan and transform ("" = the stored files), each for its nodes."""
        groups: dict[str, list[str]] = {}
        for node in nodes:
            groups.setdefault((transforms or {}).get(node, ""), []).append(node)
        rows = [r for uid in plan_uids for transform, group in groups.items()
                for r in self._post("/send", {"plan": uid, "to": group, "transform": transform, "force": force})]
        return [int(r["job_id"]) for r in rows if r["job_id"] is not None]

    def selection_preview(self, selection: Selection) -> SelectionPreview | None:
        try:
            found = self._post("/selection/preview", {"selection": to_json(selection)})
        except ApiCallError as exc:
            if exc.status == 404:
                return None
            raise
        return from_json(SelectionPreview, found)  # type: ignore[no-any-return]

    def send_selection(self, selection: Selection, nodes: Sequence[str],
                       transforms: Mapping[str, str] | None = None, force: bool = False) -> list[int]:
        try:
            answer = self._post("/selection/send", {"selection": to_json(selection), "to": list(nodes),
                                                    "transforms": dict(transforms or {}), "force": force})
        except ApiCallError as exc:
            if exc.status == 400:  # as in-process: an unknown node or transform, nothing stored under it
                raise ValueError(exc.message) from None
            raise
        return [int(j) for j in answer["jobs"]]

    def plan_metrics(self, where: Sequence[str] = (), sort: str = "-received", limit: int = 1000) -> list[PlanMetrics]:
        query = urlencode([("where", w) for w in where] + [("sort", sort), ("limit", limit)])
        try:
            rows = self._call("GET", f"/api/v1/metrics?{query}")
        except ApiCallError as exc:
            if exc.status == 400:  # a bad filter: the same QueryError the in-process station raises
                raise QueryError(exc.message) from None
            raise
        return from_json(list[PlanMetrics], rows)  # type: ignore[no-any-return]

    def dvh_curves(self, plan_uid: str) -> list[DvhCurve]:
        return from_json(list[DvhCurve], self._get(f"/plans/{quote(plan_uid, safe='')}/dvh"))  # type: ignore[no-any-return]

    def echo(self, node: str) -> EchoOutcome:
        try:
            r = self._post(f"/nodes/{quote(node, safe='')}/echo")
        except ApiCallError as exc:  # as in-process: an unknown or unreachable node is an answer
            return EchoOutcome(node, False, None, exc.message)
        return EchoOutcome(r["node"], bool(r["ok"]), r["rtt_ms"], r["message"])

    def jobs(self, active_only: bool = True) -> list[JobInfo]:
        rows = self._get("/jobs", active="true" if active_only else "false")
        return from_json(list[JobInfo], rows)  # type: ignore[no-any-return]

    def retry_failed(self, plan_uids: Sequence[str]) -> list[int]:
        return [j for uid in plan_uids for j in self._post(f"/plans/{quote(uid, safe='')}/retry")["jobs"]]

    def cancel_active(self, plan_uids: Sequence[str]) -> list[int]:
        return [j for uid in plan_uids for j in self._post(f"/plans/{quote(uid, safe='')}/cancel")["jobs"]]

    def store_usage(self, patient_id: str | None = None) -> tuple[int, int]:
        found = self._get("/usage", patient=patient_id)
        return int(found["instances"]), int(found["bytes"])

    def _delete(self, patient_id: str, plan_uids: Sequence[str], dry_run: bool, who: str) -> DeletePreview:
        try:
            found = self._post("/delete", {"patient": patient_id, "plans": list(plan_uids) or None,
                                           "dry_run": dry_run, "who": who})
        except ApiCallError as exc:  # the in-process station's errors, so the console handles both alike
            if exc.status == 404:
                raise NothingToDelete(exc.message) from None
            if exc.status == 409:
                raise DeleteRefused(exc.message) from None
            raise
        return from_json(DeletePreview, found)  # type: ignore[no-any-return]

    def delete_preview(self, patient_id: str, plan_uids: Sequence[str] = ()) -> DeletePreview:
        return self._delete(patient_id, plan_uids, True, "")

    def delete(self, patient_id: str, plan_uids: Sequence[str] = (), who: str = "operator") -> DeletePreview:
        return self._delete(patient_id, plan_uids, False, who)

    def remote_plans(self, node: str, patient_id: str) -> list[RemotePlan]:
        try:
            rows = self._get(f"/nodes/{quote(node, safe='')}/remote-plans", patient=patient_id)
        except ApiCallError as exc:  # as in-process: the node cannot be asked now, and why
            raise RemoteUnavailable(exc.message) from None
        return from_json(list[RemotePlan], rows)  # type: ignore[no-any-return]

    def retrieve(self, node: str, patient_id: str, plan_uids: Sequence[str]) -> int:
        try:
            answer = self._post("/retrieve", {"node": node, "patient": patient_id, "plans": list(plan_uids)})
        except ApiCallError as exc:
            raise RemoteUnavailable(exc.message) from None
        return int(answer["retrieve_id"])

    def dry_run(self, rules: tuple[RuleConfig, ...], limit: int = 50) -> list[PlanVerdicts]:
        rows = self._post("/rules/dry-run", {"rules": to_json(rules), "limit": limit})
        return from_json(list[PlanVerdicts], rows)  # type: ignore[no-any-return]

    def reload(self, config: Config) -> list[str]:
        """The station re-reads its file (the editors just saved it) with its own loader and applies it."""
        try:
            changed = list(self._post("/config/reload")["changed"])
        except ApiCallError as exc:
            raise ReloadError(exc.message) from None
        self._config = from_json(Config, self._get("/config"))
        return changed

    def edit_config(self, edits: list[dict[str, Any]]) -> list[str]:
        """The editors' edits made by the station to its own file (``POST /api/v1/config/edit``: its loader checks
        them, an invalid or inapplicable one changes nothing) and applied there; returns the keys that changed.
        ApiCallError says why not (400 names the key)."""
        changed = list(self._post("/config/edit", {"edits": edits})["changed"])
        self._config = from_json(Config, self._get("/config"))
        return changed

    async def restart_receiver(self, config: Config, timeout: float = 30.0) -> list[str]:
        try:
            answer = await asyncio.to_thread(self._post, "/receiver/restart")
        except ApiCallError as exc:
            raise ReceiverError(exc.message) from None
        self._config = from_json(Config, await asyncio.to_thread(self._get, "/config"))
        return list(answer["changed"])

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        return self.bus.subscribe(fn)


def attach(config: Config) -> RemoteStation | None:
    """The station serving ``config``'s data_dir, connected, or None when none answers on its socket."""
    if not config.api_socket.exists():
        return None
    remote = RemoteStation(config.api_socket)
    try:
        remote.connect()
    except (ApiCallError, ValueError):
        return None
    return remote


def _implements(station: RemoteStation) -> StationAPI:
    return station  # mypy (tests/unit/test_typing.py) checks that RemoteStation is a StationAPI


class RecordedEdits:
    """Stands in for ``ConfigFile`` while an editor's edit runs: its calls become the ``config/edit`` operations,
    so an attached console's save is made by the station, on the station's file, by its loader."""

    def __init__(self) -> None:
        self.ops: list[dict[str, Any]] = []

    def set(self, section: str, key: str, value: Any) -> None:
        self.ops.append({"op": "set", "section": section, "key": key, "value": to_json(value)})

    def unset(self, section: str, key: str) -> None:
        self.ops.append({"op": "unset", "section": section, "key": key})

    def add_entry(self, array: str, values: dict[str, Any]) -> None:
        self.ops.append({"op": "add_entry", "array": array, "values": to_json(values)})

    def update_entry(self, array: str, name: str, values: dict[str, Any]) -> None:
        self.ops.append({"op": "update_entry", "array": array, "name": name, "values": to_json(values)})

    def delete_entry(self, array: str, name: str) -> None:
        self.ops.append({"op": "delete_entry", "array": array, "name": name})

    def move_entry(self, array: str, name: str, delta: int) -> None:
        self.ops.append({"op": "move_entry", "array": array, "name": name, "delta": delta})
