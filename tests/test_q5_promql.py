"""PromQL's rate/increase/histogram_quantile and the simulated scraper (question 5)."""

from __future__ import annotations

import math

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.core.metrics import Metrics
from sim.monitoring.promql import (
    delta, eval_times, histogram_quantile, increase, query_range, quantile_range, rate, select_range, series,
)
from sim.monitoring.scraper import Scraper


# --- rate / increase, by hand ------------------------------------------------------------------
def test_rate_of_a_steady_counter_extrapolates_to_the_range_start() -> None:
    samples = [(t, float(t)) for t in range(0, 61, 15)]  # one per second, scraped every 15 s
    # (0, 60] holds 15, 30, 45, 60: 45 seen over 45 s, extrapolated 15 s back to the range start
    assert select_range(samples, 60, 60) == [(15000, 15.0), (30000, 30.0), (45000, 45.0), (60000, 60.0)]
    assert increase(samples, 60, 60) == pytest.approx(60.0)
    assert rate(samples, 60, 60) == pytest.approx(1.0)
    # Prometheus 2.x included the left edge: 0..60, nothing to extrapolate
    assert len(select_range(samples, 60, 60, prometheus=2)) == 5
    assert increase(samples, 60, 60, prometheus=2) == pytest.approx(60.0)


def test_a_series_starting_inside_the_range_is_extrapolated_half_an_interval() -> None:
    samples = [(30, 10.0), (45, 25.0), (60, 40.0)]
    # first sample 30 s after the range start > 1.1 * 15 s: extrapolate only 7.5 s back
    # (the zero point, 10 s back, is further); last sample on the range end
    assert increase(samples, 60, 60) == pytest.approx(30 * (30 + 7.5) / 30)
    assert rate(samples, 60, 60) == pytest.approx(37.5 / 60)


def test_zero_point_limits_extrapolation_of_a_counter() -> None:
    samples = [(15, 1.0), (30, 16.0), (45, 31.0), (60, 46.0)]
    # 45 over 45 s; the counter was 0 at 14 s (1 s before the first sample): extrapolate 1 s, not 15
    assert increase(samples, 60, 60) == pytest.approx(45 * (45 + 1) / 45)
    # delta (a gauge) knows no zero point
    assert delta(samples, 60, 60) == pytest.approx(45 * (45 + 15) / 45)


def test_counter_reset_is_added_back() -> None:
    samples = [(15, 5.0), (30, 10.0), (45, 2.0), (60, 6.0)]
    # 5 -> 10 (+5), restart, 0 -> 2 (+2), -> 6 (+4): 11 over 45 s, extrapolated 15 s
    assert increase(samples, 60, 60) == pytest.approx(11 * 60 / 45)


def test_fewer_than_two_samples_give_no_result() -> None:
    assert math.isnan(rate([(10, 1.0)], 60, 60))
    assert math.isnan(increase([], 60, 60))
    with pytest.raises(ValueError, match="range"):
        rate([(1, 1.0)], 1, 0)


def test_last_sample_far_from_the_end_is_extrapolated_half_an_interval() -> None:
    samples = [(0, 0.0), (10, 10.0), (20, 20.0)]
    # range (−10, 40]: the zero point stops extrapolation at 0 s; the end 20 s past the last
    # sample (> 11 s) is extrapolated by 5 s
    assert increase(samples, 40, 50) == pytest.approx(20 * (20 + 0 + 5) / 20)


# --- the invariants of the issue ---------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(increments=st.lists(st.integers(0, 50), min_size=2, max_size=40),
       interval=st.sampled_from([1.0, 5.0, 15.0, 60.0]))
def test_increase_over_the_whole_run_matches_the_final_counter(increments, interval) -> None:
    env = simpy.Environment()
    metrics = Metrics(env)
    counter = metrics.counter("events_total")
    end = interval * len(increments)

    def events(env):
        for n in increments:  # n events in each interval, spread inside it (never on a scrape)
            for k in range(n):
                yield env.timeout(interval / (n + 1))
                counter.inc()
            yield env.timeout(interval - env.now % interval if env.now % interval else interval)

    env.process(events(env))
    scraper = Scraper(metrics, interval, until=end)
    env.run(until=end + interval / 2)
    samples = series(scraper.frame(), "events_total")[()]
    values = [v for _t, v in samples]
    assert values == sorted(values), "a counter never decreases"
    final = counter.value
    assert values[-1] == final == sum(increments)
    # the range covers every sample and the first one is 0: the zero point stops extrapolation
    # at the first sample, the last one is on the range's end, so increase() is exact
    assert increase(samples, end, end + interval) == pytest.approx(final)
    # over exactly the run (left-open: the 0 sample at t=0 is out), PromQL extrapolates back
    # from the first sample, never past the counter's zero point: between the two bounds
    first = values[1]
    inc = increase(samples, end, end)
    if final > first:
        assert final - first - 1e-9 <= inc <= final + 1e-9
    else:
        assert inc == pytest.approx(0.0)


