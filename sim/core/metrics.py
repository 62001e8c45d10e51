"""Counters, gauges and histograms recorded in simulated time, exported as tidy DataFrames.

The values live in **prometheus_client** (https://github.com/prometheus/client_python): each
run's :class:`Metrics` owns its own ``CollectorRegistry`` (never the process-wide default one),
so ``Metrics.exposition()`` is byte for byte what a real exporter serves on ``/metrics`` and a
real Prometheus server can scrape it (``python -m sim live``). This module adds only what a
simulation needs on top: simulated time (gauge time averages and change history), the raw
observations of a histogram (for exact quantiles to compare bucket estimates with), and tidy
DataFrames of the current values and of every simulated scrape.

Names follow Prometheus conventions: counters end in ``_total``, values are in base units
(``_seconds``, ``_bytes``). A metric family has fixed label names; ``family.labels(k=v)``
returns the child that holds one series. ``Metrics.scrape()`` snapshots every series at the
current simulated time, the way a Prometheus server scrapes an exporter; ``sim.monitoring.promql``
evaluates ``rate()``, ``increase()`` and ``histogram_quantile()`` on those snapshots.

prometheus_client also exposes ``<name>_created`` samples (the wall-clock time a series was
created): they are served on ``/metrics`` but left out of the frames, which must be identical
for the same seed.
"""

from __future__ import annotations

import bisect
import math
import re
from typing import TYPE_CHECKING, Iterable

import prometheus_client as pc
import simpy

if TYPE_CHECKING:  # pandas is imported where a frame is built (keeps `import sim` light)
    import pandas as pd

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

# Values are written straight into prometheus_client's value cells (``MutexValue._value``):
# metric updates sit on every hot path of the simulator, the wrapper's per-call checks and lock
# cost 4x the update itself, and a run has a single writer (the simulation thread; in live mode
# the HTTP exporter thread only reads whole floats, which the GIL keeps atomic). The cells are
# still prometheus_client's, so what it exposes is what the simulation recorded.
_CELL = pc.values.MutexValue
if pc.values.ValueClass is not _CELL:  # multiprocess mode (PROMETHEUS_MULTIPROC_DIR) keeps values in files
    raise ImportError("sim.core.metrics needs prometheus_client's single-process mode; unset PROMETHEUS_MULTIPROC_DIR")

#: Prometheus client libraries' default histogram buckets, in seconds.
DEFAULT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


class CounterChild:
    """One counter series: a value that only goes up (a prometheus_client counter child)."""

    __slots__ = ("_pc", "_value", "cell")

    def __init__(self, series: pc.Counter) -> None:
        self._pc = series
        self._value = series._value  # prometheus_client's value cell (see _CELL)
        self.cell = self._value
        """The value cell itself, for the hottest paths (a storm counts each of millions of
        attempts): ``cell._value += 1.0`` is :meth:`inc` without its call and its check."""

    @property
    def value(self) -> float:
        return self._value._value

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError(f"a counter only increases; got inc({amount})")
        self._value._value += amount

    def reset(self) -> None:
        """Back to zero, as after a process restart (Prometheus' ``rate()`` copes with it)."""
        self._pc.reset()


