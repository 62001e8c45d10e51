"""Counters, gauges and histograms recorded in simulated time, exported as tidy DataFrames.

Names follow Prometheus conventions: counters end in ``_total``, values are in base units
(``_seconds``, ``_bytes``). A metric family has fixed label names; ``family.labels(k=v)``
returns the child that holds one series. ``Metrics.scrape()`` snapshots every series at the
current simulated time, the way a Prometheus server scrapes an exporter.
"""

from __future__ import annotations

import bisect
import math
import re
from typing import Iterable

import pandas as pd
import simpy

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

#: Prometheus client libraries' default histogram buckets, in seconds.
DEFAULT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


class CounterChild:
    """One counter series: a value that only goes up."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError(f"a counter only increases; got inc({amount})")
        self.value += amount

    def reset(self) -> None:
        """Back to zero, as after a process restart (Prometheus' ``rate()`` copes with it)."""
        self.value = 0.0


class GaugeChild:
    """One gauge series: a value that goes up and down, with its time-weighted average."""

    __slots__ = ("value", "_env", "_since", "_start", "_area", "history")

    def __init__(self, env: simpy.Environment, track: bool) -> None:
        self.value = 0.0
        self._env = env
        self._start = self._since = env.now
        self._area = 0.0
        self.history: list[tuple[float, float]] | None = [] if track else None
        """``(time, value)`` after every change, when the family was created with ``track=True``."""

    def set(self, value: float) -> None:
        now = self._env.now
        self._area += self.value * (now - self._since)
        self._since = now
        self.value = value
        if self.history is not None:
            self.history.append((now, value))

    def inc(self, amount: float = 1.0) -> None:
        self.set(self.value + amount)

    def dec(self, amount: float = 1.0) -> None:
        self.set(self.value - amount)

    def reset_average(self) -> None:
        """Start the time average afresh from now (e.g. at the end of a warm-up)."""
        self._area = 0.0
        self._start = self._since = self._env.now

    def time_average(self, until: float | None = None) -> float:
        """Mean value over time, from creation (or the last reset) to ``until`` (default: now)."""
        end = self._env.now if until is None else until
        span = end - self._start
        if span <= 0:
            return self.value
        return (self._area + self.value * (end - self._since)) / span


class HistogramChild:
    """One histogram series: cumulative buckets, sum and count, plus the raw observations."""

    __slots__ = ("buckets", "counts", "sum", "count", "observations")

    def __init__(self, buckets: tuple[float, ...], keep: bool) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0
        self.observations: list[float] | None = [] if keep else None
        """Every observed value, when the family keeps them (for exact quantiles)."""

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1
        if self.observations is not None:
            self.observations.append(value)

    def reset(self) -> None:
        """Forget every observation."""
        self.counts = [0] * (len(self.buckets) + 1)
        self.sum = 0.0
        self.count = 0
        if self.observations is not None:
            self.observations = []

    def cumulative(self) -> list[tuple[float, int]]:
        """``(le, count of observations <= le)`` including ``le = inf``, as Prometheus exposes."""
        out, running = [], 0
        for le, n in zip((*self.buckets, math.inf), self.counts):
            running += n
            out.append((le, running))
        return out


class MetricFamily:
    """A named metric with fixed label names; children hold the series."""

    kind = ""

    def __init__(self, metrics: "Metrics", name: str, documentation: str, labelnames: Iterable[str]) -> None:
        if not _NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        self.labelnames = tuple(labelnames)
        for label in self.labelnames:
            if not _LABEL.match(label) or label.startswith("__"):
                raise ValueError(f"invalid label name {label!r} for {name}")
        self.name = name
        self.documentation = documentation
        self._metrics = metrics
        self._children: dict[tuple[str, ...], object] = {}

    def _init_unlabelled(self) -> None:
        # An unlabelled metric exists from its creation, as in prometheus_client: it shows in
        # exports at 0 before first use, and a gauge's time average starts at creation.
        if not self.labelnames:
            self.labels()

    def _new_child(self) -> object:
        raise NotImplementedError

    def labels(self, *values: object, **kv: object):
        """The child for these label values (created on first use)."""
        if kv:
            if values or set(kv) != set(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {sorted(kv)}")
            values = tuple(kv[n] for n in self.labelnames)
        elif len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._new_child()
        return child

    def children(self) -> dict[tuple[str, ...], object]:
        return dict(self._children)

    # an unlabelled family is used directly: family.inc(), family.observe(v) ...
    def _only(self):
        if self.labelnames:
            raise ValueError(f"{self.name} has labels {self.labelnames}: call .labels(...) first")
        return self.labels()


class Counter(MetricFamily):
    kind = "counter"

    def __init__(self, metrics, name, documentation, labelnames=()) -> None:
        if not name.endswith("_total"):
            raise ValueError(f"counter names end in _total (Prometheus convention), got {name!r}")
        super().__init__(metrics, name, documentation, labelnames)
        self._init_unlabelled()

    def _new_child(self) -> CounterChild:
        return CounterChild()

    def inc(self, amount: float = 1.0) -> None:
        self._only().inc(amount)

    @property
    def value(self) -> float:
        return self._only().value


class Gauge(MetricFamily):
    kind = "gauge"

    def __init__(self, metrics, name, documentation, labelnames=(), track: bool = False) -> None:
        super().__init__(metrics, name, documentation, labelnames)
        self.track = track
        self._init_unlabelled()

    def _new_child(self) -> GaugeChild:
        return GaugeChild(self._metrics.env, self.track)

    def set(self, value: float) -> None:
        self._only().set(value)

    def inc(self, amount: float = 1.0) -> None:
        self._only().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self._only().dec(amount)

    @property
    def value(self) -> float:
        return self._only().value


class Histogram(MetricFamily):
    kind = "histogram"

    def __init__(self, metrics, name, documentation, labelnames=(), buckets=DEFAULT_BUCKETS, keep: bool = True):
        super().__init__(metrics, name, documentation, labelnames)
        if "le" in self.labelnames:
            raise ValueError(f"'le' is reserved for histogram buckets; {name} cannot use it as a label")
        if list(buckets) != sorted(set(buckets)):
            raise ValueError(f"buckets of {name} must be strictly increasing")
        self.buckets = tuple(float(b) for b in buckets if b != math.inf)
        self.keep = keep
        self._init_unlabelled()

    def _new_child(self) -> HistogramChild:
        return HistogramChild(self.buckets, self.keep)

    def observe(self, value: float) -> None:
        self._only().observe(value)


class Metrics:
    """The registry of one run's metric families."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self._families: dict[str, MetricFamily] = {}
        self._scrapes: list[tuple] = []

    def _register(self, family: MetricFamily) -> MetricFamily:
        existing = self._families.get(family.name)
        if existing is not None:
            if type(existing) is not type(family) or existing.labelnames != family.labelnames:
                raise ValueError(f"metric {family.name!r} already registered with another kind or labels")
            return existing
        self._families[family.name] = family
        return family

    def counter(self, name: str, documentation: str = "", labelnames: Iterable[str] = ()) -> Counter:
        return self._register(Counter(self, name, documentation, labelnames))  # type: ignore[return-value]

    def gauge(self, name: str, documentation: str = "", labelnames: Iterable[str] = (), track: bool = False) -> Gauge:
        return self._register(Gauge(self, name, documentation, labelnames, track))  # type: ignore[return-value]

    def histogram(self, name, documentation="", labelnames=(), buckets=DEFAULT_BUCKETS, keep=True) -> Histogram:
        return self._register(Histogram(self, name, documentation, labelnames, buckets, keep))  # type: ignore

    def __getitem__(self, name: str) -> MetricFamily:
        return self._families[name]

    def __contains__(self, name: str) -> bool:
        return name in self._families

    def names(self) -> list[str]:
        return sorted(self._families)

    # --- export -------------------------------------------------------------------------
    def _rows(self):
        """``(name, kind, labels dict, sample suffix, value)`` for every series, Prometheus style."""
        for name in sorted(self._families):
            family = self._families[name]
            for key, child in sorted(family._children.items()):
                labels = dict(zip(family.labelnames, key))
                if isinstance(child, HistogramChild):
                    for le, n in child.cumulative():
                        yield name + "_bucket", family.kind, {**labels, "le": _fmt_le(le)}, float(n)
                    yield name + "_sum", family.kind, labels, child.sum
                    yield name + "_count", family.kind, labels, float(child.count)
                else:
                    yield name, family.kind, labels, float(child.value)  # type: ignore[attr-defined]

    def to_frame(self) -> pd.DataFrame:
        """Current value of every series: columns ``name, kind, <label columns>, value``."""
        return _tidy([{"name": n, "kind": k, **lab, "value": v} for n, k, lab, v in self._rows()])

    def scrape(self) -> None:
        """Record every series at the current simulated time."""
        now = self.env.now
        self._scrapes.extend((now, n, k, lab, v) for n, k, lab, v in self._rows())

    def scrape_every(self, interval: float, until: float | None = None) -> simpy.Process:
        """Start a process that scrapes every ``interval`` seconds (like ``scrape_interval``)."""
        if not interval > 0:
            raise ValueError(f"scrape interval must be > 0 s, got {interval!r}")

        start = self.env.now

        def scraper(env: simpy.Environment):
            k = 0
            # times computed as start + k * interval, not accumulated, so no scrape is lost to rounding
            while until is None or start + k * interval <= until + 1e-9 * interval:
                yield env.timeout(max(0.0, start + k * interval - env.now))
                self.scrape()
                k += 1

        return self.env.process(scraper(self.env))

    def scrapes_frame(self) -> pd.DataFrame:
        """Every scrape: columns ``time_s, name, kind, <label columns>, value``."""
        return _tidy([{"time_s": t, "name": n, "kind": k, **lab, "value": v} for t, n, k, lab, v in self._scrapes])

    def observations_frame(self, name: str) -> pd.DataFrame:
        """Raw observations of a histogram that keeps them: columns ``<labels>, value``."""
        family = self._families[name]
        if not isinstance(family, Histogram):
            raise ValueError(f"{name} is a {family.kind}, not a histogram")
        rows = []
        for key, child in sorted(family._children.items()):
            labels = dict(zip(family.labelnames, key))
            rows.extend({**labels, "value": v} for v in (child.observations or ()))  # type: ignore[attr-defined]
        return _tidy(rows, columns=[*family.labelnames, "value"])

    def gauge_history_frame(self, name: str) -> pd.DataFrame:
        """Every change of a tracked gauge: columns ``time_s, <labels>, value``."""
        family = self._families[name]
        if not isinstance(family, Gauge) or not family.track:
            raise ValueError(f"{name} is not a gauge created with track=True")
        rows = []
        for key, child in sorted(family._children.items()):
            labels = dict(zip(family.labelnames, key))
            rows.extend({"time_s": t, **labels, "value": v} for t, v in child.history)  # type: ignore[attr-defined]
        frame = _tidy(rows, columns=["time_s", *family.labelnames, "value"])
        return frame.sort_values("time_s", kind="stable").reset_index(drop=True)


def _fmt_le(le: float) -> str:
    return "+Inf" if le == math.inf else repr(le)


def _tidy(rows: list[dict], columns: list[str] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    if columns is None and rows:
        # value last, whatever labels came in between
        cols = [c for c in frame.columns if c != "value"] + ["value"]
        frame = frame[cols]
    return frame
