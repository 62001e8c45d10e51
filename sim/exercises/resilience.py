"""Checks of notebook 07 (client resilience)."""

from __future__ import annotations

import random

import numpy as np
from scipy import stats

import sim
from sim.components.backoff import Textbook
from sim.components.long_polling import polls_per_message
from sim.exercises import NOT_ANSWERED, call, close, exercise, is_number, not_yet, passed

#: Exercise 2: the storm, the admission rates tried (handshakes per second) and the deadline (s after the crash).
EX2_STORM = dict(clients=2_000, servers=4, strategy="full_jitter", backoff_base=1.0, backoff_cap=10.0, crash_at=10.0,
                 downtime=5.0, admission_burst=50, horizon=300.0)
EX2_RATES = tuple(range(10, 210, 10))
EX2_TARGET_S = 25.0


def textbook_delay(attempt, base, cap, u):
    policy = Textbook("full_jitter", base, 2.0, cap)
    state = policy.new_state()
    state.attempt = attempt  # as if `attempt` retries of this episode were already made
    return policy.next_delay(state, 0.0, 0.0, u)


@exercise("07.1", "full jitter", "my_full_jitter, seed=SEED")
def full_jitter(fn, seed=1, samples=4_000):
    cases = [(k, u) for k in (0, 1, 3, 8, 2000) for u in (0.0, 0.37, 0.99)]
    answers = [call(fn, k, 0.5, 20.0, (lambda u=u: u), name="my_full_jitter") for k, u in cases]
    if all(a is None for a in answers):
        raise not_yet(NOT_ANSWERED)
    for (k, u), a in zip(cases, answers):
        if not close(a, textbook_delay(k, 0.5, 20.0, lambda u=u: u), rel=1e-12, abs_tol=1e-15):
            raise not_yet(f"attempt {k}, u() = {u}: got {a!r}, not the simulator's delay"
                          + (" (does 2 ** attempt overflow?)" if k == 2000 else ""))
    mine_u, ref_u = random.Random(seed).random, random.Random(seed + 1).random
    mine = np.array([call(fn, 3, 1.0, 30.0, mine_u, name="my_full_jitter") for _ in range(samples)], dtype=float)
    ref = np.array([textbook_delay(3, 1.0, 30.0, ref_u) for _ in range(samples)])
    p = stats.ks_2samp(mine, ref).pvalue
    text = f"retry 3: mean {mine.mean():.3f} s against {ref.mean():.3f} s, Kolmogorov–Smirnov p = {p:.3f}"
    if p > 0.001:
        return passed(text)
    raise not_yet(text + " (the distributions differ: one u() per call?)")


def all_back_s(rate, seed):
    return float(sim.run("reconnect-storm", seed=seed, admission_rate=float(rate), **EX2_STORM).summary[
        "time_to_all_reconnected_s"].iloc[0])


@exercise("07.2", "how much admission capacity?", "my_admission_rate, seed=SEED")
def admission_capacity(rate, seed=1):
    if rate is None:
        raise not_yet(NOT_ANSWERED)
    if not is_number(rate) or rate not in EX2_RATES:
        raise not_yet(f"the answer is one of EX2_RATES, got {rate!r}")
    t = all_back_s(rate, seed)
    if not t <= EX2_TARGET_S:
        raise not_yet(f"at {rate}/s the last client is back after {t:.1f} s (target {EX2_TARGET_S:g} s)")
    i = EX2_RATES.index(rate)
    if i > 0:
        t_before = all_back_s(EX2_RATES[i - 1], seed)
        if t_before <= EX2_TARGET_S:
            raise not_yet(f"{EX2_RATES[i - 1]}/s already meets the target ({t_before:.1f} s)")
        return passed(f"at {rate}/s everyone is back after {t:.1f} s; at {EX2_RATES[i - 1]}/s "
                      f"the last one needs {t_before:.1f} s")
    return passed(f"at {rate}/s everyone is back after {t:.1f} s")


@exercise("07.3", "requests per message of long polling", "my_requests_per_message, simulated=cost")
def requests_per_message(fn, simulated=None):
    grid = [(rate, rtt, hold) for rate in (0.001, 0.02, 0.2, 2.0, 50.0) for rtt, hold in ((0.1, 25.0), (0.04, 5.0))]
    answers = [call(fn, *args, name="my_requests_per_message") for args in grid]
    if all(a is None for a in answers):
        raise not_yet(NOT_ANSWERED)
    for args, a in zip(grid, answers):
        if not close(a, polls_per_message(*args)):
            raise not_yet(f"rate {args[0]}/s, rtt {args[1]} s, hold {args[2]} s: got {a!r}, "
                          "not the simulator's steady state (the mean cycle: round trip plus mean hold)")
    details = ()
    if simulated is not None:
        rows = simulated[simulated.transport == "long_polling"].sort_values("message_rate")
        details = tuple(f"{r.message_rate:g} msg/s: formula {fn(r.message_rate, 0.1, 25.0):.3f}, "
                        f"simulated {r.requests_per_message:.3f}" for r in rows.itertuples()) + (
            "(a short run at a low rate is far from steady state: each client sees only a few messages)",)
    return passed("the simulator's steady state on every case", details)
