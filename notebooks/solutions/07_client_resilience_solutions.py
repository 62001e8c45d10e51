"""Solutions to the exercises of ``notebooks/07_client_resilience.ipynb``.

Plain functions, so that tests can call them; each docstring says what it returns.
Run this file to print the answers: ``python notebooks/solutions/07_client_resilience_solutions.py``.
"""

from __future__ import annotations

import math
import random
from typing import Callable

import numpy as np

import sim
from sim.components.backoff import Textbook


# --- Exercise 1: full jitter --------------------------------------------------------------------
def full_jitter(attempt: int, base: float, cap: float, u: Callable[[], float], multiplier: float = 2.0) -> float:
    """Delay before retry number ``attempt`` (0 for the first retry) with "full jitter":
    ``U(0, min(cap, base * multiplier ** attempt))``, drawing the uniform number with ``u()``.

    The ceiling is computed without overflow: once the power passes the cap, it is the cap.
    """
    if multiplier > 1 and attempt * math.log(multiplier) >= math.log(cap / base):
        ceiling = cap
    else:
        ceiling = min(cap, base * multiplier**attempt)
    return u() * ceiling


def textbook_full_jitter(attempt: int, base: float, cap: float, u: Callable[[], float]) -> float:
    """The simulator's own delay for the same retry: ``Textbook("full_jitter", base, 2, cap)``,
    asked for its delay when ``attempt`` attempts of the episode are already made."""
    policy = Textbook("full_jitter", base, 2.0, cap)
    state = policy.new_state()
    state.attempt = attempt
    return policy.next_delay(state, 0.0, 0.0, u)


