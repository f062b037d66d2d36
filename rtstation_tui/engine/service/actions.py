"""The resources of ``/api/v1`` that do something: send, retry and cancel jobs, C-ECHO, rule dry runs, stop.

Same semantics as the command line (``rtstation send``, ``queue retry|cancel``, ``echo``, ``rules test``): the same
engine calls, the same JSON rows; errors map to statuses (400 naming the field, 404 unknown plan/job/node, 409 a job
whose state does not allow it, 503 when the station cannot send now or is stopping).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Callable

from aiohttp import web

from ..config.checks import ConfigError
from ..config.reload import ReloadError
from ..config.rules import INCLUDE_PARTS, RuleConfig
from ..intake.receiver import ReceiverError
from ..outbound.deletion import DeleteRefused, NothingToDelete
from ..outbound.dryrun import plan_test
from ..outbound.sender import send_report
from ..plans.bundle import PlanNotFound, resolve_plan
from .http import ApiError, body, field_bool, field_list, field_str, reply
from .jsonable import from_json
from .routes import V1, job_number


class Actions:
    def __init__(self, station: Any, stopper: Callable[[], Callable[[], None] | None]) -> None:
        self.station, self.stopper = station, stopper  # stopper(): how the process owner stops (None: not here)

    def add_to(self, app: web.Application) -> None:
        r = app.router
        r.add_post(f"{V1}/send", self.send)
        r.add_post(f"{V1}/jobs/{{job_id}}/retry", self.retry)
        r.add_post(f"{V1}/jobs/{{job_id}}/cancel", self.cancel)
        r.add_post(f"{V1}/plans/{{plan_uid}}/retry", self.plan_retry)
        r.add_post(f"{V1}/plans/{{plan_uid}}/cancel", self.plan_cancel)
        r.add_post(f"{V1}/nodes/{{node}}/echo", self.echo)
        r.add_post(f"{V1}/config/reload", self.reload)
        r.add_post(f"{V1}/receiver/restart", self.restart_receiver)
        r.add_post(f"{V1}/rules/dry-run", self.dry_run)
        r.add_post(f"{V1}/rules/test", self.rules_test)
        r.add_post(f"{V1}/delete", self.delete)
        r.add_post(f"{V1}/stop", self.stop)

    def _can_send(self) -> None:
        why = self.station.status().send_unavailable
        if why:
            raise ApiError(503, why)

    def _plan_uid(self, plan: str, patient: str | None) -> str:
        try:
            return resolve_plan(self.station.index.conn, plan, patient)
        except PlanNotFound as exc:
            raise ApiError(404, str(exc), "plan") from None
        except ValueError as exc:  # ambiguous label
            raise ApiError(409, str(exc), "plan") from None

    async def send(self, request: web.Request) -> web.Response:
        """``{"plan": UID|LABEL, "patient"?: ID}`` or ``{"sop": [UID]}`` or ``{"series"|"study"|"patient": UID}``,
        with ``"to": [NODE]``, ``"include"?: [PART]`` (plans only), ``"force"?: bool``, ``"transform"?: SPEC``
        (``anonymize:PROFILE``, ``overlay[:ROI,...]``): the same choices as ``rtstation send``."""
        data = await body(request)
        to = field_list(data, "to", required=True)
        plan, sops, patient = field_str(data, "plan"), field_list(data, "sop"), field_str(data, "patient")
        levels = {k: v for k in ("series", "study") if (v := field_str(data, k)) is not None}
        if plan is None and sops is None and not levels and patient is not None:
            levels["patient"] = patient
        if [plan is not None, sops is not None, bool(levels)].count(True) != 1 or len(levels) > 1:
            raise ApiError(400, "say what to send: exactly one of plan, sop, series, study or patient", "plan")
        include = field_list(data, "include")
        if include and plan is None:
            raise ApiError(400, "include selects parts of a plan bundle: use it with plan", "include")
        if include and (bad := [i for i in include if i not in INCLUDE_PARTS]):
            raise ApiError(400, f"include: unknown part {bad[0]!r}; choose from {', '.join(INCLUDE_PARTS)}",
                           "include")
        force, transform = field_bool(data, "force"), field_str(data, "transform") or ""
        self._can_send()
        sender = self.station.sender

        def enqueue() -> list[dict[str, Any]]:
            if sops is not None:
                results = sender.enqueue_instances(sops, to, force=force, transform=transform)
            elif levels:
                ((level, uid),) = levels.items()
                results = sender.enqueue_level(level, uid, to, force=force, transform=transform)
            else:
                uid = self._plan_uid(plan or "", patient)
                results = sender.enqueue_plan(uid, to, include=include, force=force, transform=transform)
            return send_report(sender.queue, results)

        try:
            return reply(await asyncio.to_thread(enqueue), 201)
        except ValueError as exc:  # an unknown or disabled node or transform, instances not in the index
            raise ApiError(400, str(exc), _send_field(str(exc), transform)) from None

    async def _job_action(self, request: web.Request, action: str) -> web.Response:
        job_id = job_number(request)
        sender = self.station.sender
        job = await asyncio.to_thread(sender.queue.job, job_id)
        if job is None:
            raise ApiError(404, f"no job {job_id}")
        if action == "retry":
            self._can_send()
        ok = await asyncio.to_thread(sender.retry if action == "retry" else sender.cancel, job_id)
        if not ok:
            raise ApiError(409, f"job {job_id} is {job.state}: cannot {action} it now")
        after = await asyncio.to_thread(sender.queue.job, job_id)
        return reply(after.as_json())

    async def retry(self, request: web.Request) -> web.Response:
        return await self._job_action(request, "retry")

    async def cancel(self, request: web.Request) -> web.Response:
        return await self._job_action(request, "cancel")

    async def plan_retry(self, request: web.Request) -> web.Response:
        """The failed jobs of one plan, queued again: ``{"jobs": [ids]}``."""
        self._can_send()
        uid = request.match_info["plan_uid"]
        return reply({"jobs": await asyncio.to_thread(self.station.retry_failed, [uid])})

    async def plan_cancel(self, request: web.Request) -> web.Response:
        uid = request.match_info["plan_uid"]
        return reply({"jobs": await asyncio.to_thread(self.station.cancel_active, [uid])})

    def _reread(self) -> Any:
        """The configuration as the station's owner reads it (its file and command-line overrides)."""
        reread = self.station.reread
        if reread is None:
            raise ApiError(409, "this station does not re-read its configuration on request (its console does)")
        try:
            return reread()
        except ConfigError as exc:  # the same loader as at start: a refused edit changes nothing
            raise ApiError(400, str(exc), exc.key) from None

    async def reload(self, request: web.Request) -> web.Response:
        """Re-read the configuration file and apply it (as SIGHUP): ``{"changed": [keys]}``; 409 if it cannot."""
        config = await asyncio.to_thread(self._reread)
        try:
            return reply({"changed": self.station.reload(config)})
        except ReloadError as exc:
            raise ApiError(409, str(exc)) from None

    async def restart_receiver(self, request: web.Request) -> web.Response:
        """Re-read the configuration and restart the listener with it (address, port, AE title); 503 if unbindable."""
        config = await asyncio.to_thread(self._reread)
        try:
            return reply({"changed": await self.station.restart_receiver(config)})
        except ReceiverError as exc:
            raise ApiError(503, str(exc)) from None

    async def echo(self, request: web.Request) -> web.Response:
        """C-ECHO a configured node by name, or any ``AET@host:port``."""
        name = request.match_info["node"]
        config = self.station.config
        if config.node(name) is None and "@" not in name:
            raise ApiError(404, f"no node {name!r}; configured: {', '.join(n.name for n in config.nodes) or 'none'}")
        self._can_send()
        outcome = await asyncio.to_thread(self.station.echo, name)
        node = config.node(name)
        return reply({"node": outcome.node, "address": node.describe() if node else name, "ok": outcome.ok,
                      "rtt_ms": outcome.rtt_ms, "message": outcome.message})

    async def dry_run(self, request: web.Request) -> web.Response:
        """The configured rules (or ``"rules"`` given) on the newest ``limit`` plans (nothing is sent)."""
        data = await body(request)
        limit = data.get("limit", 50)
        if not isinstance(limit, int) or not 1 <= limit <= 500:
            raise ApiError(400, f"limit: must be an integer from 1 to 500, got {limit!r}", "limit")
        rules = self.station.config.rules
        if data.get("rules") is not None:  # an editor's rules not saved yet (nothing is sent either way)
            try:
                rules = from_json(tuple[RuleConfig, ...], data["rules"])
            except (TypeError, KeyError, ValueError) as exc:
                raise ApiError(400, f"rules: not a list of rules: {exc}", "rules") from None
        return reply(await asyncio.to_thread(self.station.dry_run, rules, limit))

    async def rules_test(self, request: web.Request) -> web.Response:
        """``rtstation rules test``: every rule's decision on one stored plan (``{"plan": UID|LABEL}``)."""
        data = await body(request)
        plan = field_str(data, "plan", required=True) or ""
        patient = field_str(data, "patient")
        st = self.station

        def test() -> Any:
            return plan_test(st.config, st.index, st.sender.queue, self._plan_uid(plan, patient))

        return reply(await asyncio.to_thread(test))

    async def delete(self, request: web.Request) -> web.Response:
        """``{"patient": ID}`` (the whole patient) or ``{"plan": UID|LABEL, "patient"?: ID}`` / ``{"plans": [UID]}``
        (those bundles; shared objects stay), ``"dry_run"?: bool`` (what would go, and the active jobs that refuse
        it), ``"who"?: str`` for the audit. 404 unknown patient/plan, 409 while active jobs hold its objects."""
        data = await body(request)
        patient, plan, plans = field_str(data, "patient"), field_str(data, "plan"), field_list(data, "plans")
        dry, who = field_bool(data, "dry_run"), field_str(data, "who") or "api"
        if plan is not None and plans is not None:
            raise ApiError(400, "say what to delete: plan or plans, not both", "plan")
        st = self.station

        def run() -> Any:
            uids = list(plans or [])
            pid = patient
            if plan is not None:
                uids = [self._plan_uid(plan, patient)]
            if uids and pid is None:
                pid = _patient_of(st, uids)
            if pid is None:
                raise ApiError(400, "say what to delete: patient, plan or plans", "patient")
            try:
                return st.delete_preview(pid, uids) if dry else st.delete(pid, uids, who)
            except NothingToDelete as exc:
                raise ApiError(404, str(exc), "plan" if uids else "patient") from None
            except DeleteRefused as exc:
                raise ApiError(409, str(exc)) from None

        return reply(await asyncio.to_thread(run))

    async def stop(self, request: web.Request) -> web.Response:
        """Stop the station gracefully (as SIGTERM: no new associations, in-flight stores finish)."""
        stop = self.stopper()
        if stop is None:
            raise ApiError(409, "this station is run by a console: stop it there")
        stop()
        return reply({"stopping": True, "pid": os.getpid()}, 202)


def _patient_of(station: Any, plan_uids: list[str]) -> str:
    """The one patient these plans belong to (a delete is of one patient's plans)."""
    q = f"SELECT DISTINCT patient_id FROM plans WHERE sop_uid IN ({','.join('?' * len(plan_uids))})"
    found = [r[0] for r in station.index.conn.execute(q, plan_uids)]
    if len(found) != 1:
        raise ApiError(404 if not found else 400, "no such plan" if not found else
                       f"these plans belong to several patients ({', '.join(found)}): delete them one patient at "
                       "a time", "plans")
    return str(found[0])


def _send_field(message: str, transform: str) -> str:
    """Which request field a refused send names (for a client that marks the offending input)."""
    if "not in the index" in message:
        return "sop"
    if "no series" in message or "no study" in message or "no patient" in message:
        return "level"
    if transform and ("transform" in message.lower() or "profile" in message.lower() or transform in message):
        return "transform"
    return "to"