class GaugeChild:
    """One gauge series: a value that goes up and down, with its time-weighted average."""

    __slots__ = ("_pc", "_value", "_env", "_since", "_start", "_area", "history")

    def __init__(self, series: pc.Gauge, env: simpy.Environment, track: bool) -> None:
        self._pc = series
        self._value = series._value  # prometheus_client's value cell (see _CELL)
        self._env = env
        self._start = self._since = env.now
        self._area = 0.0
        self.history: list[tuple[float, float]] | None = [] if track else None
        """``(time, value)`` after every change, when the family was created with ``track=True``."""

    @property
    def value(self) -> float:
        return self._value._value

    def set(self, value: float) -> None:
        now = self._env.now
        cell = self._value
        self._area += cell._value * (now - self._since)
        self._since = now
        cell._value = float(value)
        if self.history is not None:
            self.history.append((now, value))

    def inc(self, amount: float = 1.0) -> None:
        # set(value + amount) written out: clients connecting and leaving move gauges on hot paths
        now = self._env.now
        cell = self._value
        value = cell._value
        self._area += value * (now - self._since)
        self._since = now
        cell._value = value = value + amount
        if self.history is not None:
            self.history.append((now, value))

    def dec(self, amount: float = 1.0) -> None:
        self.inc(-amount)

    def reset_average(self) -> None:
        """Start the time average afresh from now (e.g. at the end of a warm-up)."""
        self._area = 0.0
        self._start = self._since = self._env.now

    def time_average(self, until: float | None = None) -> float:
        """Mean value over time, from creation (or the last reset) to ``until`` (default: now)."""
        end = self._env.now if until is None else until
        span = end - self._start
        value = self.value
        if span <= 0:
            return value
        return (self._area + value * (end - self._since)) / span


class HistogramChild:
    """One histogram series: cumulative buckets, sum and count (in prometheus_client), plus the
    raw observations when the family keeps them."""

    __slots__ = ("_pc", "_sum", "_cells", "_les", "buckets", "observations")

    def __init__(self, series: pc.Histogram, buckets: tuple[float, ...], keep: bool) -> None:
        self._pc = series
        self._bind()
        self.buckets = buckets
        self._les = tuple(pc.utils.floatToGoString(b) for b in (*buckets, math.inf))  # the le label texts
        """Upper bounds, without the implicit ``+Inf``."""
        self.observations: list[float] | None = [] if keep else None
        """Every observed value, when the family keeps them (for exact quantiles)."""

    def _bind(self) -> None:
        # prometheus_client's cells for the sum and each bucket (see _CELL)
        self._sum, self._cells = self._pc._sum, self._pc._buckets

    def observe(self, value: float) -> None:
        # the bucket prometheus_client's own observe() picks (first bound >= value), found by
        # bisection instead of its linear scan
        self._sum._value += value
        self._cells[bisect.bisect_left(self.buckets, value)]._value += 1.0
        if self.observations is not None:
            self.observations.append(value)

    @property
    def counts(self) -> list[int]:
        """Observations per bucket (not cumulative); the last one is ``+Inf``."""
        return [int(b._value) for b in self._cells]

    @property
    def sum(self) -> float:
        return self._sum._value

    @property
    def count(self) -> int:
        return int(sum(b._value for b in self._cells))

    def reset(self) -> None:
        """Forget every observation."""
        self._pc._metric_init()  # what prometheus_client does when it creates the series
        self._bind()
        if self.observations is not None:
            self.observations = []

    def cumulative(self) -> list[tuple[float, int]]:
        """``(le, count of observations <= le)`` including ``le = inf``, as Prometheus exposes."""
        out, running = [], 0
        for le, n in zip((*self.buckets, math.inf), self.counts):
            running += n
            out.append((le, running))
        return out


class Count:
    """A read-only attribute that reads a series back as a whole number: ``produced =
    Count("_produced")`` makes ``obj.produced`` the value of the counter or gauge child held in
    ``obj._produced`` (0 while that attribute is unset), so an object keeps its counts in the
    registry and still shows them as attributes."""

    def __init__(self, attribute: str, doc: str = "") -> None:
        self.attribute = attribute
        self.__doc__ = doc

    def __get__(self, obj: object, owner: type | None = None):
        if obj is None:
            return self
        series = getattr(obj, self.attribute, None)
        return 0 if series is None else int(series.value)


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
        self._pc: pc.metrics.MetricWrapperBase | None = None  # set by the subclass

    def _init_unlabelled(self) -> None:
        # An unlabelled metric exists from its creation, as in prometheus_client: it shows in
        # exports at 0 before first use, and a gauge's time average starts at creation.
        if not self.labelnames:
            self.labels()

    def _new_child(self, key: tuple[str, ...]) -> object:
        raise NotImplementedError

    def _pc_series(self, key: tuple[str, ...]):
        return self._pc.labels(*key) if self.labelnames else self._pc

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
            child = self._children[key] = self._new_child(key)
        return child

    def children(self) -> dict[tuple[str, ...], object]:
        return dict(self._children)

    # an unlabelled family is used directly: family.inc(), family.observe(v) ...
    def _only(self):
        if self.labelnames:
            raise ValueError(f"{self.name} has labels {self.labelnames}: call .labels(...) first")
        return self.labels()


