"""Who received what, how many times, and how long the first copy took: one delivery ledger for
every scenario that checks delivery guarantees (lost, duplicated, late).

The ledger is a per-entity record (``count[key]``, one entry per message and receiver, which a
counter cannot hold: "was this one delivered?") feeding series of the run's metrics registry,
labelled ``ledger=<name>``:

* ``deliveries_total``: every copy that arrived;
* ``deliveries_first_total``: first copies (distinct keys);
* ``delivery_latency_seconds``: from sending to the first copy (a histogram that keeps every value).

A scenario's summary reads its counts from those series, so a scrape (or ``python -m sim live``)
shows what the summary reports.
"""

from __future__ import annotations

from typing import Hashable

from sim.core.metrics import DEFAULT_BUCKETS, Count, Metrics


class DeliveryLedger:
    """Deliveries of messages to receivers; ``key`` is any hashable (e.g. ``(receiver, message id)``)."""

    __slots__ = ("env", "name", "count", "last_at", "_all", "_first", "_latency")

    def __init__(self, metrics: Metrics, name: str = "deliveries",
                 buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        self.env = metrics.env
        self.name = name
        self.count: dict[Hashable, int] = {}
        """Copies delivered per key, in the order of first deliveries."""
        self.last_at = 0.0
        """When the last copy arrived (0 before the first)."""
        key = f"delivery_ledger:{name}"
        if key in metrics.probes:
            raise ValueError(f"the registry already has a delivery ledger called {name!r}")
        metrics.probes[key] = self
        by, labels = ("ledger",), {"ledger": name}
        self._all = metrics.counter("deliveries_total", "Copies of messages delivered", by).labels(**labels)
        self._first = metrics.counter("deliveries_first_total", "Messages delivered at least once (first copies)",
                                      by).labels(**labels)
        self._latency = metrics.histogram("delivery_latency_seconds", "From sending to the first copy delivered",
                                          by, buckets=buckets).labels(**labels)

    def deliver(self, key: Hashable, sent_at: float) -> bool:
        """A copy of ``key`` arrives now; True if it is the first one."""
        now = self.env.now
        count = self.count
        n = count.get(key, 0)
        count[key] = n + 1
        self._all.inc()
        self.last_at = now
        if n:
            return False
        self._first.inc()
        self._latency.observe(now - sent_at)
        return True

    delivered = Count("_all", "Copies delivered, duplicates included.")
    unique = Count("_first", "Keys delivered at least once.")
    @property
    def duplicates(self) -> int:
        """Copies beyond the first."""
        return self.delivered - self.unique

    @property
    def latencies(self) -> list[float]:
        """Sending to first copy, in seconds, in the order of first deliveries."""
        return self._latency.observations  # type: ignore[return-value]


__all__ = ["DeliveryLedger"]
