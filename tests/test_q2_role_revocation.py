"""role-revocation (2B): what each policy leaks after a revocation, and what it costs."""

import pytest
from hypothesis import given, settings, strategies as st

import sim
from sim.core import ParameterError

SEED = 20261124
SMALL = dict(users=20, revoked_users=6, horizon=400.0, revoke_from=50.0, revoke_to=150.0)


@pytest.fixture(scope="module")
def result():
    return sim.run("role-revocation", seed=SEED, **SMALL).summary.set_index("policy")


def test_per_message_checks_leak_nothing_and_cost_one_check_per_delivery(result):
    pm = result.loc["per_message"]
    assert pm.leaked_messages == 0 and pm.exposure_window_s == 0
    # about users x message_rate lookups per second, far more than any other policy
    assert pm.checks_per_s > 0.8 * SMALL["users"] * 1.0
    assert pm.checks_per_s > 20 * max(result.drop(index="per_message").checks_per_s)


def test_push_bounds_the_exposure_by_the_push_delay(result):
    assert result.loc["push"].max_exposure_s <= 0.5 + 1e-9


def test_token_expiry_bounds_the_exposure_by_one_token_lifetime(result):
    te = result.loc["token_expiry"]
    assert 0 < te.max_exposure_s <= 300.0  # token_ttl
    assert te.leaked_messages < result.loc["connect_only"].leaked_messages


def test_connect_only_leaves_a_window_as_long_as_the_connection(result):
    co = result.loc["connect_only"]
    # connections last 1800 s on average, longer than the run: most revoked users still receive at the end
    assert co.still_exposed_at_end >= SMALL["revoked_users"] // 2
    assert co.exposure_window_s > 0.5 * (SMALL["horizon"] - SMALL["revoke_to"])


@settings(max_examples=5, deadline=None)
@given(ttl=st.sampled_from([60.0, 120.0, 240.0]), delay=st.floats(0.0, 2.0))
def test_bounds_hold_for_other_lifetimes_and_delays(ttl, delay):
    s = sim.run("role-revocation", seed=SEED, **SMALL, policy="token_expiry,push", token_ttl=ttl,
                refresh_margin=ttl / 4, push_delay=delay).summary.set_index("policy")
    assert s.loc["token_expiry"].max_exposure_s <= ttl
    assert s.loc["push"].max_exposure_s <= delay + 1e-9


def test_rs256_tokens_work_the_same():
    hs = sim.run("role-revocation", seed=SEED, **SMALL, policy="push").summary
    rs = sim.run("role-revocation", seed=SEED, **SMALL, policy="push", algorithm="RS256").summary
    assert hs.leaked_messages.iloc[0] == rs.leaked_messages.iloc[0]


def test_same_seed_same_result():
    a = sim.run("role-revocation", seed=4, **SMALL)
    b = sim.run("role-revocation", seed=4, **SMALL)
    assert a.summary.equals(b.summary)


def test_bad_parameters():
    for bad in (dict(policy="trust_me"), dict(revoked_users=99), dict(refresh_margin=400.0), dict(revoke_to=900.0)):
        with pytest.raises(ParameterError):
            sim.run("role-revocation", seed=1, **bad)


def test_replications_give_confidence_intervals():
    s = sim.run("role-revocation", seed=SEED, **SMALL, policy="connect_only,push", replications=3).summary
    assert (s.replications == 3).all()
    co = s.set_index("policy").loc["connect_only"]
    assert co.exposure_window_s_ci_low <= co.exposure_window_s <= co.exposure_window_s_ci_high
