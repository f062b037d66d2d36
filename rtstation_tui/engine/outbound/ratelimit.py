"""Per-node rate limits (``max_instances_per_s``, ``max_mb_per_s`` on a ``[[nodes]]`` entry) for peers that choke.

Why a token bucket per node, shared by the node's associations: the limit is what the *peer* can take, so two
parallel associations to it share one budget. The send loop calls ``Pacing.wait(node, nbytes, stop)`` before each
C-STORE; it returns at once while the node is within its rates, else sleeps until it is (or until ``stop`` is set).

The bucket holds at most one instance's worth of instances (so 20/s means one every 50 ms, not bursts of 20) and a
tenth of a second's worth of bytes. An instance bigger than that still goes out whole once the bucket is full; the
bucket then runs into debt, and the next instance waits until the debt is paid: the average rate holds, but one
large RTDOSE is sent at the link's speed (the limit paces instances; it does not cut PDUs).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..config.nodes import NodeConfig

BYTES_BURST_S = 0.1  # the bytes bucket's capacity, in seconds of the rate
SLICE_S = 0.25  # longest single sleep: a stop (or a cancel the caller checks) is seen within this


@dataclass(frozen=True)
class Rates:
    instances_per_s: float = 0.0  # 0: no limit
    bytes_per_s: float = 0.0

    @classmethod
    def of(cls, node: NodeConfig) -> Rates:
        return cls(node.max_instances_per_s, node.max_mb_per_s * 1e6)

    @property
    def limited(self) -> bool:
        return self.instances_per_s > 0 or self.bytes_per_s > 0


class TokenBucket:
    """One rate: ``rate`` tokens per second, at most ``capacity`` stored. Not thread-safe (``Pacing`` locks)."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.capacity, self.clock = rate, capacity, clock
        self.level, self.last = capacity, clock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.last) * self.rate)
        self.last = now

    def delay(self, cost: float) -> float:
        """Seconds until ``cost`` may be taken (0: now). A cost above the capacity needs a full bucket."""
        self._refill()
        need = min(cost, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, cost: float) -> None:
        self._refill()
        self.level -= cost


class NodeLimit:
    """The buckets of one node's rates."""

    def __init__(self, rates: Rates, clock: Callable[[], float] = time.monotonic) -> None:
        self.rates = rates
        self.buckets: list[tuple[TokenBucket, bool]] = []  # (bucket, counts bytes)
        if rates.instances_per_s > 0:
            self.buckets.append((TokenBucket(rates.instances_per_s, 1.0, clock), False))
        if rates.bytes_per_s > 0:
            self.buckets.append((TokenBucket(rates.bytes_per_s, rates.bytes_per_s * BYTES_BURST_S, clock), True))

    def delay(self, nbytes: int) -> float:
        return max((b.delay(nbytes if by_size else 1.0) for b, by_size in self.buckets), default=0.0)

    def take(self, nbytes: int) -> None:
        for bucket, by_size in self.buckets:
            bucket.take(nbytes if by_size else 1.0)


class Pacing:
    """Every node's limit, made on first use and remade when the node's rates change (a config reload)."""

    def __init__(self) -> None:
        self._limits: dict[str, NodeLimit] = {}
        self._lock = threading.Lock()

    def limit_for(self, node: NodeConfig) -> NodeLimit | None:
        rates = Rates.of(node)
        if not rates.limited:
            return None
        with self._lock:
            limit = self._limits.get(node.name)
            if limit is None or limit.rates != rates:
                limit = self._limits[node.name] = NodeLimit(rates)
            return limit

    def wait(self, node: NodeConfig, nbytes: int, stop: threading.Event,
             give_up: Callable[[], bool] = lambda: False) -> bool:
        """Block until ``node`` may get an instance of ``nbytes``, then count it. False: ``stop`` was set or
        ``give_up()`` (a cancel, a manual send waiting) said so first; nothing counted. Sleeps at most ``SLICE_S``
        at a time, so a long wait (paying off one large file) still notices both."""
        if not (node.max_instances_per_s or node.max_mb_per_s):  # the common case: no lock, nothing made
            return not stop.is_set()
        limit = self.limit_for(node)
        if limit is None:
            return not stop.is_set()
        while True:
            with self._lock:
                delay = limit.delay(nbytes)
                if delay <= 0:
                    limit.take(nbytes)
                    return True
            if stop.wait(min(delay, SLICE_S)) or (delay > SLICE_S and give_up()):
                return False
