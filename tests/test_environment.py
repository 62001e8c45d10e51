"""The calendar lane (sim.core.environment): the same order of events as plain simpy, always."""

from __future__ import annotations

import time

import simpy
from hypothesis import given, settings, strategies as st

from sim.core.environment import Environment, RealtimeEnvironment

# delays on a coarse grid, so that many events fall due at the same instant and ties are tested
delays = st.integers(0, 40).map(lambda k: k * 0.05)
plans = st.lists(st.tuples(st.booleans(), delays, st.lists(delays, max_size=3)), min_size=1, max_size=40)


def _trace(env: simpy.Environment, plan, lane: bool, until: float | None) -> list:
    """Each item of ``plan`` schedules a callback (in the lane when ``lane`` and the item says so, else
    a simpy timeout) that, when it fires, schedules its follow-ups; also a process that ticks."""
    fired = []

    def later(delay, name, then):
        if lane and name[1]:
            env.call_later(delay, fire, (name, then))
        else:
            env.timeout(delay, (name, then)).callbacks.append(lambda event: fire(event.value))

    def fire(item):
        name, then = item
        fired.append((env.now, name[0]))
        for k, delay in enumerate(then):
            later(delay, (f"{name[0]}.{k}", not name[1]), [])

    def ticker(env):
        while True:
            fired.append((env.now, "tick"))
            yield env.timeout(0.25)

    env.process(ticker(env))
    for i, (in_lane, delay, then) in enumerate(plan):
        later(delay, (str(i), in_lane), then)
    env.run(until=until)
    return fired


@settings(max_examples=150, deadline=None)
@given(plans, st.sampled_from([0.5, 1.0, 2.05, 3.0]))
def test_the_lane_fires_in_exactly_simpys_order(plan, until):
    assert _trace(Environment(), plan, True, until) == _trace(simpy.Environment(), plan, False, until)


def test_run_until_stops_before_a_lane_entry_due_at_the_same_instant_and_resumes_it():
    env = Environment()
    fired = []
    env.call_later(1.0, fired.append, "a")
    env.call_later(2.0, fired.append, "b")
    env.run(until=1.0)
    assert fired == [] and env.now == 1.0  # simpy's until is urgent: it beats what is due at 1.0
    assert env.peek() == 1.0
    env.run(until=1.5)
    assert fired == ["a"]
    env.run()
    assert fired == ["a", "b"] and env.now == 2.0
    assert env.calendar() == []


def test_a_negative_delay_is_refused_like_simpys():
    env = Environment()
    try:
        env.call_later(-1.0, print)
    except ValueError as exc:
        assert "Negative delay" in str(exc)
    else:
        raise AssertionError("a negative delay was accepted")


def test_the_wall_clock_variant_fires_the_same_events_and_waits_for_the_clock():
    plan = [(True, 0.4, [0.2, 0.0]), (False, 0.4, [0.6]), (True, 1.0, [])]
    start = time.monotonic()
    realtime = _trace(RealtimeEnvironment(factor=0.05), plan, True, 2.0)
    elapsed = time.monotonic() - start
    assert realtime == _trace(simpy.Environment(), plan, False, 2.0)
    assert elapsed >= 0.05 * 1.75  # the last tick, at 1.75 simulated s, waited for its wall instant
