"""Solutions to the exercises of ``notebooks/05_monitoring.ipynb``.

Plain functions, so that tests can call them; each docstring says what it returns.
Run this file to print the answers: ``python notebooks/solutions/05_monitoring_solutions.py``.
"""

from __future__ import annotations

import math


# --- Exercise 1: increase() by hand ----------------------------------------------------------------
def my_increase(samples, at, range_s):
    """PromQL ``increase(x[range_s])`` at ``at`` for a counter without resets (Prometheus 3 rules:
    the range is ``(at - range_s, at]``, timestamps in whole milliseconds)."""
    end = round(at * 1000)
    start = end - round(range_s * 1000)
    points = [(round(t * 1000), v) for t, v in samples if start < round(t * 1000) <= end]
    if len(points) < 2:
        return math.nan
    (t0, v0), (t1, v1) = points[0], points[-1]
    result = v1 - v0
    sampled = (t1 - t0) / 1000
    average = sampled / (len(points) - 1)
    to_start = (t0 - start) / 1000
    to_end = (end - t1) / 1000
    if to_start >= 1.1 * average:
        to_start = average / 2
    if result > 0 and v0 >= 0:
        to_start = min(to_start, sampled * v0 / result)  # never extrapolate below zero
    if to_end >= 1.1 * average:
        to_end = average / 2
    return result * (sampled + to_start + to_end) / sampled


# --- Exercise 2: histogram_quantile() by hand --------------------------------------------------------
def my_histogram_quantile(q, buckets):
    """PromQL ``histogram_quantile(q, ...)`` on sorted cumulative buckets ``[(le, count), ...]``
    ending with ``(inf, total)``."""
    total = buckets[-1][1]
    if total == 0:
        return math.nan
    rank = q * total
    for i, (le, count) in enumerate(buckets):
        if count >= rank:
            break
    if math.isinf(buckets[i][0]):
        return buckets[-2][0]  # in the +Inf bucket: the highest finite bound
    lower, below = (buckets[i - 1][0], buckets[i - 1][1]) if i > 0 else (0.0, 0.0)
    if count == below:  # an empty first bucket and rank 0: 0/0, NaN as in Prometheus (Go floats)
        return math.nan
    return lower + (le - lower) * (rank - below) / (count - below)


EXAMPLE_BUCKETS = [(0.025, 98), (0.25, 98), (0.5, 100), (math.inf, 100)]


def p99_of_the_example() -> float:
    """98 messages in (0, 25 ms], 2 in (250, 500 ms]: rank 99 is half-way through the (0.25, 0.5] bucket."""
    return my_histogram_quantile(0.99, EXAMPLE_BUCKETS)


# --- What the notebook's answer cells hold, by exercise (python -m sim grade's tests use it) ----------
def answers(exercise: str, seed: int = 1) -> dict:
    """The names the notebook's answer cells define for ``exercise`` (``"05.1"``), solved."""
    return {"05.1": {"my_increase": my_increase},
            "05.2": {"my_histogram_quantile": my_histogram_quantile,
                     "my_p99_of_the_example": p99_of_the_example()}}[exercise]


if __name__ == "__main__":
    print("exercise 1:", my_increase([(t, float(t)) for t in range(0, 61, 15)], 60, 60))
    print("exercise 2: p99 =", p99_of_the_example(), "s")
