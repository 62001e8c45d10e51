"""monitoring-incident: what scrapes, rate(), buckets and alerts show of a node crash (question 5)."""

from __future__ import annotations

import math

import pytest

import sim
from sim.core import Context, ParameterError
from sim.monitoring.scraper import Scraper
from sim.scenarios.q5_monitoring import MonitoringIncidentParams, simulate

SMALL = dict(clients=400, message_rate=50.0, horizon=150.0, crash_at=67.0, downtime=30.0)


@pytest.fixture(scope="module")
def small():
    p = MonitoringIncidentParams(**SMALL)
    rows, tables = simulate(p, seed=3, replication=0)
    return p, rows, tables


def test_the_crash_is_a_reconnection_storm_the_counters_remember(small) -> None:
    p, rows, _ = small
    row = rows[0]
    assert row["disconnected_by_crash"] == p.clients // p.servers  # node-0's share (least connections)
    assert row["reconnections"] == row["disconnected_by_crash"]  # every one came back
    assert row["connections_min_true"] == p.clients - row["disconnected_by_crash"]
    assert 0 < row["connections_dip_s"] < p.downtime  # back through the other nodes before the restart
    # messages: none lost by the model (the broker keeps them), all delivered by the end
    assert row["delivered"] <= row["published"]
    assert row["published"] - row["delivered"] < p.message_rate  # only the last second's still in flight


def test_scrapes_never_see_more_than_the_truth(small) -> None:
    _p, rows, _ = small
    for row in rows:
        assert row["connections_min_seen"] >= row["connections_min_true"]
        assert row["reconnect_rate_peak_seen"] <= row["reconnect_rate_peak_true"]
    by = {r["scrape_interval_s"]: r for r in rows}
    # a longer interval smears the storm more: rate() over 4 intervals
    assert by[60.0]["reconnect_rate_peak_seen"] < by[15.0]["reconnect_rate_peak_seen"]


def test_latency_mean_and_percentiles(small) -> None:
    _p, rows, _ = small
    row = rows[0]
    assert row["latency_p50_true_s"] < row["latency_p99_true_s"] < row["latency_max_s"]
    # the tail (messages that waited for a reconnection) is seconds; p99 and the mean are tens of ms
    assert row["latency_max_s"] > 10 * row["latency_p99_true_s"]
    assert row["latency_mean_s"] < 0.1 < row["latency_max_s"]
    # bucket interpolation: the estimate lies in the same bucket as the truth
    from sim.scenarios.q5_monitoring import LATENCY_BUCKETS
    bounds = (0.0, *LATENCY_BUCKETS)
    i = next(k for k in range(len(bounds) - 1) if bounds[k] < row["latency_p99_true_s"] <= bounds[k + 1])
    assert bounds[i] <= row["latency_p99_buckets_s"] <= bounds[i + 1]
    assert row["latency_p99_error_s"] == pytest.approx(row["latency_p99_buckets_s"] - row["latency_p99_true_s"])


def test_counters_never_decrease_and_increase_brackets_the_final_count(small) -> None:
    """Every counter and histogram series of the incident, in every scraper, never decreases; over
    the whole run, PromQL's increase() lies between the last-minus-first difference and the final
    count (extrapolated back at most to the counter's zero point), and is exact once the range
    also holds the first sample."""
    from sim.monitoring.promql import increase, series

    p, _rows, tables = small
    scrapes = tables["scrapes"]
    labels = [c for c in scrapes.columns if c not in ("replication", "scrape_interval_s", "time_s", "name", "kind", "value")]
    monotonic = scrapes[scrapes["kind"].isin(["counter", "histogram"]) & ~scrapes["name"].str.endswith("_sum")]
    checked = 0
    for _key, group in monotonic.groupby(["scrape_interval_s", "name", *labels], dropna=False):
        values = group.sort_values("time_s")["value"].tolist()
        assert values == sorted(values)
        checked += 1
    assert checked > 50
    for interval in (1.0, 15.0, 60.0):
        frame = scrapes[scrapes.scrape_interval_s == interval].drop(columns=["replication", "scrape_interval_s"], errors="ignore")
        samples = series(frame.dropna(axis=1, how="all"), "messages_published_total")[()]
        end, final = samples[-1]
        # the range (0, end] holds every sample after t = 0 (the 1 s truth scraper has one at 0)
        first_in_range = next(v for t, v in samples if t > 0)
        assert final - first_in_range - 1e-9 <= increase(samples, end, end) <= final + 1e-9
        assert final - samples[0][1] - 1e-9 <= increase(samples, end, end + interval) <= final + 1e-9
        if samples[0] == (0.0, 0.0):  # a first sample at zero stops extrapolation there: exact
            assert increase(samples, end, end + interval) == pytest.approx(final)


def test_run_is_deterministic_and_validates() -> None:
    a = sim.run("monitoring-incident", seed=4, **SMALL, scrape_intervals=(15.0,))
    b = sim.run("monitoring-incident", seed=4, **SMALL, scrape_intervals=(15.0,))
    assert a.summary.equals(b.summary)
    for name in ("scrapes", "latencies", "true_connections"):
        assert a.series[name].equals(b.series[name]), name
    assert list(a.summary["scrape_interval_s"]) == [15.0]
    with pytest.raises(ParameterError, match="horizon"):
        MonitoringIncidentParams(crash_at=250, downtime=60, horizon=300)
    with pytest.raises(ParameterError, match="strategy"):
        MonitoringIncidentParams(strategy="bogus")


def test_replications_give_confidence_intervals() -> None:
    r = sim.run("monitoring-incident", seed=1, **SMALL, scrape_intervals=(15.0,), replications=3)
    row = r.summary.iloc[0]
    assert row["replications"] == 3
    assert row["latency_p99_true_s_ci_low"] <= row["latency_p99_true_s"] <= row["latency_p99_true_s_ci_high"]
    assert set(r.series["replications"]["replication"]) == {0, 1, 2}
    assert not math.isnan(row["connections_dip_s_ci_high"])
