"""The cancellable Timer and Deadlines, the shared queue of same-length timers (connect timeouts)."""

import math
import random

import simpy

from sim.core.timer import Deadlines, Timer, deadlines


class Waiter:
    __slots__ = ("deadline", "name")

    def __init__(self, name):
        self.name = name
        self.deadline = math.nan


def test_deadlines_fire_when_timers_would_and_skip_the_cancelled():
    rnd = random.Random(5)
    starts = sorted(rnd.uniform(0, 50) for _ in range(300))
    cancel_after = {i: rnd.uniform(0, 15) for i in range(300) if rnd.random() < 0.7}

    def run(kind):
        env = simpy.Environment()
        fired = []
        queue = Deadlines(env, 10.0, lambda w: fired.append((w.name, env.now)))
        for i, start in enumerate(starts):
            def begin(_e, i=i):
                if kind == "timer":
                    timer = Timer(env, 10.0, lambda: fired.append((i, env.now)))
                    cancel = timer.cancel
                else:
                    w = Waiter(i)
                    queue.add(w)
                    cancel = lambda: setattr(w, "deadline", math.nan)  # noqa: E731
                if i in cancel_after:
                    env.timeout(cancel_after[i]).callbacks.append(lambda _e: cancel())
            env.timeout(start).callbacks.append(begin)
        env.run()
        return fired, next(env._eid)

    with_timers, timer_events = run("timer")
    with_deadlines, deadline_events = run("deadlines")
    assert with_deadlines == with_timers  # same owners, same times (exactly), same order
    assert all(t == starts[i] + 10.0 for i, t in with_deadlines)
    assert deadline_events < timer_events - 100  # the cancelled ones cost no event


def test_deadlines_due_at_one_instant_fire_in_the_order_they_were_set():
    env = simpy.Environment()
    fired = []
    queue = deadlines(env, 2.5, lambda w: fired.append(w.name), "deadline")
    assert deadlines(env, 2.5, queue.callback, "deadline") is queue  # one queue per env, delay and callback
    waiters = [Waiter(i) for i in range(5)]
    for w in waiters:
        queue.add(w)
    waiters[2].deadline = math.nan  # cancelled
    env.run()
    assert fired == [0, 1, 3, 4] and env.now == 2.5
    assert all(math.isnan(w.deadline) for w in waiters)


def test_a_deadline_set_again_in_the_same_instant_fires_once():
    env = simpy.Environment()
    fired = []
    queue = Deadlines(env, 1.0, lambda w: fired.append(env.now))
    w = Waiter("a")
    queue.add(w)
    queue.add(w)  # e.g. a handshake settled and retried in the same instant
    env.run()
    assert fired == [1.0]