def _documentation(text: str, name: str) -> str:
    return text or name  # prometheus_client wants some HELP text


class Counter(MetricFamily):
    kind = "counter"

    def __init__(self, metrics, name, documentation, labelnames=()) -> None:
        if not name.endswith("_total") or name == "_total":
            raise ValueError(f"counter names end in _total (Prometheus convention), got {name!r}")
        super().__init__(metrics, name, documentation, labelnames)
        # prometheus_client strips the _total suffix from the family and adds it to the sample
        self._pc = pc.Counter(name, _documentation(documentation, name), self.labelnames, registry=metrics.registry)
        self._init_unlabelled()

    def _new_child(self, key) -> CounterChild:
        return CounterChild(self._pc_series(key))

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
        self._pc = pc.Gauge(name, _documentation(documentation, name), self.labelnames, registry=metrics.registry)
        self._init_unlabelled()

    def _new_child(self, key) -> GaugeChild:
        return GaugeChild(self._pc_series(key), self._metrics.env, self.track)

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
        if not self.buckets:
            raise ValueError(f"{name} needs at least one finite bucket")
        self.keep = keep
        self._pc = pc.Histogram(name, _documentation(documentation, name), self.labelnames,
                                buckets=self.buckets, registry=metrics.registry)
        self._init_unlabelled()

    def _new_child(self, key) -> HistogramChild:
        return HistogramChild(self._pc_series(key), self.buckets, self.keep)

    def observe(self, value: float) -> None:
        self._only().observe(value)


