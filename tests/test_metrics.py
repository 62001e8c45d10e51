"""Metrics: Prometheus-style counters, gauges and histograms in simulated time."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import simpy

from sim.core.metrics import DEFAULT_BUCKETS, Metrics


@pytest.fixture
def env() -> simpy.Environment:
    return simpy.Environment()


@pytest.fixture
def metrics(env) -> Metrics:
    return Metrics(env)


def at(env: simpy.Environment, t: float, fn) -> None:
    """Call ``fn()`` at simulated time ``t``."""
    env.timeout(t - env.now).callbacks.append(lambda _e: fn())


# --- counters --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["requests", "requests_count", "total", "requests_total_x"])
def test_counter_names_must_end_in_total(metrics: Metrics, name: str) -> None:
    with pytest.raises(ValueError, match="_total"):
        metrics.counter(name)
    assert name not in metrics


def test_counter_counts_and_cannot_decrease(metrics: Metrics) -> None:
    c = metrics.counter("requests_total", "Requests")
    c.inc()
    c.inc(2.5)
    assert c.value == 3.5
    with pytest.raises(ValueError, match="only increases"):
        c.inc(-1)
    assert c.value == 3.5
    c.inc(0)
    assert c.value == 3.5


def test_labelled_counter_series_are_separate(metrics: Metrics) -> None:
    c = metrics.counter("jobs_total", "", ("server", "outcome"))
    c.labels("s1", "ok").inc()
    c.labels(server="s1", outcome="ok").inc()
    c.labels(outcome="lost", server="s1").inc(5)
    assert c.labels("s1", "ok").value == 2
    assert c.labels("s1", "lost").value == 5
    assert set(c.children()) == {("s1", "ok"), ("s1", "lost")}
    with pytest.raises(ValueError):
        c.inc()  # a labelled family needs .labels(...)
    with pytest.raises(ValueError):
        c.labels("s1")
    with pytest.raises(ValueError):
        c.labels(server="s1")
    with pytest.raises(ValueError):
        c.labels("s1", outcome="ok")


def test_counter_child_reset(metrics: Metrics) -> None:
    c = metrics.counter("x_total")
    c.inc(3)
    c.labels().reset()
    assert c.value == 0


@pytest.mark.parametrize("name", ["1abc_total", "a-b_total", "", "a b_total"])
def test_invalid_metric_names(metrics: Metrics, name: str) -> None:
    with pytest.raises(ValueError):
        metrics.gauge(name)


@pytest.mark.parametrize("label", ["__reserved", "1x", "a-b", ""])
def test_invalid_label_names(metrics: Metrics, label: str) -> None:
    with pytest.raises(ValueError, match="label"):
        metrics.gauge("g", labelnames=(label,))


def test_registering_twice_returns_the_same_family(metrics: Metrics) -> None:
    a = metrics.counter("a_total", "", ("x",))
    assert metrics.counter("a_total", "", ("x",)) is a
    assert metrics["a_total"] is a
    with pytest.raises(ValueError, match="already registered"):
        metrics.counter("a_total", "", ("y",))
    with pytest.raises(ValueError, match="already registered"):
        metrics.gauge("a_total")
    assert metrics.names() == ["a_total"]


# --- gauges ----------------------------------------------------------------------------------
def test_gauge_time_average_of_a_step_function(env, metrics: Metrics) -> None:
    g = metrics.gauge("queue_length", track=True)
    child = g.labels()  # the series starts now, at 0
    at(env, 1, lambda: g.set(2))
    at(env, 3, lambda: g.set(5))
    at(env, 4, lambda: g.dec(4))       # -> 1
    env.run(until=4)
    # 0 on [0,1), 2 on [1,3), 5 on [3,4)
    assert child.time_average() == pytest.approx((0 * 1 + 2 * 2 + 5 * 1) / 4)
    env.run(until=6)
    # then 1 on [4,6)
    assert child.time_average() == pytest.approx((0 + 4 + 5 + 1 * 2) / 6)
    assert child.time_average(until=10) == pytest.approx((0 + 4 + 5 + 1 * 6) / 10)
    assert g.value == 1
    assert child.history == [(1, 2), (3, 5), (4, 1)]


def test_gauge_time_average_starts_at_creation_and_after_reset(env, metrics: Metrics) -> None:
    env.run(until=10)
    g = metrics.gauge("late")
    g.set(4)
    at(env, 12, lambda: g.inc(2))     # 4 on [10,12), 6 on [12,14)
    env.run(until=14)
    child = g.labels()
    assert child.time_average() == pytest.approx((4 * 2 + 6 * 2) / 4)
    child.reset_average()
    assert child.time_average() == 6  # zero span: the current value
    at(env, 15, lambda: g.set(0))     # 6 on [14,15), 0 on [15,18)
    env.run(until=18)
    assert child.time_average() == pytest.approx(6 / 4)


def test_gauge_history_frame(env, metrics: Metrics) -> None:
    g = metrics.gauge("conns", "", ("server",), track=True)
    at(env, 1, lambda: g.labels("b").set(3))
    at(env, 2, lambda: g.labels("a").inc())
    at(env, 3, lambda: g.labels("b").dec())
    env.run()
    frame = metrics.gauge_history_frame("conns")
    assert list(frame.columns) == ["time_s", "server", "value"]
    assert frame.to_dict("records") == [
        {"time_s": 1, "server": "b", "value": 3},
        {"time_s": 2, "server": "a", "value": 1},
        {"time_s": 3, "server": "b", "value": 2},
    ]
    metrics.gauge("untracked")
    with pytest.raises(ValueError, match="track=True"):
        metrics.gauge_history_frame("untracked")


# --- histograms ------------------------------------------------------------------------------
def test_histogram_cumulative_buckets(metrics: Metrics) -> None:
    h = metrics.histogram("latency_seconds", buckets=(1, 2, 5))
    for v in (0.5, 1.0, 1.5, 2.0, 7.0, 0.0):
        h.observe(v)
    child = h.labels()
    assert child.cumulative() == [(1.0, 3), (2.0, 5), (5.0, 5), (math.inf, 6)]
    assert child.sum == 12.0 and child.count == 6
    assert child.observations == [0.5, 1.0, 1.5, 2.0, 7.0, 0.0]
    child.reset()
    assert child.cumulative() == [(1.0, 0), (2.0, 0), (5.0, 0), (math.inf, 0)]
    assert child.count == 0 and child.sum == 0 and child.observations == []


def test_histogram_default_buckets_and_no_keep(metrics: Metrics) -> None:
    h = metrics.histogram("d_seconds", keep=False)
    h.observe(0.3)
    child = h.labels()
    assert child.buckets == DEFAULT_BUCKETS
    assert child.observations is None
    cum = dict(child.cumulative())
    assert cum[0.25] == 0 and cum[0.5] == 1 and cum[math.inf] == 1


def test_histogram_inf_bucket_is_implicit(metrics: Metrics) -> None:
    h = metrics.histogram("x_seconds", buckets=(1, math.inf))
    h.observe(3)
    assert h.labels().cumulative() == [(1.0, 0), (math.inf, 1)]


@pytest.mark.parametrize("buckets", [(2, 1), (1, 1, 2)])
def test_histogram_buckets_must_increase(metrics: Metrics, buckets) -> None:
    with pytest.raises(ValueError, match="increasing"):
        metrics.histogram("h_seconds", buckets=buckets)


def test_histogram_rejects_le_label(metrics: Metrics) -> None:
    with pytest.raises(ValueError):
        metrics.histogram("lat_seconds", labelnames=("le",), buckets=(1, 2))


def test_observations_frame(metrics: Metrics) -> None:
    h = metrics.histogram("w_seconds", "", ("server",), buckets=(1,))
    h.labels("b").observe(2.0)
    h.labels("a").observe(0.5)
    h.labels("a").observe(0.25)
    frame = metrics.observations_frame("w_seconds")
    assert list(frame.columns) == ["server", "value"]
    assert frame.to_dict("records") == [{"server": "a", "value": 0.5}, {"server": "a", "value": 0.25},
                                        {"server": "b", "value": 2.0}]
    metrics.counter("c_total")
    with pytest.raises(ValueError, match="not a histogram"):
        metrics.observations_frame("c_total")
    assert list(metrics.observations_frame(metrics.histogram("empty_seconds").name).columns) == ["value"]


# --- export ----------------------------------------------------------------------------------
def _populate(metrics: Metrics) -> None:
    metrics.counter("jobs_total", "", ("server",)).labels("s1").inc(3)
    metrics.gauge("temp").set(21.5)
    h = metrics.histogram("resp_seconds", buckets=(0.5, 1.0))
    h.observe(0.25)
    h.observe(0.75)


def test_to_frame(metrics: Metrics) -> None:
    _populate(metrics)
    frame = metrics.to_frame()
    assert frame.columns[0] == "name" and frame.columns[1] == "kind" and frame.columns[-1] == "value"
    assert set(frame.columns) == {"name", "kind", "server", "le", "value"}
    rows = {(r["name"], r["le"] if isinstance(r["le"], str) else None): (r["kind"], r["value"])
            for r in frame.to_dict("records")}
    assert rows == {
        ("jobs_total", None): ("counter", 3.0),
        ("temp", None): ("gauge", 21.5),
        ("resp_seconds_bucket", "0.5"): ("histogram", 1.0),
        ("resp_seconds_bucket", "1.0"): ("histogram", 2.0),
        ("resp_seconds_bucket", "+Inf"): ("histogram", 2.0),
        ("resp_seconds_sum", None): ("histogram", 1.0),
        ("resp_seconds_count", None): ("histogram", 2.0),
    }
    assert frame.loc[frame["name"] == "jobs_total", "server"].tolist() == ["s1"]
    assert frame["value"].dtype == float


def test_to_frame_empty(metrics: Metrics) -> None:
    assert len(metrics.to_frame()) == 0


def test_scrape_records_the_time(env, metrics: Metrics) -> None:
    _populate(metrics)
    metrics.scrape()
    at(env, 2.5, lambda: metrics.counter("jobs_total", "", ("server",)).labels("s1").inc())
    at(env, 3.0, metrics.scrape)
    env.run()
    frame = metrics.scrapes_frame()
    assert frame.columns[0] == "time_s" and frame.columns[1] == "name" and frame.columns[-1] == "value"
    assert set(frame.columns) == {"time_s", "name", "kind", "server", "le", "value"}
    jobs = frame[frame["name"] == "jobs_total"]
    assert jobs[["time_s", "value"]].values.tolist() == [[0.0, 3.0], [3.0, 4.0]]
    assert len(frame) == 2 * len(metrics.to_frame())


def test_scrape_every_times(env, metrics: Metrics) -> None:
    c = metrics.counter("ticks_total")
    c.inc(0)  # create the series at 0 (see test_unlabelled_series_exist_from_creation)

    def ticker(env):
        while True:
            yield env.timeout(0.3)
            c.inc()

    env.process(ticker(env))
    metrics.scrape_every(0.25, until=1.0)
    env.run(until=5)
    frame = metrics.scrapes_frame()
    assert frame["time_s"].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    # ticks at 0.3, 0.6, 0.9, 1.2 ... (never on a scrape time)
    assert frame["value"].tolist() == [0.0, 0.0, 1.0, 2.0, 3.0]


def test_scrape_every_without_until_keeps_going(env, metrics: Metrics) -> None:
    metrics.gauge("g").set(1)
    metrics.scrape_every(2.0)
    env.run(until=9)
    assert metrics.scrapes_frame()["time_s"].tolist() == [0, 2, 4, 6, 8]


def test_scrape_every_starts_now(env, metrics: Metrics) -> None:
    metrics.gauge("g").set(0)
    env.run(until=3)
    metrics.scrape_every(1.5, until=6)
    env.run(until=100)
    assert metrics.scrapes_frame()["time_s"].tolist() == [3.0, 4.5, 6.0]


def test_scrape_every_includes_until_with_decimal_interval(env, metrics: Metrics) -> None:
    metrics.gauge("g").set(1)
    metrics.scrape_every(0.1, until=0.3)
    env.run(until=1)
    assert len(metrics.scrapes_frame()) == 4


def test_unlabelled_series_exist_from_creation(env, metrics: Metrics) -> None:
    metrics.counter("errors_total")
    g = metrics.gauge("queue_length")
    at(env, 1, lambda: g.set(2))
    env.run(until=2)
    frame = metrics.to_frame()
    assert frame.loc[frame["name"] == "errors_total", "value"].tolist() == [0.0]
    assert g.labels().time_average() == pytest.approx(1.0)  # 0 on [0,1), 2 on [1,2)


@pytest.mark.parametrize("interval", [0, -1, math.nan])
def test_scrape_every_rejects_bad_interval(metrics: Metrics, interval: float) -> None:
    with pytest.raises(ValueError, match="interval"):
        metrics.scrape_every(interval)


def test_scrapes_frame_empty_is_a_frame(metrics: Metrics) -> None:
    assert isinstance(metrics.scrapes_frame(), pd.DataFrame)
    assert len(metrics.scrapes_frame()) == 0


# --- prometheus_client underneath ------------------------------------------------------------
def test_each_run_has_its_own_registry_and_never_the_global_one(env) -> None:
    import prometheus_client

    a, b = Metrics(env), Metrics(env)
    a.counter("requests_total").inc(2)
    b.counter("requests_total").inc(5)  # same name, another run: no clash
    assert a.registry is not b.registry
    assert a.registry is not prometheus_client.REGISTRY
    assert prometheus_client.REGISTRY.get_sample_value("requests_total") is None
    assert a.registry.get_sample_value("requests_total") == 2
    assert b.registry.get_sample_value("requests_total") == 5


def test_exposition_is_what_the_frames_say(env, metrics: Metrics) -> None:
    """The text prometheus_client serves on /metrics carries exactly the values of to_frame()."""
    from prometheus_client.parser import text_string_to_metric_families

    _populate(metrics)
    g = metrics.gauge("conns", "Open connections", ("server",))
    g.labels("a").set(3)
    g.labels("a").dec()
    exposed = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            if not s.name.endswith("_created"):
                exposed[(s.name, tuple(sorted(s.labels.items())))] = s.value
    frame = metrics.to_frame()
    label_cols = [c for c in frame.columns if c not in ("name", "kind", "value")]
    ours = {(r["name"], tuple(sorted((c, r[c]) for c in label_cols if isinstance(r[c], str)))): r["value"]
            for r in frame.to_dict("records")}
    assert ours == exposed
    assert exposed[("conns", (("server", "a"),))] == 2
    assert metrics.registry.get_sample_value("resp_seconds_bucket", {"le": "0.5"}) == 1


def test_histogram_buckets_match_prometheus_client_observe(env) -> None:
    """Our bisection puts every value in the bucket prometheus_client's own observe() picks
    (upper bounds inclusive: le means <=)."""
    import prometheus_client

    reg = prometheus_client.CollectorRegistry()
    theirs = prometheus_client.Histogram("x_seconds", "x", buckets=(0.1, 0.5, 1.0), registry=reg)
    ours = Metrics(env).histogram("x_seconds", buckets=(0.1, 0.5, 1.0))
    for v in (0.0, 0.1, 0.1000001, 0.5, 0.75, 1.0, 1.5, -1.0, math.inf):
        theirs.observe(v)
        ours.observe(v)
    child = ours.labels()
    assert [reg.get_sample_value("x_seconds_bucket", {"le": le}) for le in ("0.1", "0.5", "1.0", "+Inf")] == \
        [n for _le, n in child.cumulative()]


def test_histogram_reset_keeps_exporting(env, metrics: Metrics) -> None:
    h = metrics.histogram("r_seconds", "", ("s",), buckets=(1,))
    h.labels("a").observe(0.5)
    h.labels("a").reset()
    h.labels("a").observe(2)
    assert metrics.registry.get_sample_value("r_seconds_count", {"s": "a"}) == 1
    assert metrics.registry.get_sample_value("r_seconds_bucket", {"s": "a", "le": "1.0"}) == 0
