"""Backoff strategies and real-client presets follow their formulas."""

import math
import random

import numpy as np
import pytest

import sim
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


# --- the real clients' own code (issue 16) ---------------------------------------------------

def test_aws_retry_quota_is_shared_by_every_call_of_one_sdk_client_and_timeouts_cost_more():
    """botocore retries/standard.py RetryQuotaChecker: 5 tokens a retry, 10 after a timeout, 500 per client."""
    for failure, cost in (("refused", 5), ("timeout", 10)):
        policy = make_backoff("aws_standard")
        rnd = random.Random(SEED)
        granted = 0
        for _ in range(200):  # 200 calls of the same client, each failing every attempt
            state = policy.new_state()
            policy.next_delay(state, 0.0, 0.0, rnd.random)  # the first attempt is free
            while True:
                state.failure = failure
                if policy.next_delay(state, 0.0, 0.0, rnd.random) is None:
                    break
                granted += 1
        assert granted == 500 // cost  # a per-call quota would grant 2 retries to each of the 200 calls


def test_aws_success_releases_the_last_acquisition_or_one_token():
    policy = make_backoff("aws_standard")
    rnd = random.Random(SEED)
    state = policy.new_state()
    policy.next_delay(state, 0.0, 0.0, rnd.random)
    state.failure = "refused"
    policy.next_delay(state, 0.0, 0.0, rnd.random)
    state.failure = "timeout"
    policy.next_delay(state, 0.0, 0.0, rnd.random)
    assert policy.quota.available == 500 - 5 - 10
    policy.connected(state, 0.0)  # the call succeeds: its last acquisition (10) comes back
    assert policy.quota.available == 495
    for _ in range(10):  # calls that needed no retry give back 1 token each, up to the capacity
        policy.next_delay(state, 0.0, 0.0, rnd.random)
        policy.connected(state, 0.0)
    assert policy.quota.available == 500


def test_aws_timeouts_seen_by_resilient_clients_cost_ten_tokens():
    """A silent host: every attempt times out; one shared quota grants 500 / 10 retries in all."""
    row = sim.run("reconnect-storm", seed=SEED, clients=400, servers=1, strategy="aws_standard", crash="host",
                  heartbeat_interval=5.0, downtime=200.0, horizon=300.0).summary.iloc[0]
    assert row.timed_out_attempts == row.attempts == row.affected + 500 // 10
    row = sim.run("reconnect-storm", seed=SEED, clients=400, servers=1, strategy="aws_standard",
                  downtime=200.0, horizon=300.0).summary.iloc[0]
    assert row.refused_attempts == row.attempts == row.affected + 500 // 5


def test_google_api_core_gives_up_before_sleeping_past_the_deadline():
    """retry_base._retry_error_helper: raise if now + next_sleep > deadline; no attempt starts after it."""
    policy = make_backoff("google_api_core")
    given_up_in_time = 0
    for seed in range(300):
        rnd = random.Random(seed)
        state, now, since = policy.new_state(), 0.0, 0.05
        while True:
            d = policy.next_delay(state, now, since, rnd.random)
            if d is None:
                break
            now += d
            assert now <= 120.0  # the attempt starts before the deadline
            now += since  # the attempt fails after `since`
        given_up_in_time += now <= 120.0 + since
    assert given_up_in_time == 300


def ably_delays(policy, first_failures, rnd, *, lost=True, since=0.05):
    """Delays of one Ably connection that fails every attempt (``since`` s each), starting at t = 0."""
    state = policy.new_state()
    if lost:
        policy.connected(state, -100.0)
        policy.disconnected(state, 100.0)
    now, out = 0.0, []
    for _ in range(first_failures):
        d = policy.next_delay(state, now, since, rnd.random)
        out.append((now, d))
        now += d + since
    return out


def test_ably_retries_at_once_after_losing_an_established_connection_then_grows_its_coefficient():
    policy = make_backoff("ably")
    rnd = random.Random(SEED)
    for lost in (True, False):
        per_count = {n: [] for n in range(1, 6)}
        for _ in range(400):
            delays_ = [d for _, d in ably_delays(policy, 5, rnd, lost=lost)]
            if lost:
                assert delays_[0] == 0.0  # retryImmediately; that retry is disconnectedRetryCount 1
                counts = range(2, 6)
                delays_ = delays_[1:]
            else:
                counts = range(1, 5)
            for n, d in zip(counts, delays_):
                per_count[n].append(d)
        for n, sample in per_count.items():
            if not sample:
                continue
            coefficient = min((n + 2) / 3, 2)
            sample = np.array(sample) / (15.0 * coefficient)
            # 1 - 0.2 random(): uniform on (0.8, 1]; a lost coefficient moves it out of that range
            assert sample.min() >= 0.8 - 1e-12 and sample.max() <= 1.0 + 1e-12
            assert stats.kstest(sample, stats.uniform(0.8, 0.2).cdf).pvalue > 0.001


def test_ably_is_suspended_after_the_ttl_and_then_retries_every_30_s_flat():
    policy = make_backoff("ably")
    rnd = random.Random(SEED)
    for _ in range(100):
        history = ably_delays(policy, 12, rnd)
        suspended = [(t, d) for t, d in history if t + d > 120.0]
        first_t, first_d = suspended[0]
        assert first_t + first_d == pytest.approx(120.0 + 30.0)  # the suspend timer cancels the pending retry
        assert [d for _, d in suspended[1:]] == [30.0] * (len(suspended) - 1)  # no coefficient, no jitter


def test_ably_reconnect_storm_retries_in_the_second_of_the_crash():
    result = sim.run("reconnect-storm", seed=SEED, clients=400, strategy="ably", downtime=5.0)
    row, per_second = result.summary.iloc[0], result.series["per_second"]
    assert per_second.set_index("time_s").loc[10.0, "attempts"] == row.affected  # all retry at once


@pytest.mark.parametrize("attempt, share_at_cap", [(2, 0.3), (3, 0.9), (4, 1.0)])
def test_socketio_caps_after_the_jitter_so_many_delays_are_exactly_the_cap(attempt, share_at_cap):
    """backo2: ms = 1000 * 2^attempt -/+ floor(r * 0.5 * ms), then min(ms, 5000): at the cap there is no jitter."""
    sample = kth_delays(make_backoff("socketio"), attempt, samples=4000)
    n = len(sample)
    at_cap = float(np.mean(sample == 5.0))
    half = stats.norm.ppf(0.9995) * math.sqrt(max(share_at_cap * (1 - share_at_cap), 1e-12) / n) + 1 / n
    assert abs(at_cap - share_at_cap) <= half  # a cap applied before the jitter puts none exactly at 5 s
    assert sample.max() <= 5.0


def test_decorrelated_jitter_draws_uniformly_between_base_and_three_times_the_previous_delay():
    base = 1.0
    policy = Textbook("decorrelated_jitter", base, 2.0, 1e12)
    normalised = []
    for seed in range(200):
        out = delays(policy, 20, seed=seed)
        previous = base
        for d in out:
            normalised.append((d - base) / (3 * previous - base))
            previous = d
    sample = np.array(normalised)
    assert stats.kstest(sample, stats.uniform(0, 1).cdf).pvalue > 0.001  # a narrower draw fails here
    half = stats.t.ppf(0.9995, len(sample) - 1) * sample.std(ddof=1) / math.sqrt(len(sample))
    assert abs(sample.mean() - 0.5) < half