class Metrics:
    """The registry of one run's metric families, over a prometheus_client ``CollectorRegistry``."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.registry = pc.CollectorRegistry(auto_describe=True)
        """This run's prometheus_client registry (serve it with ``prometheus_client.start_http_server``)."""
        self._families: dict[str, MetricFamily] = {}
        self._own = Scraper(self)
        self._scrapers: list[Scraper] = []
        self.probes: dict[str, object] = {}
        """Objects that feed this registry, by key (e.g. ``reconnect_tracker:<clients>``), so that a
        run has one of each."""

    def _family(self, kind: type, name: str, labelnames: Iterable[str]) -> MetricFamily | None:
        existing = self._families.get(name)
        if existing is not None:
            if type(existing) is not kind or existing.labelnames != tuple(labelnames):
                raise ValueError(f"metric {name!r} already registered with another kind or labels")
        return existing

    def _register(self, family: MetricFamily) -> MetricFamily:
        self._families[family.name] = family
        return family

    def counter(self, name: str, documentation: str = "", labelnames: Iterable[str] = ()) -> Counter:
        labelnames = tuple(labelnames)
        return self._family(Counter, name, labelnames) or self._register(  # type: ignore[return-value]
            Counter(self, name, documentation, labelnames))

    def gauge(self, name: str, documentation: str = "", labelnames: Iterable[str] = (), track: bool = False) -> Gauge:
        labelnames = tuple(labelnames)
        return self._family(Gauge, name, labelnames) or self._register(  # type: ignore[return-value]
            Gauge(self, name, documentation, labelnames, track))

    def histogram(self, name, documentation="", labelnames=(), buckets=DEFAULT_BUCKETS, keep=True) -> Histogram:
        labelnames = tuple(labelnames)
        return self._family(Histogram, name, labelnames) or self._register(  # type: ignore[return-value]
            Histogram(self, name, documentation, labelnames, buckets, keep))

    def __getitem__(self, name: str) -> MetricFamily:
        return self._families[name]

    def __contains__(self, name: str) -> bool:
        return name in self._families

    def names(self) -> list[str]:
        return sorted(self._families)

    def total(self, name: str, **labels: object) -> float:
        """Sum of the counter or gauge ``name`` over its series whose labels include ``labels``
        (PromQL's ``sum(name{k="v"})``); 0 when no series exists yet."""
        family = self._families.get(name)
        if family is None:
            return 0.0
        if isinstance(family, Histogram):
            raise ValueError(f"{name} is a histogram: read its children's count or sum")
        if not labels:
            return sum(child.value for child in family._children.values())  # type: ignore[attr-defined]
        unknown = set(labels) - set(family.labelnames)
        if unknown:
            raise ValueError(f"{name} has no label {sorted(unknown)[0]!r} (its labels: {family.labelnames})")
        where = [(family.labelnames.index(k), str(v)) for k, v in labels.items()]
        return sum(child.value for key, child in family._children.items()  # type: ignore[attr-defined]
                   if all(key[i] == v for i, v in where))

    def exposition(self) -> bytes:
        """The registry in Prometheus' text exposition format, as served on ``/metrics``."""
        return pc.generate_latest(self.registry)

    # --- export -------------------------------------------------------------------------
    def _rows(self, names: frozenset[str] | None = None):
        """``(sample name, kind, labels dict, value)`` for every sample prometheus_client exposes
        (of the families in ``names``, default all), families by name and series by label values,
        ``_created`` samples left out.

        Read from the same value cells prometheus_client's ``collect()`` reads (a scrape every
        simulated second would spend most of a run in its per-sample bookkeeping);
        tests/test_metrics.py checks that the two give the same samples."""
        for name in sorted(self._families):
            if names is not None and name not in names:
                continue
            family = self._families[name]
            kind, labelnames = family.kind, family.labelnames
            for key, child in sorted(family._children.items()):
                labels = dict(zip(labelnames, key))
                if kind == "histogram":
                    running = 0.0
                    for le, cell in zip(child._les, child._cells):  # type: ignore[attr-defined]
                        running += cell._value
                        yield name + "_bucket", kind, {**labels, "le": le}, running
                    yield name + "_count", kind, labels, running
                    if family.buckets[0] >= 0:  # as prometheus_client: no _sum with negative buckets
                        yield name + "_sum", kind, labels, child._sum._value  # type: ignore[attr-defined]
                else:
                    yield name, kind, labels, float(child._value._value)  # type: ignore[attr-defined]

    def to_frame(self) -> pd.DataFrame:
        """Current value of every series: columns ``name, kind, <label columns>, value``."""
        return _tidy([{"name": n, "kind": k, **lab, "value": v} for n, k, lab, v in self._rows()])

    def scrape(self, at: float | None = None) -> None:
        """Record every series now (dated ``at`` if given), in the registry's own scrapes."""
        self._own.scrape(at)

    def scrape_every(self, interval: float, until: float | None = None, *, offset: float = 0.0,
                     names: Iterable[str] | None = None, stop: simpy.Event | None = None) -> "Scraper":
        """Start a :class:`Scraper` of this registry every ``interval`` seconds from now + ``offset``
        (like ``scrape_interval``); its scrapes are also part of :meth:`scrapes_frame`."""
        scraper = Scraper(self, interval, offset=offset, until=until, names=names, stop=stop)
        self._scrapers.append(scraper)
        return scraper

    def scrapes_frame(self) -> pd.DataFrame:
        """Every scrape made by :meth:`scrape` and :meth:`scrape_every`, by time: columns ``time_s,
        name, kind, <label columns>, value``."""
        samples = [*self._own.samples, *(s for scraper in self._scrapers for s in scraper.samples)]
        if self._scrapers:
            samples.sort(key=lambda sample: sample[0])  # stable: a scrape's rows stay in order
        return _tidy([{"time_s": t, "name": n, "kind": k, **lab, "value": v} for t, n, k, lab, v in samples])

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