def test_histogram_quantile_by_hand() -> None:
    buckets = [(0.1, 10), (0.5, 30), (1.0, 40), (math.inf, 50)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1 + 0.4 * 15 / 20)
    assert histogram_quantile(0.05, buckets) == pytest.approx(0.1 * 2.5 / 10)  # lowest bucket starts at 0
    assert histogram_quantile(0.95, buckets) == 1.0  # in +Inf: the highest finite bound
    assert histogram_quantile(1.0, buckets) == 1.0
    assert histogram_quantile(0.8, buckets) == pytest.approx(1.0)  # rank 40 ends bucket 1.0 exactly
    # label text, shuffled order, a duplicate bound, and a non-monotonic count are all handled
    messy = [("+Inf", 50), ("0.5", 30), ("0.1", 10), ("1.0", 25), ("1.0", 15)]
    assert histogram_quantile(0.5, messy) == pytest.approx(0.4)
    assert math.isnan(histogram_quantile(0.5, [(0.1, 1), (1.0, 2)]))  # no +Inf bucket
    assert math.isnan(histogram_quantile(0.5, [(0.1, 0), (math.inf, 0)]))  # no observation
    assert math.isnan(histogram_quantile(0.5, [(math.inf, 3)]))  # a single bucket
    assert math.isnan(histogram_quantile(0.0, [(0.1, 0), (1.0, 5), (math.inf, 5)]))  # 0/0 in Go is NaN
    assert histogram_quantile(-0.1, buckets) == -math.inf and histogram_quantile(1.1, buckets) == math.inf


def test_histogram_quantile_forces_monotonic_counts() -> None:
    # 0.5 reports fewer than 0.1 (rates across a reset can do that): taken as 10, so the rank
    # 12 of q=0.6 falls in bucket 1.0, which holds 10 of the 20
    buckets = [(0.1, 10), (0.5, 8), (1.0, 20), (math.inf, 20)]
    assert histogram_quantile(0.6, buckets) == pytest.approx(0.5 + 0.5 * (12 - 10) / (20 - 10))
    # a non-positive lowest bound is returned as is
    assert histogram_quantile(0.2, [(-1.0, 5), (math.inf, 10)]) == -1.0


def test_histogram_quantile_on_the_simulators_buckets_equals_a_hand_computation() -> None:
    env = simpy.Environment()
    metrics = Metrics(env)
    h = metrics.histogram("latency_seconds", "", buckets=(0.05, 0.1, 0.25, 0.5, 1.0))
    values = [0.01 * k for k in range(1, 101)]  # 0.01 .. 1.00
    for v in values:
        h.observe(v)
    child = h.labels()
    # hand: p99 has rank 99; 0.5 holds 50, 1.0 holds 100: 0.5 + 0.5 * (99 - 50) / 50
    assert histogram_quantile(0.99, child.cumulative()) == pytest.approx(0.5 + 0.5 * 49 / 50)
    # p50: rank 50 -> bucket 0.5 exactly full at 50 (0.25 holds 25): 0.25 + 0.25 * 25/25
    assert histogram_quantile(0.5, child.cumulative()) == pytest.approx(0.5)
    # the same through a scrape and quantile_range (rate over two scrapes scales every bucket alike)
    scraper = Scraper(metrics, 10.0, until=20)
    env.run(until=5)
    for v in values:
        h.observe(v)
    env.run(until=25)
    q = quantile_range(scraper.frame(), 0.99, "latency_seconds", 25, [20.0])  # scrapes 0, 10, 20
    assert q["value"].tolist() == [pytest.approx(0.5 + 0.5 * 49 / 50)]


# --- the scraper -------------------------------------------------------------------------------
def test_scraper_times_names_and_a_missed_spike() -> None:
    env = simpy.Environment()
    metrics = Metrics(env)
    g = metrics.gauge("active_connections")
    c = metrics.counter("errors_total")

    def spike(env):
        yield env.timeout(20)
        g.set(100)  # a 5 s spike between two 15 s scrapes
        c.inc(7)
        yield env.timeout(5)
        g.set(0)

    env.process(spike(env))
    fast = Scraper(metrics, 1.0, until=60)
    slow = Scraper(metrics, 15.0, until=60, names={"active_connections", "errors_total"})
    only = Scraper(metrics, 15.0, offset=5, until=60, names={"errors_total"})
    env.run(until=100)
    assert slow.scrape_times == [0, 15, 30, 45, 60]
    assert only.scrape_times == [5, 20, 35, 50]
    assert set(only.frame()["name"]) == {"errors_total"}
    peak = lambda s: max(v for _t, v in series(s.frame(), "active_connections")[()])  # noqa: E731
    assert peak(fast) == 100 and peak(slow) == 0  # the gauge's spike is invisible at 15 s
    assert series(slow.frame(), "errors_total")[()][-1] == (60, 7.0)  # the counter keeps it
    with pytest.raises(ValueError, match="scrape_interval"):
        Scraper(metrics, 0)


def test_query_range_sums_by_label() -> None:
    env = simpy.Environment()
    metrics = Metrics(env)
    c = metrics.counter("reconnects_total", "", ("server", "reason"))
    for server in ("a", "b"):
        c.labels(server, "crash").inc(0)

    def load(env):
        yield env.timeout(0.25)  # ticks at 0.25, 0.75, ...: never on a scrape time
        while True:
            c.labels("a", "crash").inc()
            c.labels("b", "crash").inc(2)
            yield env.timeout(0.5)

    env.process(load(env))
    scraper = Scraper(metrics, 5.0, until=60)
    env.run(until=61)
    times = eval_times(30, 60, 10)
    assert times == [30, 40, 50, 60]
    per_series = query_range(scraper.frame(), "rate", "reconnects_total", 30, times)
    assert set(per_series["server"]) == {"a", "b"} and len(per_series) == 8
    total = query_range(scraper.frame(), "rate", "reconnects_total", 30, times, by=())
    assert total["value"].tolist() == pytest.approx([6.0] * 4)
    by_reason = query_range(scraper.frame(), "increase", "reconnects_total", 30, times, by=("reason",))
    assert by_reason["reason"].tolist() == ["crash"] * 4
    assert by_reason["value"].tolist() == pytest.approx([180.0] * 4)