def exercise_1_samples(attempt: int, base: float = 1.0, cap: float = 30.0, n: int = 5_000,
                       seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``n`` delays from :func:`full_jitter` and ``n`` from :func:`textbook_full_jitter`, each with
    its own seeded stream of uniform numbers (independent samples of the same law)."""
    mine, theirs = random.Random(seed).random, random.Random(seed + 1).random
    return (np.array([full_jitter(attempt, base, cap, mine) for _ in range(n)]),
            np.array([textbook_full_jitter(attempt, base, cap, theirs) for _ in range(n)]))


# --- Exercise 2: how much admission capacity? ---------------------------------------------------
#: The storm of exercise 2: 2000 clients on 4 servers (500 on the one that crashes for 5 s),
#: full jitter with a 10 s cap, a token bucket of 50 handshakes.
STORM = dict(clients=2_000, servers=4, strategy="full_jitter", backoff_base=1.0, backoff_cap=10.0, crash_at=10.0,
             downtime=5.0, admission_burst=50, horizon=300.0)
RATE_GRID = tuple(range(10, 210, 10))
"""Admission rates tried, handshakes per second."""
TARGET_S = 25.0
"""Every client of the crashed server must be connected again this long after the crash."""


def time_to_all_reconnected(admission_rate: float, *, seed: int = 1, **storm) -> float:
    """Seconds from the crash until the last client of the crashed server is connected again
    (nan if some are not back by the horizon), for the storm :data:`STORM` (``storm`` overrides)."""
    params = {**STORM, **storm, "admission_rate": float(admission_rate)}
    return float(sim.run("reconnect-storm", seed=seed, **params).summary["time_to_all_reconnected_s"].iloc[0])


def exercise_2(target_s: float = TARGET_S, rates=RATE_GRID, *, seed: int = 1, **storm) -> float:
    """Smallest admission rate of ``rates`` (ascending) whose storm has every client back within
    ``target_s`` seconds of the crash. A run where someone is not back at all (nan) fails."""
    for rate in rates:
        if time_to_all_reconnected(rate, seed=seed, **storm) <= target_s:  # nan compares False
            return rate
    raise ValueError(f"no admission rate in {rates} brings everyone back within {target_s} s")


def admission_lower_bound(affected: int, burst: int, target_s: float, downtime: float) -> float:
    """A rate below which the target is impossible whatever the backoff: the server is up for
    ``target_s - downtime`` seconds before the deadline and its token bucket admits at most
    ``burst + rate * (target_s - downtime)`` handshakes in that time, so it needs
    ``rate >= (affected - burst) / (target_s - downtime)``."""
    return (affected - burst) / (target_s - downtime)


# --- Exercise 3: requests per message of long polling -------------------------------------------
def requests_per_message(rate: float, rtt: float, hold_timeout: float) -> float:
    """Poll requests per message delivered by long polling in steady state, for Poisson messages
    at ``rate`` per second, a constant round trip ``rtt`` and a server hold of at most ``hold_timeout``.

    One poll cycle is a round trip (answer out, next poll in) plus the time the poll is held.
    The poll finds messages waiting when one arrived during the round trip; otherwise
    (probability ``exp(-rate * rtt)``) it is held until the next message or the timeout,
    ``E[min(Exp(rate), T)] = (1 - exp(-rate * T)) / rate``. A cycle carries on average
    ``rate * cycle`` messages, so the answer is ``1 / (rate * (rtt + mean hold))``.
    """
    mean_hold = math.exp(-rate * rtt) * (1.0 - math.exp(-rate * hold_timeout)) / rate
    return 1.0 / (rate * (rtt + mean_hold))


def simulated_polls_per_message(rate: float, rtt: float, hold_timeout: float, *, seed: int = 1,
                                horizon: float = 5_000.0, replications: int = 20,
                                confidence: float = 0.95) -> tuple[float, float, float]:
    """The same quantity measured on the simulator's long-polling components: one client, Poisson
    messages at ``rate``, a constant one-way latency ``rtt / 2``; per replication, answered polls
    divided by the messages they carried. Returns ``(mean, ci_low, ci_high)`` over replications."""
    from sim.components.long_polling import LongPollingClient, LongPollingServer, LongPollingSpec
    from sim.core import Constant, Context, Exponential, LinkSpec, Network, mean_ci

    spec = LongPollingSpec(hold_timeout=hold_timeout)
    ratios = []
    for r in range(replications):
        ctx = Context(seed, replication=r)
        net = Network(ctx, LinkSpec(latency=Constant(rtt / 2)))
        server = LongPollingServer(ctx, "http", net, spec)
        client = LongPollingClient(ctx, "c", net, "http", spec)
        gaps = Exponential(rate).bind(ctx.rng("messages"))

        def publish(env):
            while True:
                yield env.timeout(gaps.sample())
                server.publish("c", None)

        client.open()
        ctx.env.process(publish(ctx.env))
        ctx.run(until=horizon)
        answers = ctx.metrics["long_polling_batch_messages"].labels(server="http")
        ratios.append(answers.count / answers.sum)  # polls answered / messages they carried
    return mean_ci(ratios, confidence)


# --- What the notebook's answer cells hold, by exercise (python -m sim grade's tests use it) ----------
def answers(exercise: str, seed: int = 1) -> dict:
    """The names the notebook's answer cells define for ``exercise`` (``"07.1"``), solved."""
    return {"07.1": lambda: {"my_full_jitter": full_jitter},
            "07.2": lambda: {"my_admission_rate": exercise_2(seed=seed)},
            "07.3": lambda: {"my_requests_per_message": requests_per_message}}[exercise]()


if __name__ == "__main__":
    a, b = exercise_1_samples(3)
    print("exercise 1: mean delay before retry 3 (ceiling 8 s):", round(a.mean(), 3), "vs", round(b.mean(), 3))
    answer = exercise_2()
    print("exercise 2:", answer, "handshakes/s (lower bound",
          round(admission_lower_bound(500, 50, TARGET_S, 5.0), 1), ")")
    print("exercise 3:", round(requests_per_message(0.2, 0.1, 25.0), 4), "requests per message at 0.2/s;",
          "simulated", tuple(round(v, 4) for v in simulated_polls_per_message(0.2, 0.1, 25.0)))
