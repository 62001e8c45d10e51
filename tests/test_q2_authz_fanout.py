"""authz-fanout: with the scope checked, no message reaches a client without the scope."""

import pytest
from hypothesis import given, settings, strategies as st

import sim
from sim.core import ParameterError

SEED = 20261124
SMALL = dict(clients=30, duration=8.0, message_rate=10.0)


@pytest.fixture(scope="module")
def result():
    return sim.run("authz-fanout", seed=SEED, **SMALL).summary.set_index("mode")


def test_broadcast_leaks_every_other_room(result):
    b = result.loc["broadcast"]
    # every client receives every room's messages: all but 1/rooms of them are leaks
    assert b.leaked_share == pytest.approx(1 - 1 / 10, abs=0.02)


def test_unchecked_subscriptions_leak_to_snoopers_only(result):
    cf = result.loc["channel_filter"]
    assert 0 < cf.leaked_messages < result.loc["broadcast"].leaked_messages


@settings(max_examples=6, deadline=None)
@given(snoopers=st.floats(0, 1), rooms=st.integers(1, 6), nodes=st.integers(1, 3),
       algorithm=st.sampled_from(["HS256", "RS256"]))
def test_with_authorisation_on_zero_messages_reach_a_client_without_the_scope(snoopers, rooms, nodes, algorithm):
    s = sim.run("authz-fanout", seed=SEED, **SMALL, snoopers=snoopers, rooms=rooms, nodes=nodes, algorithm=algorithm,
                mode="scope_on_subscribe,scope_on_delivery").summary
    assert (s.leaked_messages == 0).all()
    assert (s.deliveries > 0).all()


def test_the_same_messages_reach_the_rightful_clients_either_way(result):
    # the check removes only the leaks: rightful deliveries are the same
    rightful = result.deliveries - result.leaked_messages
    assert rightful.nunique() == 1


def test_per_delivery_checks_cost_one_check_per_rightful_delivery(result):
    horizon = 2.0 + SMALL["duration"] + 2.0
    extra = (result.loc["scope_on_delivery"].checks_per_s - result.loc["scope_on_subscribe"].checks_per_s) * horizon
    assert extra == pytest.approx(result.loc["scope_on_delivery"].deliveries)


def test_same_seed_same_result():
    assert sim.run("authz-fanout", seed=2, **SMALL).summary.equals(sim.run("authz-fanout", seed=2, **SMALL).summary)


def test_bad_mode():
    with pytest.raises(ParameterError):
        sim.run("authz-fanout", seed=1, mode="trust")
