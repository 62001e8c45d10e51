"""Backoff strategies and real-client presets follow their formulas."""

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

from sim.components.backoff import PRESETS, STRATEGIES, Textbook, make_backoff, presets
from sim.core import ParameterError

SEED = 20261124


def delays(policy, n, since_attempt=0.05, seed=SEED):
    rnd = random.Random(seed)
    state, out, now = policy.new_state(), [], 0.0
    for _ in range(n):
        d = policy.next_delay(state, now, since_attempt, rnd.random)
        out.append(d)
        if d is None:
            break
        now += d + since_attempt
    return out


def kth_delays(policy, k, samples=4000, since_attempt=0.0):
    """``samples`` independent draws of the delay before attempt ``k`` (fresh state each time)."""
    rnd = random.Random(SEED)
    out = []
    for _ in range(samples):
        state = policy.new_state()
        for _ in range(k):
            policy.next_delay(state, 0.0, since_attempt, rnd.random)
        out.append(policy.next_delay(state, 0.0, since_attempt, rnd.random))
    return np.array(out)


@settings(derandomize=True, deadline=None, max_examples=200)
@given(name=st.sampled_from(STRATEGIES), base=st.floats(0.001, 10), multiplier=st.floats(1, 5),
       cap_factor=st.floats(1, 1000), first_exponent=st.integers(0, 3), attempts=st.integers(1, 60))
def test_textbook_delays_are_never_negative_nor_above_the_cap(name, base, multiplier, cap_factor, first_exponent,
                                                              attempts):
    policy = Textbook(name, base, multiplier, base * cap_factor, first_exponent=first_exponent)
    for d in delays(policy, attempts):
        assert 0 <= d <= policy.cap


@settings(derandomize=True, deadline=None, max_examples=100)
@given(name=st.sampled_from(PRESETS), since=st.floats(0, 30), attempts=st.integers(1, 40))
def test_preset_delays_are_never_negative_nor_above_their_ceiling(name, since, attempts):
    values = presets()[name]
    seconds = [v for k, v in values.items() if k.endswith("_s") and isinstance(v, (int, float))]
    ceiling = max(seconds + list(values.get("delays_s", [])))
    for d in delays(make_backoff(name), attempts, since_attempt=since):
        if d is not None:
            assert 0 <= d <= ceiling * 1.2 + 1e-9  # gRPC's +20 % jitter may exceed its cap


@pytest.mark.parametrize("k", [0, 3, 8])
@pytest.mark.parametrize("name, dist", [
    ("full_jitter", lambda v: stats.uniform(0, v)),
    ("equal_jitter", lambda v: stats.uniform(v / 2, v / 2)),
])
def test_jittered_delays_follow_their_distribution(name, dist, k):
    policy = Textbook(name, 0.5, 2.0, 30.0)
    sample = kth_delays(policy, k)
    v = policy.ceiling(k)
    assert stats.kstest(sample, dist(v).cdf).pvalue > 0.001
    half = stats.t.ppf(0.9995, len(sample) - 1) * sample.std(ddof=1) / math.sqrt(len(sample))
    assert abs(sample.mean() - dist(v).mean()) < half  # 99.9 % interval


def test_exponential_without_jitter_doubles_up_to_the_cap():
    assert delays(Textbook("exponential", 1.0, 2.0, 10.0), 6) == [1, 2, 4, 8, 10, 10]
    # the AWS blog's contention experiment: first backoff computed with attempt number 1
    assert delays(Textbook("exponential", 0.005, 2.0, 2.0, first_exponent=1), 3) == [0.01, 0.02, 0.04]


def test_decorrelated_jitter_stays_between_base_and_three_times_previous():
    policy = Textbook("decorrelated_jitter", 1.0, 2.0, 1000.0)
    out = delays(policy, 200)
    previous = 1.0
    for d in out:
        assert 1.0 <= d <= 3 * previous
        previous = d


def test_grpc_first_attempt_immediate_first_backoff_unjittered_then_within_20_percent():
    policy = make_backoff("grpc")
    rnd = random.Random(SEED)
    for since in (0.0, 0.3):
        state = policy.new_state()
        assert policy.next_delay(state, 0, since, rnd.random) == 0.0          # ConnectWithBackoff tries at once
        assert policy.next_delay(state, 0, since, rnd.random) == pytest.approx(1.0 - since)  # INITIAL_BACKOFF
        backoff = 1.0
        for _ in range(15):
            backoff = min(backoff * 1.6, 120.0)
            d = policy.next_delay(state, 0, since, rnd.random) + since
            assert 0.8 * backoff <= d <= 1.2 * backoff
    assert policy.connect_timeout == 20.0


def test_socketio_backo2_whole_milliseconds_within_randomization_and_cap():
    sample = kth_delays(make_backoff("socketio"), 0)
    assert sample.min() >= 0.5 and sample.max() <= 1.5
    assert np.allclose(sample * 1000, np.round(sample * 1000))
    assert (kth_delays(make_backoff("socketio"), 6) <= 5.0).all()  # cap applied after jitter


def test_aws_standard_gives_up_after_three_attempts():
    out = delays(make_backoff("aws_standard"), 10)
    assert out[0] == 0.0 and 0 <= out[1] <= 1.0 and 0 <= out[2] <= 2.0 and out[3] is None


def test_firebase_first_reconnect_after_a_long_connection_is_immediate_and_resets_only_after_30_s():
    policy = make_backoff("firebase_rtdb")
    rnd = random.Random(SEED)
    state = policy.new_state()
    assert policy.next_delay(state, 100.0, 100.0, rnd.random) == 0.0  # last attempt long ago
    grown = [policy.next_delay(state, 0, 0.0, rnd.random) for _ in range(20)]
    assert max(grown) <= 300.0 and state.value > 1.0
    policy.connected(state, 0.0)
    policy.disconnected(state, connected_for=10.0)   # too short: the delay keeps growing
    assert state.value > 1.0
    policy.disconnected(state, connected_for=31.0)   # stable: back to 1 s
    assert math.isnan(state.value)


def test_tables_and_ably():
    assert delays(make_backoff("signalr"), 10) == [0.0, 2.0, 10.0, 30.0, None]
    assert delays(make_backoff("phoenix"), 11) == [0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 5.0]
    first = kth_delays(make_backoff("ably"), 0, samples=500)
    assert first.min() >= 12.0 and first.max() <= 15.0  # 15 s x (1 - 0.2 random)


def test_every_preset_cites_a_source():
    for name, values in presets().items():
        assert values["source"].startswith("https://"), name


@pytest.mark.parametrize("kwargs, parameter", [
    (dict(name="sometimes"), "strategy"),
    (dict(name="exponential", base=-1.0), "backoff_base"),
    (dict(name="exponential", base=2.0, cap=1.0), "backoff_cap"),
    (dict(name="exponential", multiplier=0.5), "backoff_multiplier"),
])
def test_bad_backoff_parameters_name_the_parameter(kwargs, parameter):
    name = kwargs.pop("name")
    with pytest.raises(ParameterError) as err:
        make_backoff(name, **kwargs)
    assert err.value.parameter == parameter
