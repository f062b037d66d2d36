"""``StationAPI``: exactly what the console asks of a station, as a typed interface.

Why a Protocol and not the Station class: the console must work the same whether the station runs in its own
process (today: ``Station`` implements this) or in a service it attaches to over a socket ([ATTACH]: HTTP/JSON,
each method one resource). So every argument and result is plain frozen data (strings, numbers, tuples, frozen
dataclasses of them, the frozen ``Config``) — never a live engine object (Index, Bundle, sqlite rows, the sender).
Test doubles implement it too, and mypy checks that they do (tests/unit/test_typing.py).

Blocking: the query and command methods may touch SQLite, disk or the network; the console calls them from
thread workers. ``restart_receiver`` is a coroutine (it waits for in-flight stores); ``subscribe`` is called on the
event loop and delivers event batches there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Protocol, Sequence

from .config.model import Config
from .config.rules import RuleConfig
from .config.reload import ReloadError
from .events import Subscriber
from .intake.receiver import ReceiverError
from .metrics.views import DvhCurve, PlanMetrics
from .outbound.deletion import DeletePreview, DeleteRefused, NothingToDelete, human_bytes
from .plans.queries import JobInfo, LooseObject, PatientRow, PlanDetails, PlanRow, PlanVerdicts, SendPreview
from .plans.selection import Selection, SelectionPreview
from .qr.pull import RemotePlan, RemoteUnavailable
from .store.lock import StationLocked

# The errors a caller handles travel with the interface (over a socket they become HTTP statuses): ReceiverError
# (the listener cannot bind: 503), ReloadError (a configuration that cannot be applied: 409), StationLocked (another
# process owns the data_dir, at start).
__all__ = ["DeletePreview", "DeleteRefused", "NothingToDelete", "human_bytes", "DvhCurve", "PlanMetrics", "EchoOutcome",
           "StationAPI", "StationStatus", "JobInfo", "LooseObject", "PatientRow", "PlanDetails", "PlanRow",
           "PlanVerdicts", "Selection", "SelectionPreview", "SendPreview", "ReceiverError", "ReloadError", "StationLocked", "RemotePlan",
           "RemoteUnavailable"]


@dataclass(frozen=True)
class EchoOutcome:
    node: str
    ok: bool
    rtt_ms: float | None
    message: str


@dataclass(frozen=True)
class StationStatus:
    """The station as the header shows it; later changes arrive as events (ReceiverState, ImportFolderState)."""

    ae_title: str
    address: str  # where the receiver listens ("" when it does not)
    receives: bool  # the station runs a receiver at all (the console's --no-listen: False)
    receiver_state: str  # stopped, starting, listening, error
    receiver_detail: str
    import_state: str  # off, watching, error
    import_folder: str
    import_detail: str
    send_unavailable: str = ""  # why sends and C-ECHO cannot be made now; "" when they can


class StationAPI(Protocol):
    @property
    def config(self) -> Config:
        """The configuration in force (after the last reload)."""
        ...

    def status(self) -> StationStatus: ...

    # -- the tree and the details -----------------------------------------------------------------------------
    def patients(self, text: str = "", only: Sequence[str] | None = None) -> list[PatientRow]:
        """Patients (within ``only`` if given) whose ID, name or a plan label contains ``text`` literally."""
        ...

    def label_matches(self, text: str, limit: int = 20) -> list[str]:
        """Patient IDs with a plan label containing ``text`` (the filter opens them)."""
        ...

    def plans_of(self, patient_id: str) -> list[PlanRow]: ...

    def unconnected(self, patient_id: str) -> list[LooseObject]: ...

    def plan_details(self, plan_uid: str) -> PlanDetails | None: ...

    # -- plan metrics ([METRICS]) ------------------------------------------------------------------------------
    def plan_metrics(self, where: Sequence[str] = (), sort: str = "-received", limit: int = 1000) -> list[PlanMetrics]:
        """Plans with metrics matching ``where`` (``label~ADP``, ``max_dose>60Gy``…; a bad filter raises
        ``QueryError``, a ValueError naming it), sorted by ``sort`` (``-max_dose,label``)."""
        ...

    def dvh_curves(self, plan_uid: str) -> list[DvhCurve]:
        """The plan's stored DVHs, one per ROI, resampled for plotting (empty before its metrics are computed)."""
        ...

    # -- status line ----------------------------------------------------------------------------------------
    def received_since(self, since: float) -> int: ...

    def free_disk_mb(self) -> float: ...

    def job_counts(self) -> tuple[int, int]:
        """(jobs waiting or running, jobs failed) in the persistent queue."""
        ...

    # -- sending --------------------------------------------------------------------------------------------
    def send_preview(self, plan_uids: Sequence[str]) -> list[SendPreview]: ...

    def send(self, plan_uids: Sequence[str], nodes: Sequence[str],
             transforms: Mapping[str, str] | None = None, force: bool = False) -> list[int]:
        """Queue each plan for each node (by hand); returns the job ids (none for what a node already has).
        ``transforms``: node -> transform (``anonymize:PROFILE``) for the nodes that get transformed copies; the
        store keeps the originals. ``force``: also what a node acknowledged before (the operator confirmed a
        resend); what is queued now is still not queued twice."""
        ...

    def selection_preview(self, selection: Selection) -> SelectionPreview | None:
        """What a send of a tree node that is not a plan (a patient, study, series, unconnected objects) carries;
        None when nothing of it is stored."""
        ...

    def send_selection(self, selection: Selection, nodes: Sequence[str],
                       transforms: Mapping[str, str] | None = None, force: bool = False) -> list[int]:
        """Queue everything of ``selection`` for each node (by hand), as ``send`` does for plans: job ids, none
        for a node that already has it all (ValueError when nothing of it is stored)."""
        ...

    def echo(self, node: str) -> EchoOutcome: ...

    def jobs(self, active_only: bool = True) -> list[JobInfo]: ...

    def retry_failed(self, plan_uids: Sequence[str]) -> list[int]:
        """Queue the failed jobs of these plans again; returns their ids."""
        ...

    def cancel_active(self, plan_uids: Sequence[str]) -> list[int]:
        """Cancel the queued, running and waiting jobs of these plans; returns their ids."""
        ...

    # -- the store: its size, and deleting from it -------------------------------------------------------------
    def store_usage(self, patient_id: str | None = None) -> tuple[int, int]:
        """(instances, bytes) stored, of one patient or in all (sizes recorded when each file was placed)."""
        ...

    def delete_preview(self, patient_id: str, plan_uids: Sequence[str] = ()) -> DeletePreview:
        """What deleting the patient (no ``plan_uids``) or these plans of it would remove, and the active jobs
        that would refuse it (``blocked_by``). Changes nothing. NothingToDelete for an unknown patient or plan."""
        ...

    def delete(self, patient_id: str, plan_uids: Sequence[str] = (), who: str = "operator") -> DeletePreview:
        """Remove it from the store (files, then index; audited as ``who``). DeleteRefused while active jobs hold
        its objects; objects another plan still references stay."""
        ...

    # -- query/retrieve ([QR]: the Remote screen) --------------------------------------------------------------
    def remote_plans(self, node: str, patient_id: str) -> list[RemotePlan]:
        """The plans of ``patient_id`` on ``node`` (a ``[[nodes]]`` name), by C-FIND only: blocking, network.
        ``RemoteUnavailable`` says why not (unknown node, refused, unreachable)."""
        ...

    def retrieve(self, node: str, patient_id: str, plan_uids: Sequence[str]) -> int:
        """Start pulling the chains of ``plan_uids`` (the whole patient if empty) from ``node`` inside the station;
        returns the retrieve id its ``RetrieveProgress``/``RetrieveFinished`` events carry (``RemoteUnavailable``:
        unknown node, or that patient is being retrieved from that node already)."""
        ...

    # -- rules and configuration ------------------------------------------------------------------------------
    def dry_run(self, rules: tuple[RuleConfig, ...], limit: int = 50) -> list[PlanVerdicts]: ...

    def reload(self, config: Config) -> list[str]:
        """Apply a new configuration without dropping associations; returns the changed keys (ReloadError)."""
        ...

    async def restart_receiver(self, config: Config, timeout: float = 30.0) -> list[str]:
        """Apply ``config`` including the listener's address, port and AE title (ReceiverError if unbindable)."""
        ...

    # -- events ---------------------------------------------------------------------------------------------------
    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Deliver event batches to ``fn`` on the event loop; returns the unsubscribe function."""
        ...
