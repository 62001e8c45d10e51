"""Checks of notebook 05 (real-time monitoring)."""

from __future__ import annotations

import math

import numpy as np

from sim.exercises import NOT_ANSWERED, call, close, exercise, not_yet, passed
from sim.monitoring.promql import histogram_quantile, increase

#: Exercise 2's example: 98 messages in (0, 25 ms], 2 in (250, 500 ms] (le in seconds, cumulative counts).
EX2_BUCKETS = [(0.025, 98), (0.25, 98), (0.5, 100), (math.inf, 100)]


def _scraped_counter(seed: int, interval: float = 15.0, horizon: float = 300.0):
    """A counter scraped every ``interval`` s with jittered scrape times and bursty increments."""
    rng = np.random.default_rng(seed)
    times = np.arange(interval, horizon + 1e-9, interval) + rng.uniform(-1.0, 1.0, int(horizon // interval))
    values = np.cumsum(rng.poisson(rng.choice([5.0, 80.0], size=len(times))).astype(float)) + 3.0
    return [(float(t), float(v)) for t, v in zip(times, values)]


@exercise("05.1", "increase() by hand", "my_increase")
def increase_by_hand(fn, seed=5):
    counter = _scraped_counter(seed)
    cases = [([(t, float(t)) for t in range(0, 61, 15)], 60, 60), ([(30, 10.0), (45, 25.0), (60, 40.0)], 60, 60),
             ([(15, 1.0), (30, 16.0), (45, 31.0), (60, 46.0)], 60, 60), ([(0, 0.0), (10, 10.0), (20, 20.0)], 40, 50),
             ([(10, 1.0)], 60, 60), (counter, 300.0, 120.0), (counter, 200.0, 60.0)]
    answers = [call(fn, list(c[0]), c[1], c[2], name="my_increase") for c in cases]
    if all(a is None for a in answers):
        raise not_yet(NOT_ANSWERED)
    for (samples, at, range_s), a in zip(cases, answers):
        if not close(a, increase(samples, at, range_s)):
            raise not_yet(f"{len(samples)} samples, at = {at:g}, range = {range_s:g} s: got {a!r}, "
                          "not what Prometheus computes (extrapolation towards each edge?)")
    return passed("the same numbers as Prometheus' extrapolatedRate")


@exercise("05.2", "histogram_quantile by hand", "my_histogram_quantile, my_p99_of_the_example")
def quantile_by_hand(fn, p99, seed=5):
    rng = np.random.default_rng(seed)
    latencies = np.concatenate([rng.exponential(0.02, 400), rng.uniform(0.3, 2.0, 12)])
    bounds = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
    observed = [(le, int((latencies <= le).sum())) for le in bounds] + [(math.inf, len(latencies))]
    table = [(0.1, 10), (0.5, 30), (1.0, 40), (math.inf, 50)]
    cases = [(0.5, table), (0.05, table), (0.95, table), (0.99, EX2_BUCKETS), (0.99, observed), (0.5, observed)]
    answers = [call(fn, q, list(b), name="my_histogram_quantile") for q, b in cases]
    if all(a is None for a in answers) and p99 is None:
        raise not_yet(NOT_ANSWERED)
    for (q, b), a in zip(cases, answers):
        if not close(a, histogram_quantile(q, b)):
            raise not_yet(f"q = {q}: got {a!r}, not what PromQL gives (which bucket holds rank q × total?)")
    want = histogram_quantile(0.99, EX2_BUCKETS)
    if not close(p99, want, rel=1e-6):
        raise not_yet("the function is right; the example's p99 is not yet" +
                      ("" if p99 is None else " (in seconds?)"))
    return passed(f"p99 = {want * 1000:.0f} ms, though no message took between 10 and 400 ms")
