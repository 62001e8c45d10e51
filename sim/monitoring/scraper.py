"""A simulated Prometheus scraper: samples a run's registry every ``scrape_interval`` of simulated time.

Prometheus pulls: every ``scrape_interval`` (its configuration default is 1m; the sample
``prometheus.yml`` it ships sets 15s) it reads the target's ``/metrics`` and stores one sample
per series with the scrape's timestamp. Whatever happens between two scrapes is seen only
through what it leaves in the values: a counter keeps the count of a burst, but a gauge that
rose and fell back in between is never seen at its peak. Several scrapers with different
intervals can watch the same run, each with its own series.

Simplifications: a scrape is instantaneous and never fails or times out; the first scrape is at
``offset`` (Prometheus spreads targets over the interval with a per-target offset).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import simpy

from sim.core.metrics import Metrics

if TYPE_CHECKING:
    import pandas as pd


class Scraper:
    """Scrapes ``metrics`` every ``interval`` seconds from ``offset`` (keeping only ``names``, the
    metric family names, when given) until ``until``; ``frame()`` is the tidy series."""

    def __init__(self, metrics: Metrics, interval: float, *, offset: float = 0.0, until: float | None = None,
                 names: Iterable[str] | None = None) -> None:
        if not interval > 0:
            raise ValueError(f"scrape_interval must be > 0 s, got {interval!r}")
        if not offset >= 0:
            raise ValueError(f"scrape offset must be >= 0 s, got {offset!r}")
        self.metrics = metrics
        self.interval = float(interval)
        """Seconds between scrapes (Prometheus' ``scrape_interval``)."""
        self.offset = float(offset)
        self.names = None if names is None else frozenset(names)
        """The metric families kept (``None``: all)."""
        self.until = until
        self.samples: list[tuple] = []
        """``(time_s, sample name, kind, labels dict, value)``, one per series per scrape."""
        self.scrape_times: list[float] = []
        env = metrics.env
        self.process: simpy.Process = env.process(self._run(env))

    def _run(self, env: simpy.Environment):
        start = env.now + self.offset
        k = 0
        # times computed as start + k * interval, not accumulated, so no scrape is lost to rounding
        while self.until is None or start + k * self.interval <= self.until + 1e-9 * self.interval:
            yield env.timeout(max(0.0, start + k * self.interval - env.now))
            self.scrape()
            k += 1

    def scrape(self) -> None:
        """One scrape now."""
        now = self.metrics.env.now
        self.scrape_times.append(now)
        self.samples.extend((now, n, k, lab, v) for n, k, lab, v in self.metrics._rows(self.names))

    def frame(self) -> "pd.DataFrame":
        """Every sample: columns ``time_s, name, kind, <label columns>, value``."""
        import pandas as pd

        frame = pd.DataFrame([{"time_s": t, "name": n, "kind": k, **lab, "value": v}
                              for t, n, k, lab, v in self.samples])
        if len(frame):
            frame = frame[[c for c in frame.columns if c != "value"] + ["value"]]
        else:
            frame = pd.DataFrame(columns=["time_s", "name", "kind", "value"])
        return frame
