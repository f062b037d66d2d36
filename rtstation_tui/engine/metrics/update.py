"""Metrics computed in the calling process, for ``rtstation metrics --update`` and ``index --rebuild``: every plan
bundle whose stored metrics are missing or were computed for another version of the bundle (whether or not a
server announced it ready: the user asked for it now)."""

from __future__ import annotations

import logging
from typing import Any

from ..config.model import Config
from ..events import EventBus
from ..plans.bundle import patient_view
from ..store.files import Store
from ..store.index import Index
from . import tables
from .compute import MetricsJob, compute
from .service import MetricsService

log = logging.getLogger("rtstation.metrics")


class _InProcess(MetricsService):
    def run_job(self, job: MetricsJob) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return compute(job)


def update_all(index: Index, config: Config) -> int:
    """Compute what is missing or outdated; returns how many plans were computed."""
    service = _InProcess(lambda: config, index, Store(config.data_dir), EventBus())
    done = tables.signatures(index.conn)
    n = 0
    for pid in index.patient_ids():
        for bundle in patient_view(index.conn, pid).bundles:
            signature = bundle.signature()
            if done.get(bundle.plan_uid) != signature and service.compute_bundle(bundle, signature) is not None:
                n += 1
    return n
