"""The read resources of ``/api/v1``: status, patients, plans, jobs, nodes, rules, configuration, log, audit.

Each is a thin call into the station's ``StationAPI`` methods or the engine's query modules, run in a worker
thread (SQLite blocks; the loop also runs the receiver's events). Results are the same frozen dataclasses the
console gets in-process, serialised generically (``jsonable``).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import date
from typing import Any, Callable

from aiohttp import web

from ..plans import queries
from ..plans.bundle import bundle_for
from ..plans.listing import patients_json, plan_json
from .http import MAX_LIMIT, ApiError, body, field_str, page, query_bool, query_choice, query_int, reply
from .jsonable import to_json

PLAN_STATES = ("receiving", "waiting", "ready", "ready-incomplete")
V1 = "/api/v1"


def _run(fn: Callable[..., Any], *args: Any) -> Any:
    return asyncio.to_thread(fn, *args)


def _indexed(station: Any, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(conn, *args)`` in a worker with that thread's own index connection (never the loop thread's)."""
    return asyncio.to_thread(lambda: fn(station.index.conn, *args))


class Reads:
    """Handlers bound to one station (typed ``Any``: the station layer sits above this one)."""

    def __init__(self, station: Any, logs: Any, version: str) -> None:
        self.station, self.logs, self.version = station, logs, version

    def add_to(self, app: web.Application) -> None:
        r = app.router
        r.add_get(f"{V1}/status", self.status)
        r.add_get(f"{V1}/health", self.health)
        r.add_get(f"{V1}/patients", self.patients)
        r.add_post(f"{V1}/patients/select", self.select)
        r.add_get(f"{V1}/label-matches", self.label_matches)
        r.add_get(f"{V1}/received", self.received)
        r.add_get(f"{V1}/usage", self.usage)
        r.add_get(f"{V1}/patients/{{patient_id}}/plans", self.plans_of)
        r.add_get(f"{V1}/patients/{{patient_id}}/unconnected", self.unconnected)
        r.add_get(f"{V1}/plans", self.plans)
        r.add_get(f"{V1}/plans/{{plan_uid}}", self.plan)
        r.add_get(f"{V1}/plans/{{plan_uid}}/bundle", self.bundle)
        r.add_get(f"{V1}/plans/{{plan_uid}}/preview", self.preview)
        r.add_get(f"{V1}/plans/{{plan_uid}}/dvh", self.dvh)
        r.add_get(f"{V1}/metrics", self.metrics)
        r.add_get(f"{V1}/tree", self.tree)
        r.add_get(f"{V1}/jobs", self.jobs)
        r.add_get(f"{V1}/jobs/{{job_id}}", self.job)
        r.add_get(f"{V1}/nodes", self.nodes)
        r.add_get(f"{V1}/rules", self.rules)
        r.add_get(f"{V1}/config", self.config)
        r.add_get(f"{V1}/log", self.log)
        r.add_get(f"{V1}/audit", self.audit)

    # -- the station ---------------------------------------------------------------------------------------------
    async def status(self, request: web.Request) -> web.Response:
        s = self.station
        counts, (active, failed), free, last_hour = await asyncio.gather(
            _indexed(s, queries.store_counts), _run(s.job_counts), _run(s.free_disk_mb),
            _run(s.received_since, time.time() - 3600))
        return reply({**_plain(s.status()), "pid": os.getpid(), "version": self.version,
                      "data_dir": str(s.config.data_dir), "free_disk_mb": round(free, 1), "counts": counts,
                      "received_last_hour": last_hour, "jobs": {"active": active, "failed": failed}})

    async def health(self, request: web.Request) -> web.Response:
        """200 while the receiver listens, 503 (with its state and why) when it does not: for monitoring."""
        st = self.station.status()
        if not st.receives or st.receiver_state != "listening":
            detail = f": {st.receiver_detail}" if st.receiver_detail else ""
            state = st.receiver_state if st.receives else "off (the station runs without a receiver)"
            raise ApiError(503, f"the receiver is {state}{detail}")
        return reply({"receiver": st.receiver_state, "address": st.address})

    # -- the tree ------------------------------------------------------------------------------------------------
    async def patients(self, request: web.Request) -> web.Response:
        rows = await _run(self.station.patients, request.query.get("text", ""))
        return reply(page(request, rows))

    async def select(self, request: web.Request) -> web.Response:
        """``{"text", "only": [IDs]}``: the tree's patients within ``only`` (unpaged: the console asks by ID)."""
        data = await body(request)
        text, only = field_str(data, "text") or "", data.get("only")
        if only is not None and not (isinstance(only, list) and all(isinstance(v, str) for v in only)):
            raise ApiError(400, f"only: must be a list of patient IDs, got {only!r}", "only")
        return reply(await _run(self.station.patients, text, only))

    async def label_matches(self, request: web.Request) -> web.Response:
        limit = query_int(request, "limit", 20, 1, MAX_LIMIT)
        return reply(await _run(self.station.label_matches, request.query.get("text", ""), limit))

    async def received(self, request: web.Request) -> web.Response:
        """Instances received since ``?since=`` (epoch seconds)."""
        since = query_int(request, "since", 0)
        return reply({"since": since, "instances": await _run(self.station.received_since, float(since))})

    async def usage(self, request: web.Request) -> web.Response:
        """Instances and bytes stored, in all or of ``?patient=ID`` (404 for an unknown patient)."""
        pid = request.query.get("patient")
        if pid is not None:
            await self._patient(pid)
        n, nbytes = await _run(self.station.store_usage, pid)
        return reply({"patient": pid, "instances": n, "bytes": nbytes})

    async def _patient(self, patient_id: str) -> None:
        if not await _run(self.station.patients, "", [patient_id]):
            raise ApiError(404, f"no patient {patient_id!r}")

    async def plans_of(self, request: web.Request) -> web.Response:
        pid = request.match_info["patient_id"]
        await self._patient(pid)
        return reply(await _run(self.station.plans_of, pid))

    async def unconnected(self, request: web.Request) -> web.Response:
        pid = request.match_info["patient_id"]
        await self._patient(pid)
        return reply(await _run(self.station.unconnected, pid))

    async def plans(self, request: web.Request) -> web.Response:
        """Plans of the patients matching ``text`` (or of ``patient``), optionally in one ``state``; paged."""
        state = query_choice(request, "state", PLAN_STATES)
        complete = query_bool(request, "complete", False) if "complete" in request.query else None
        patient = request.query.get("patient")

        def listing() -> list[Any]:
            st = self.station
            ids = [patient] if patient else None
            rows = [p for pat in st.patients(request.query.get("text", ""), ids) for p in st.plans_of(pat.patient_id)]
            return [p for p in rows if (not state or p.state == state) and (complete is None or p.complete == complete)]

        return reply(page(request, await _run(listing)))

    async def plan(self, request: web.Request) -> web.Response:
        uid = request.match_info["plan_uid"]
        details = await _run(self.station.plan_details, uid)
        if details is None:
            raise ApiError(404, f"no plan {uid!r}")
        return reply(details)

    async def bundle(self, request: web.Request) -> web.Response:
        """The plan's whole reference chain as ``rtstation show --json`` lists it (every instance UID)."""
        uid = request.match_info["plan_uid"]
        b = await _indexed(self.station, bundle_for, uid)
        if b is None:
            raise ApiError(404, f"no plan {uid!r}")
        return reply({"patient_id": b.patient_id, "patient_name": b.patient_name, **plan_json(b)})

    async def preview(self, request: web.Request) -> web.Response:
        uid = request.match_info["plan_uid"]
        found = await _run(self.station.send_preview, [uid])
        if not found:
            raise ApiError(404, f"no plan {uid!r}")
        return reply(found[0])

    async def dvh(self, request: web.Request) -> web.Response:
        """The plan's DVH curves (empty before its metrics are computed), as ``StationAPI.dvh_curves``."""
        return reply(await _run(self.station.dvh_curves, request.match_info["plan_uid"]))

    async def metrics(self, request: web.Request) -> web.Response:
        """Plan metrics: ``?where=`` (repeatable, ``max_dose>60Gy``, ``roi:Lung*.V20Gy>30``), ``sort``, ``limit``;
        a bad filter is a 400 naming it."""
        where = request.query.getall("where", [])
        sort = request.query.get("sort", "-received")
        limit = query_int(request, "limit", 1000, 1, MAX_LIMIT)
        try:
            return reply(await _run(self.station.plan_metrics, where, sort, limit))
        except ValueError as exc:  # QueryError: the filter or sort named
            raise ApiError(400, str(exc), "where") from None

    async def tree(self, request: web.Request) -> web.Response:
        """The ``rtstation show --json`` contract (``?patient=ID`` for one patient)."""
        return reply(await _indexed(self.station, patients_json, request.query.get("patient")))

    # -- sending ---------------------------------------------------------------------------------------------
    async def jobs(self, request: web.Request) -> web.Response:
        """The ``rtstation queue --json`` rows, newest first (``?active=true`` for queued, sending and waiting)."""
        active = query_bool(request, "active", False)
        limit = query_int(request, "limit", 500, 1, 5000)
        rows = await _run(lambda: self.station.sender.queue.jobs(active_only=active, limit=limit))
        return reply([j.as_json() for j in rows])

    async def job(self, request: web.Request) -> web.Response:
        job_id = job_number(request)
        queue = self.station.sender.queue
        job = await _run(queue.job, job_id)
        if job is None:
            raise ApiError(404, f"no job {job_id}")
        items = await _run(queue.items, job_id)
        return reply({**job.as_json(), "items": [{"sop_uid": i.sop_uid, "modality": i.modality, "state": i.state,
                                                  "status": i.status, "error": i.error,
                                                  **({"derived": True} if i.derived else {})} for i in items]})

    async def nodes(self, request: web.Request) -> web.Response:
        return reply([{**_plain(n), "address": n.describe()} for n in self.station.config.nodes])

    async def rules(self, request: web.Request) -> web.Response:
        return reply(self.station.config.rules)

    async def config(self, request: web.Request) -> web.Response:
        c = self.station.config
        return reply({**_plain(c), "path": str(c.path) if c.path else None, "api_socket": str(c.api_socket)})

    # -- records ---------------------------------------------------------------------------------------------
    async def log(self, request: web.Request) -> web.Response:
        """Recent log records (``?since=SEQ`` for those after one, ``?level=WARNING`` and above)."""
        since = query_int(request, "since", 0)
        level = query_choice(request, "level", ("DEBUG", "INFO", "WARNING", "ERROR"))
        floor = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}.get(level, 0)
        limit = query_int(request, "limit", 200, 1, 5000)
        rows = [r for r in list(self.logs) if r["seq"] > since and r["level"] >= floor]
        return reply(rows[-limit:])

    async def audit(self, request: web.Request) -> web.Response:
        """One day's audit records (``?day=YYYY-MM-DD``, default today; ``?kind=``), paged, oldest first."""
        raw = request.query.get("day") or date.today().isoformat()
        try:
            day = date.fromisoformat(raw)  # the only part of a file name a caller chooses: a date, nothing else
        except ValueError:
            raise ApiError(400, f"day: must be a date YYYY-MM-DD, got {raw!r}", "day") from None
        kind = request.query.get("kind", "")
        path = self.station.config.log_dir / f"audit-{day.isoformat()}.jsonl"
        records = await _run(_read_audit, path, kind)
        return reply(page(request, records, 500))


def _plain(obj: Any) -> dict[str, Any]:
    out = to_json(obj)
    assert isinstance(out, dict)
    return out


def job_number(request: web.Request) -> int:
    raw = request.match_info["job_id"]
    if not raw.isdigit():
        raise ApiError(400, f"job_id: must be a job number, got {raw!r}", "job_id")
    return int(raw)


def _read_audit(path: Any, kind: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a crash: skip it, keep the rest
                continue
            if not kind or record.get("kind") == kind:
                out.append(record)
    return out