class Scraper:
    """A simulated Prometheus scraper: reads ``metrics`` every ``interval`` seconds of simulated
    time from now + ``offset`` until ``until`` (keeping only the families in ``names``, when
    given), and stops for good once the event ``stop`` has triggered; ``frame()`` is the tidy
    series. Without ``interval`` it scrapes only when :meth:`scrape` is called.

    Prometheus pulls: every ``scrape_interval`` it reads the target's ``/metrics`` and stores one
    sample per series with the scrape's timestamp, so whatever happens between two scrapes is
    seen only through what it leaves in the values (a counter keeps the count of a burst; a
    gauge that rose and fell back in between is never seen at its peak). Simplifications: a
    scrape is instantaneous and never fails; the first one is at ``offset`` (Prometheus spreads
    targets over the interval with a per-target offset)."""

    def __init__(self, metrics: Metrics, interval: float | None = None, *, offset: float = 0.0,
                 until: float | None = None, names: Iterable[str] | None = None,
                 stop: simpy.Event | None = None) -> None:
        if interval is not None and not interval > 0:
            raise ValueError(f"scrape_interval must be > 0 s, got {interval!r}")
        if not offset >= 0:
            raise ValueError(f"scrape offset must be >= 0 s, got {offset!r}")
        self.metrics = metrics
        self.interval = None if interval is None else float(interval)
        """Seconds between scrapes (Prometheus' ``scrape_interval``)."""
        self.offset = float(offset)
        self.names = None if names is None else frozenset(names)
        """The metric families kept (``None``: all)."""
        self.until = until
        self.stop = stop
        self.samples: list[tuple] = []
        """``(time_s, sample name, kind, labels dict, value)``, one per series per scrape."""
        self.scrape_times: list[float] = []
        self._starts: list[int] = []  # index in samples of each scrape's first row
        env = metrics.env
        self.process: simpy.Process | None = env.process(self._run(env)) if interval is not None else None

    def _run(self, env: simpy.Environment):
        start, interval, until, stop = env.now + self.offset, self.interval, self.until, self.stop
        k = 0
        # times computed as start + k * interval, not accumulated, so no scrape is lost to rounding
        while until is None or start + k * interval <= until + 1e-9 * interval:
            yield env.timeout(max(0.0, start + k * interval - env.now))
            if stop is not None and stop.triggered:
                return
            self.scrape()
            k += 1

    def scrape(self, at: float | None = None) -> None:
        """One scrape now (dated ``at`` if given, e.g. a last one after the run, dated by the last change)."""
        now = self.metrics.env.now if at is None else at
        self.scrape_times.append(now)
        self._starts.append(len(self.samples))
        self.samples.extend((now, n, k, lab, v) for n, k, lab, v in self.metrics._rows(self.names))

    def totals(self) -> list[tuple[float, dict[str, float]]]:
        """Per scrape, its time and each family's sum over its series (``sum by () (name)``);
        a histogram gives its ``_count`` and ``_sum`` under those sample names."""
        out = []
        for i, start in enumerate(self._starts):
            end = self._starts[i + 1] if i + 1 < len(self._starts) else len(self.samples)
            sums: dict[str, float] = {}
            for _t, name, kind, _labels, value in self.samples[start:end]:
                if not name.endswith("_bucket"):
                    sums[name] = sums.get(name, 0.0) + value
            out.append((self.scrape_times[i], sums))
        return out

    def frame(self) -> pd.DataFrame:
        """Every sample: columns ``time_s, name, kind, <label columns>, value``."""
        frame = _tidy([{"time_s": t, "name": n, "kind": k, **lab, "value": v} for t, n, k, lab, v in self.samples])
        if not len(frame):
            frame = _tidy([], columns=["time_s", "name", "kind", "value"])
        return frame


def _tidy(rows: list[dict], columns: list[str] | None = None) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=columns)
    if columns is None and rows:
        # value last, whatever labels came in between
        cols = [c for c in frame.columns if c != "value"] + ["value"]
        frame = frame[cols]
    return frame
