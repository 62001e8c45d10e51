"""The solutions of notebook 07 (client resilience) give the right answers."""

import math
import random

import numpy as np
import pytest
from scipy import integrate, stats

from sim.components.long_polling import polls_per_message

SEED = 20261124  # the test suite's one seed, as in test_queue.py


@pytest.fixture(scope="module")
def q7(load_solutions):
    return load_solutions("07_client_resilience_solutions")


# --- exercise 1: full jitter ----------------------------------------------------------------------
@pytest.mark.parametrize("u", [0.0, 0.25, 0.5, 0.999])
@pytest.mark.parametrize("attempt", [0, 1, 3, 5, 8, 2000])
def test_full_jitter_equals_the_simulators_delay_for_the_same_uniform_number(q7, attempt, u):
    mine = q7.full_jitter(attempt, 0.5, 20.0, lambda: u)
    theirs = q7.textbook_full_jitter(attempt, 0.5, 20.0, lambda: u)
    assert mine == theirs  # exact: the same formula on the same number (attempt 2000: the cap, no overflow)
    assert mine == u * min(20.0, 0.5 * 2.0 ** min(attempt, 100))


@pytest.mark.parametrize("attempt", [0, 3, 8])
def test_full_jitter_has_the_textbook_distribution(q7, attempt):
    mine, theirs = q7.exercise_1_samples(attempt, base=1.0, cap=30.0, n=5_000, seed=SEED)
    ceiling = min(30.0, 2.0**attempt)
    assert 0 <= mine.min() and mine.max() < ceiling
    assert stats.kstest(mine, stats.uniform(0, ceiling).cdf).pvalue > 0.001
    assert stats.ks_2samp(mine, theirs).pvalue > 0.001
    # 99.9 % confidence interval of the mean contains the uniform law's mean, ceiling / 2
    half = stats.t.ppf(0.9995, len(mine) - 1) * mine.std(ddof=1) / math.sqrt(len(mine))
    assert abs(mine.mean() - ceiling / 2) < half


def test_full_jitter_draws_one_uniform_number_per_call(q7):
    rnd = random.Random(SEED)
    calls = []

    def u():
        calls.append(1)
        return rnd.random()

    q7.full_jitter(4, 1.0, 30.0, u)
    assert len(calls) == 1


# --- exercise 2: admission rate -------------------------------------------------------------------
def test_exercise_2_is_the_smallest_rate_of_the_grid_that_meets_the_target(q7):
    answer = q7.exercise_2(seed=SEED)
    assert answer in q7.RATE_GRID
    assert q7.time_to_all_reconnected(answer, seed=SEED) <= q7.TARGET_S
    for rate in q7.RATE_GRID[: q7.RATE_GRID.index(answer)]:
        assert not q7.time_to_all_reconnected(rate, seed=SEED) <= q7.TARGET_S
    # the token bucket makes anything below this rate impossible, whatever the backoff does
    storm = q7.STORM
    affected = len(range(0, storm["clients"], storm["servers"]))
    bound = q7.admission_lower_bound(affected, storm["admission_burst"], q7.TARGET_S, storm["downtime"])
    assert answer >= bound
    assert not q7.time_to_all_reconnected(math.floor(bound) - 1, seed=SEED) <= q7.TARGET_S


def test_exercise_2_more_capacity_cannot_beat_the_restart(q7):
    # with an admission rate far above the herd, nobody is back before the server restarts
    assert q7.time_to_all_reconnected(10_000, seed=SEED) >= q7.STORM["downtime"]


# --- exercise 3: long polling ---------------------------------------------------------------------
@pytest.mark.parametrize("rate", [0.001, 0.02, 0.2, 2.0, 20.0, 500.0])
@pytest.mark.parametrize("rtt, hold", [(0.1, 25.0), (0.04, 5.0), (0.3, 30.0)])
def test_requests_per_message_formula(q7, rate, rtt, hold):
    value = q7.requests_per_message(rate, rtt, hold)
    assert value == pytest.approx(polls_per_message(rate, rtt, hold), rel=1e-12)
    # the mean hold computed by integrating the survival function of min(Exp(rate), T)
    hold_mean, _ = integrate.quad(lambda t: math.exp(-rate * t), 0, hold, epsabs=1e-13, epsrel=1e-12)
    assert value == pytest.approx(1 / (rate * (rtt + math.exp(-rate * rtt) * hold_mean)), rel=1e-9)
    assert value >= 1 / (1 + rate * rtt)  # the hold never outlasts the wait for the next message


@pytest.mark.parametrize("rate", [1e-4, 0.04, 1.0])
def test_requests_per_message_limits(q7, rate):
    # no round trip: every message needs its own poll, plus the empty answers of hold timeouts
    assert q7.requests_per_message(rate, 0.0, 25.0) == pytest.approx(1 / (1 - math.exp(-rate * 25.0)), rel=1e-12)
    # a round trip so long that messages always wait: one answer per round trip carries rate * rtt of them
    rtt = 1e4 / rate
    assert q7.requests_per_message(rate, rtt, 25.0) == pytest.approx(1 / (rate * rtt), rel=1e-12)


@pytest.mark.parametrize("rate, horizon", [(0.02, 50_000.0), (0.2, 5_000.0), (20.0, 500.0)])
def test_requests_per_message_matches_the_simulated_components(q7, rate, horizon):
    mean, low, high = q7.simulated_polls_per_message(rate, 0.1, 25.0, seed=SEED, horizon=horizon, confidence=0.999)
    assert low <= q7.requests_per_message(rate, 0.1, 25.0) <= high
    assert np.isfinite([mean, low, high]).all()
