"""The console's actions (keys and command palette): send, echo, rules, nodes, settings, quit, status timers.

A part of ``StationApp`` (``host.ConsoleBase``) so app.py stays about lifecycle and events; the screens' keys reach
it as messages (``messages.py``). Every blocking call goes through the station's interface
in a thread (``asyncio.to_thread``) inside an async worker; results are applied back on the loop.
"""

from __future__ import annotations

import asyncio
import getpass
from datetime import datetime
from typing import Any

from textual import on

from . import messages as m
from ..engine.api import DeleteRefused, NothingToDelete, Selection, SelectionPreview, SendPreview
from .commands.registry import SCOPE_NAMES, help_rows
from .dialogs.confirm import ConfirmDialog
from .dialogs.delete import DeleteDialog
from .dialogs.quit import LEAVE, STOP, QuitStationDialog
from .dialogs.help import HelpScreen
from .dialogs.send import SendDialog
from .host import ConsoleBase
from .screens.metrics import MetricsScreen
from .screens.remote import RemoteScreen
from .screens.nodes import NodesScreen
from .screens.rules import RulesScreen
from .screens.settings import SettingsScreen, settings_values


class StationActions(ConsoleBase):
    _status_busy = False
    _status_again = False

    # -- sending ------------------------------------------------------------------------------------------------
    def selected_plans(self) -> list[str]:
        """Marked plans, else the plan under the cursor."""
        tree = self.main.tree
        if tree.marked:
            return sorted(tree.marked, key=lambda uid: (tree.plans[uid].label if uid in tree.plans else "", uid))
        data = tree.cursor_data
        return [data.plan_uid] if data is not None and data.kind == "plan" else []

    def send_unavailable(self) -> str:
        """'' when sends and C-ECHO can be made; else the notification saying why."""
        why = self.api.status().send_unavailable
        return f"Sending is not available: {why}." if why else ""

    def action_send(self) -> None:
        if why := self.send_unavailable():
            self.notify(why, title="Send", severity="warning")
            return
        plans = self.selected_plans()
        data = self.main.tree.cursor_data
        if not plans and (data is None or data.kind == "plan"):
            self.notify("Put the cursor on a plan, patient or unconnected objects, or mark plans with Space, then "
                        "press s.", title="Send", severity="warning")
            return
        if not self.config.nodes:
            self.notify("No [[nodes]] are configured.", title="Send", severity="warning")
            return
        if plans:
            self.main.run_worker(self._send(plans), group="send", exit_on_error=False)
        elif data is not None:
            self.main.run_worker(self._send_node(data), group="send", exit_on_error=False)

    async def _choose_nodes(self, previews: list[Any]) -> tuple[list[str], dict[str, str]] | None:
        """The send dialog (node choice, failed-echo marks, transforms); None when cancelled."""
        failed = {name: r.message for name, r in self.last_echo.items() if not r.ok}
        dialog = SendDialog(self.config.nodes, previews, self.config.anonymize.profile_names(), failed,
                            self.config.groups)
        nodes = await self.push_screen_wait(dialog)
        if not nodes:
            return None
        return nodes, {n: t for n, t in dialog.transforms.items() if n in nodes}

    async def _send_node(self, data: Any) -> None:
        """A tree node that is not a plan ([HARDEN2] 19): a patient (everything stored for it), the unconnected
        bin or one unconnected series (exactly the objects its row counts)."""
        selection = await asyncio.to_thread(self._selection_of, data)
        preview = await asyncio.to_thread(self.api.selection_preview, selection) if selection else None
        if preview is None:
            self.notify("Nothing stored under this node (any more).", title="Send", severity="warning")
            return
        if not await self._confirm_filtered(data, preview):
            return
        chosen = await self._choose_nodes([preview])
        if chosen is None:
            return
        nodes, transforms = chosen
        try:
            jobs = await asyncio.to_thread(self.api.send_selection, selection, nodes, transforms)
            if not jobs:
                message = (f"{', '.join(nodes)} already {'has' if len(nodes) == 1 else 'have'} all "
                           f"{preview.instances} objects: delivered before, or queued now. Nothing was queued.\n"
                           "Send what was delivered again anyway?")
                if not await self.push_screen_wait(ConfirmDialog("Send again?", message, "Send again", "Keep")):
                    return
                jobs = await asyncio.to_thread(self.api.send_selection, selection, nodes, transforms, True)
        except Exception as exc:
            self.notify(str(exc), title="Send failed", severity="error")
            return
        self.notify(f"{len(jobs)} job{'s' if len(jobs) != 1 else ''} queued to {', '.join(nodes)}" if jobs else
                    f"Nothing queued: every object is already queued for {', '.join(nodes)}.", title="Send",
                    severity="information" if jobs else "warning")

    def _selection_of(self, data: Any) -> Selection | None:
        """The tree node as a send takes it (in a thread: the bin's objects are read now, as they are)."""
        if data.kind == "patient":
            return Selection("patient", data.patient_id, what=f"patient {data.patient_id}")
        if data.kind == "member":
            return Selection("objects", sop_uids=data.sop_uids,
                             what=f"unconnected {data.modality} series …{data.series_uid[-12:]}")
        if data.kind == "unconnected":
            loose = self.api.unconnected(data.patient_id)
            return Selection("objects", sop_uids=tuple(m.sop_uid for m in loose),
                             what="unconnected objects") if loose else None
        return None

    async def _confirm_filtered(self, data: Any, preview: SelectionPreview) -> bool:
        """A patient the filter shows with only some of its plans: a send of it takes them all; ask first."""
        tree = self.main.tree
        row = tree.patients.get(data.patient_id)
        if data.kind != "patient" or not tree.tree_filter.on or row is None:
            return True
        shown = sum(1 for p in tree.plans.values() if p.patient_id == data.patient_id)
        if shown >= row.plans:
            return True
        message = (f"The filter shows {shown} of the {row.plans} plans of patient {data.patient_id}. Sending the "
                   f"patient sends everything stored for it: {preview.instances} objects, every plan included.\n"
                   "Send all of it?")
        return bool(await self.push_screen_wait(ConfirmDialog("Send the whole patient?", message, "Send all of it",
                                                              "Keep")))

    async def _send(self, plans: list[str]) -> None:
        previews = await asyncio.to_thread(self.api.send_preview, plans)
        previews = await self._confirm_hidden(previews)
        if not previews:
            return
        chosen = await self._choose_nodes(previews)
        if chosen is None:
            return
        nodes, transforms = chosen
        jobs = await self._queue([p.plan_uid for p in previews], nodes, transforms)
        if jobs is None:
            return
        if not jobs:  # the queue skips what a node already acknowledged: nothing is sent twice by accident
            what = "; ".join(f"{p.label or '(no label)'} ({p.instances} objects)" for p in previews)
            message = (f"{', '.join(nodes)} already {'has' if len(nodes) == 1 else 'have'} every object of {what}: "
                       "delivered before, or queued now. Nothing was queued.\nSend what was delivered again anyway?")
            if not await self.push_screen_wait(ConfirmDialog("Send again?", message, "Send again", "Keep")):
                return
            jobs = await self._queue([p.plan_uid for p in previews], nodes, transforms, force=True)
            if jobs is None:
                return
        if jobs:
            self.notify(f"{len(jobs)} job{'s' if len(jobs) != 1 else ''} queued to {', '.join(nodes)}", title="Send")
        else:
            self.notify(f"Nothing queued: every object is already queued for {', '.join(nodes)}.", title="Send",
                        severity="warning", timeout=15)
        tree = self.main.tree
        for uid in list(tree.marked):
            tree.marked.discard(uid)
            tree._relabel(uid)

    async def _queue(self, plans: list[str], nodes: list[str], transforms: dict[str, str],
                     force: bool = False) -> list[int] | None:
        """The send itself, in a thread; None (after saying why) when it failed."""
        try:
            return await asyncio.to_thread(self.api.send, plans, nodes, transforms, force)
        except Exception as exc:
            self.notify(str(exc), title="Send failed", severity="error")
            return None

    async def _confirm_hidden(self, previews: list[SendPreview]) -> list[SendPreview]:
        """Marked plans the filter now hides are named, and sent only if the operator says so (Esc: left out)."""
        shown = self.main.tree.plans
        hidden = [p for p in previews if p.plan_uid not in shown]
        if not hidden:
            return previews
        names = "\n".join(f"  {p.label or '(no label)'}  {p.patient_id} {p.patient_name.replace('^', ' ').strip()}"
                          for p in hidden)
        n = len(hidden)
        message = (f"{n} marked plan{'s are' if n != 1 else ' is'} not shown by the filter:\n{names}\n"
                   f"Send {'them' if n != 1 else 'it'} too?")
        if await self.push_screen_wait(ConfirmDialog("Send hidden plans?", message, "Send them too",
                                                     "Leave them out")):
            return previews
        rest = [p for p in previews if p.plan_uid in shown]
        if not rest:
            self.notify("Nothing sent: every marked plan is hidden by the filter.", title="Send", severity="warning")
        return rest

    def action_echo(self) -> None:
        if why := self.send_unavailable():
            self.notify(why, title="C-ECHO", severity="warning")
            return
        nodes = [n.name for n in self.config.nodes if n.enabled]
        if not nodes:
            self.notify("No enabled [[nodes]] to echo.", title="C-ECHO", severity="warning")
            return
        self.notify(f"C-ECHO {', '.join(nodes)}…", title="C-ECHO")
        for name in nodes:
            self.main.run_worker(self._echo(name), group="echo", exit_on_error=False)

    async def _echo(self, node: str) -> None:
        r = await asyncio.to_thread(self.api.echo, node)
        self.remember_echo(r)
        rtt = f" in {r.rtt_ms:.0f} ms" if r.rtt_ms is not None else ""
        if r.ok:
            self.notify(f"{node}: OK{rtt}", title="C-ECHO")
        else:
            self.notify(f"{node}: FAILED {r.message}", title="C-ECHO", severity="error", timeout=15)

    def action_retry_failed(self) -> None:
        self._job_action("retry")

    def action_cancel_active(self) -> None:
        self._job_action("cancel")

    def _job_action(self, what: str) -> None:
        if why := self.send_unavailable():
            self.notify(why, severity="warning")
            return
        plans = self.selected_plans()
        if not plans:
            self.notify("Put the cursor on a plan (or mark plans) first.", severity="warning")
            return
        self.main.run_worker(self._jobs(what, plans), group="jobs", exit_on_error=False)

    async def _jobs(self, what: str, plans: list[str]) -> None:
        if what == "cancel":
            message = f"Cancel the queued and running sends of {len(plans)} plan(s)? Delivered objects stay delivered."
            if not await self.push_screen_wait(ConfirmDialog("Cancel sends?", message, "Cancel sends", "Keep")):
                return
            ids = await asyncio.to_thread(self.api.cancel_active, plans)
        else:
            ids = await asyncio.to_thread(self.api.retry_failed, plans)
        verb = "cancelled" if what == "cancel" else "queued again"
        self.notify(f"{len(ids)} job{'s' if len(ids) != 1 else ''} {verb}", title="Send jobs",
                    severity="information" if ids else "warning")

    # -- deleting from the store ----------------------------------------------------------------------------------
    def action_delete_from_store(self) -> None:
        """The node under the cursor only (never the marks): what is deleted is what the operator looks at."""
        data = self.main.tree.cursor_data
        if data is None or data.kind not in ("patient", "plan"):
            self.notify("Put the cursor on a patient or a plan, then press D.", title="Delete", severity="warning")
            return
        plans = [data.plan_uid] if data.kind == "plan" and data.plan_uid else []
        self.main.run_worker(self._delete(data.patient_id, plans), group="delete", exit_on_error=False)

    async def _delete(self, patient_id: str, plans: list[str]) -> None:
        try:
            preview = await asyncio.to_thread(self.api.delete_preview, patient_id, plans)
        except NothingToDelete as exc:
            self.notify(str(exc), title="Delete", severity="warning")
            return
        if preview.blocked_by:
            self.notify(f"{preview.subject()} is not deleted: active jobs still send its objects: "
                        f"{'; '.join(preview.blocked_by)}. Cancel them or let them finish first.",
                        title="Delete refused", severity="error", timeout=15)
            return
        if not await self.push_screen_wait(DeleteDialog(preview)):
            return
        try:
            done = await asyncio.to_thread(self.api.delete, patient_id, plans, f"console:{getpass.getuser()}")
        except (DeleteRefused, NothingToDelete) as exc:  # a job queued (or a delete elsewhere) since the question
            self.notify(str(exc), title="Delete refused", severity="error", timeout=15)
            return
        self.notify(f"Deleted {done.describe()}", title="Delete")

    # -- screens ------------------------------------------------------------------------------------------------
    def action_rules(self) -> None:
        self.push_screen(RulesScreen(self.config, self.api))

    def action_nodes(self) -> None:
        self.push_screen(NodesScreen(self.config, self.api, self.last_echo))

    def action_metrics(self) -> None:
        self.push_screen(MetricsScreen(self.api))

    def action_remote(self) -> None:
        """One Remote screen per console, kept while closed: back on it, the operator finds the last query, the
        marks and the progress of a retrieve still running."""
        if not self.is_screen_installed("remote"):
            self.install_screen(RemoteScreen(self.api), name="remote")
        self.push_screen("remote")

    def action_settings(self) -> None:
        self.run_worker(self._open_settings(), group="settings", exclusive=True, exit_on_error=False)

    async def _open_settings(self) -> None:
        """The form starts from the file's text, read in a thread (see screens/settings.py for why)."""
        try:
            values = await asyncio.to_thread(settings_values, self.config.path, self.config)
        except Exception as exc:  # unreadable or broken file: say so, keep the console
            self.notify(f"cannot read {self.config.path}: {exc}", title="Settings", severity="error")
            return
        await self.push_screen(SettingsScreen(values, self.config.path, self.config.ui.themes_dir))

    def action_help(self) -> None:
        """? / F1: the keys of the screen on top (not a help of the help)."""
        screen = self.screen
        if not isinstance(screen, HelpScreen):
            rows = help_rows(screen)
            self.push_screen(HelpScreen(SCOPE_NAMES.get(rows[0][0], "") if rows else "", rows))

    # -- what screens ask for (messages from the command registry's keys) -----------------------------------------
    @on(m.AppCommand)
    async def _app_command(self, message: m.AppCommand) -> None:
        """SendPlans, OpenNodes, QuitRequested, …: each names the action it asks for."""
        await self.run_action(message.ACTION)

    # -- quit -----------------------------------------------------------------------------------------------------
    def busy_reason(self) -> str:
        parts = []
        if self.arriving:
            parts.append(f"objects are arriving ({self.arriving} association{'s' if self.arriving != 1 else ''})")
        # jobs this console saw, or the queue's own count (another process may have queued some)
        waiting = max(self.main.progress.counts()[0], (self.main.status.jobs or (0, 0))[0])
        if waiting:
            parts.append(f"{waiting} send job{'s' if waiting != 1 else ''} running or queued")
        return " and ".join(parts)

    async def action_quit(self) -> None:
        busy = self.busy_reason()
        if not self.attached:  # the console runs the station: stop it, or leave it running headless?
            self.run_worker(self._ask_leave(busy), group="quit", exclusive=True)
        elif busy:
            self.run_worker(self._ask_quit(busy), group="quit", exclusive=True)
        else:
            await self.stop_and_exit()

    async def _ask_quit(self, busy: str) -> None:
        message = (f"{busy[0].upper()}{busy[1:]}.\nQuitting refuses new associations and waits for in-flight stores; "
                   "the send queue is kept and resumes at the next start.")
        if await self.push_screen_wait(ConfirmDialog("Quit rtstation?", message, "Quit", "Stay")):
            await self.stop_and_exit()

    async def _ask_leave(self, busy: str) -> None:
        """Leaving it running is the default when work goes on without anyone watching (rules, a watched folder)."""
        unattended = bool(self.config.rules) or self.config.import_.folder is not None
        choice = await self.push_screen_wait(QuitStationDialog(busy, leave_by_default=unattended))
        if choice == LEAVE:
            self.leave_running()
        elif choice == STOP:
            await self.stop_and_exit()

    # -- status line ----------------------------------------------------------------------------------------------
    def _tick(self) -> None:
        status = self.main.status
        status.rate = self.rate.rate()
        status.arriving = self.arriving
        status.refresh_text()

    def refresh_status(self) -> None:
        """Free disk and the queue's job counts (every 5 s and after job changes), read in a thread."""
        # Coalesced, not exclusive: cancelling a running read on every job event could starve the status line.
        # A screen worker: it goes with the screen at exit instead of querying a screen being taken down.
        if self._status_busy:
            self._status_again = True
            return
        self._status_busy = True
        self.main.run_worker(self._status_loop(), group="status", exit_on_error=False)

    async def _status_loop(self) -> None:
        try:
            self._status_again = True
            while self._status_again:
                self._status_again = False
                await self._status()
        finally:
            self._status_busy = False

    async def _status(self) -> None:
        midnight = datetime.now().replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        free: Any = await asyncio.to_thread(self.api.free_disk_mb)
        jobs = await asyncio.to_thread(self.api.job_counts)
        # the index is the truth for "today"; events add to it in between, this re-count corrects any drift
        today = await asyncio.to_thread(self.api.received_since, midnight)
        _, stored = await asyncio.to_thread(self.api.store_usage)
        status = self.main.status
        status.store_bytes = stored
        status.free_mb, status.min_free_mb, status.jobs, status.today = (free, self.config.receiver.min_free_mb, jobs,
                                                                          today)
        status.refresh_text()
