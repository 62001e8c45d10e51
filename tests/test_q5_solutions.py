"""The solutions of notebook 05 (monitoring) give PromQL's answers."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.monitoring.promql import histogram_quantile, increase


@pytest.fixture(scope="module")
def q5(load_solutions):
    return load_solutions("05_monitoring_solutions")


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(st.integers(0, 40), min_size=1, max_size=30), interval=st.sampled_from([1.0, 15.0, 60.0]),
       start=st.integers(0, 5), at_extra=st.floats(0, 90), range_s=st.sampled_from([30.0, 60.0, 120.0, 300.0]))
def test_my_increase_equals_promql(q5, steps, interval, start, at_extra, range_s):
    values, v = [], float(start * 7)
    for s in steps:
        v += s
        values.append(v)
    samples = [((k + start) * interval, x) for k, x in enumerate(values)]
    at = samples[-1][0] + round(at_extra, 3)
    mine, theirs = q5.my_increase(samples, at, range_s), increase(samples, at, range_s)
    assert (math.isnan(mine) and math.isnan(theirs)) or mine == pytest.approx(theirs, rel=1e-12, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(counts=st.lists(st.integers(0, 50), min_size=1, max_size=8), q=st.floats(0, 1))
def test_my_histogram_quantile_equals_promql(q5, counts, q):
    bounds = [0.01 * 2**i for i in range(len(counts))]
    cumulative, total = [], 0
    for b, n in zip(bounds, counts):
        total += n
        cumulative.append((b, total))
    buckets = [*cumulative, (math.inf, total + 3)]
    mine, theirs = q5.my_histogram_quantile(q, buckets), histogram_quantile(q, buckets)
    assert (math.isnan(mine) and math.isnan(theirs)) or mine == pytest.approx(theirs, rel=1e-12)


def test_the_example_p99(q5):
    assert q5.p99_of_the_example() == pytest.approx(0.375)
    assert q5.p99_of_the_example() == pytest.approx(histogram_quantile(0.99, q5.EXAMPLE_BUCKETS))
