"""Checks of notebook 06 (deployment)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from sim.components.autoscaler import HpaSpec, HpaState, hpa_step, recommend
from sim.components.node_limits import NginxLimits
from sim.exercises import NOT_ANSWERED, call, close, exercise, is_number, not_yet, passed

#: Exercise 2: four ready pods' active connections; target per pod and tolerance.
EX2_CONNECTIONS = (130, 120, 95, 155)
EX2_TARGET, EX2_TOLERANCE = 100.0, 0.1
#: Exercise 3: the flash crowd's start, the syncs listed, maxReplicas.
EX3_START, EX3_SYNCS, EX3_MAX_REPLICAS = 2, 4, 20
#: Exercise 4: (clients, the busiest node's imbalance, worker_connections) to size for; none falls on
#: a whole number of nodes, so a float formula and exact arithmetic agree.
EX4_CASES = ((100_000, 1.0, 512), (100_000, 2.5, 512), (100_000, 1.0, 10_240), (100_000, 2.5, 10_240),
             (2_000, 1.14, 512), (20_000, 1.1, 4_096), (1_000_000, 1.0, 65_535), (300, 1.0, 128))


def moved_by_counting(n: int, consistent: bool) -> Fraction:
    """The expected share of keys remapped when a node joins ``n``, by counting, not by a formula.

    Modulo: a uniform hash ``h`` is uniform over the residues mod n(n+1); count those whose node
    changes (``h % n != h % (n + 1)``). Consistent: each of the ``n + 1`` nodes owns an equal
    expected share of the ring, and exactly the new node's keys move.
    """
    if consistent:
        return Fraction(1, n + 1)
    m = n * (n + 1)
    return Fraction(sum(h % n != h % (n + 1) for h in range(m)), m)


@exercise("06.1", "keys moved when a node is added", "my_moved_share, simulated=moved")
def keys_moved(fn, simulated=None):
    cases = [(n, c) for n in (1, 2, 3, 10, 99) for c in (True, False)]
    answers = {case: call(fn, *case, name="my_moved_share") for case in cases}
    if all(a is None for a in answers.values()):
        raise not_yet(NOT_ANSWERED)
    for (n, c), a in answers.items():
        if not close(a, float(moved_by_counting(n, c)), rel=1e-12):
            hint = ("a ring where every node owns an equal share: which keys change owner?" if c else
                    "with modulo, a key stays only if h mod n equals h mod (n + 1)")
            raise not_yet(f"n = {n}, consistent = {c}: got {a!r} (hint: {hint})")
    details = ()
    if simulated is not None:
        details = tuple(f"N = {n:>2}: consistent {fn(n, True):.3f} (simulated {simulated.loc[n, 'consistent_hash']:.3f}), "
                        f"modulo {fn(n, False):.3f} (simulated {simulated.loc[n, 'modulo_hash']:.3f})"
                        for n in simulated.index)
    return passed("right for every n", details)


def _recommendation(values, target, tolerance) -> int:
    spec = HpaSpec(target=target, tolerance=tolerance, min_replicas=1, max_replicas=1000)
    return recommend(spec, len(values), list(values), 0)[0]


@exercise("06.2", "the HPA's next replica count", "my_ex2_by_hand, my_hpa_recommendation, seed=SEED")
def hpa_recommendation(by_hand, fn, seed=1, cases=300):
    rng = np.random.default_rng(seed)
    grid = [((100, 100, 100), 100.0, 0.1), ((105, 100, 100, 104), 100.0, 0.1), ((111, 110), 100.0, 0.1),
            ((0, 0, 0), 100.0, 0.1), ((300,), 100.0, 0.1), ((91, 90), 100.0, 0.1)]
    grid += [(tuple(int(v) for v in rng.integers(0, 250, rng.integers(1, 12))), float(rng.choice([50, 100, 150])),
              float(rng.choice([0.0, 0.1, 0.2]))) for _ in range(cases)]
    answers = [call(fn, v, t, tol, name="my_hpa_recommendation") for v, t, tol in grid]
    if by_hand is None and all(a is None for a in answers):
        raise not_yet(NOT_ANSWERED)
    parts, ok = [], True
    want = _recommendation(EX2_CONNECTIONS, EX2_TARGET, EX2_TOLERANCE)
    if by_hand is None:
        parts.append("by hand: not answered yet")
        ok = False
    elif is_number(by_hand) and not isinstance(by_hand, bool) and by_hand == want:
        parts.append("by hand: right")
    else:
        parts.append(f"by hand: not yet (got {by_hand!r})")
        ok = False
    wrong = next(((v, t, tol, a) for (v, t, tol), a in zip(grid, answers) if a != _recommendation(v, t, tol)), None)
    if all(a is None for a in answers):
        parts.append("function: not answered yet")
        ok = False
    elif wrong is not None:
        v, t, tol, a = wrong
        parts.append(f"function: not yet (pods {v}, target {t:g}, tolerance {tol:g}: got {a!r})")
        ok = False
    else:
        parts.append(f"function: right on {len(grid)} cases")
    if ok:
        return passed("; ".join(parts))
    raise not_yet("; ".join(parts))


def scale_up(start: int = EX3_START, syncs: int = EX3_SYNCS, max_replicas: int = EX3_MAX_REPLICAS) -> list[int]:
    """Replica counts after each sync from the simulator's own HPA, the metric far above target."""
    spec = HpaSpec(target=100.0, min_replicas=1, max_replicas=max_replicas)
    state, current, out = HpaState(), start, []
    for k in range(syncs):
        decision, state = hpa_step(spec, state, spec.sync_period * k, current, [1e5] * current)
        current = decision.desired
        out.append(current)
    return out


@exercise("06.3", "how fast can the HPA scale up?", "my_scale_up")
def scale_up_speed(answer):
    if answer is None:
        raise not_yet(NOT_ANSWERED)
    try:
        got = [int(a) for a in answer]
    except (TypeError, ValueError):
        raise not_yet(f"expected a list of {EX3_SYNCS} replica counts, got {answer!r}") from None
    if len(got) != EX3_SYNCS:
        raise not_yet(f"expected {EX3_SYNCS} replica counts (one per sync), got {len(got)}")
    want = scale_up()
    first_wrong = next((k for k, (g, w) in enumerate(zip(got, want)) if g != w), None)
    if first_wrong is not None:
        raise not_yet(f"after sync {first_wrong + 1} the HPA would have another count "
                      "(hint: the larger of the two policies wins, and maxReplicas caps it)")
    top = want.index(max(want)) + 1
    return passed(f"{want}: the last pod is requested at sync {top}, {15 * (top - 1):g} s after the first")


def nodes_needed(clients: int, imbalance: float, worker_connections: int) -> int:
    """Fewest nodes whose busiest one (``clients / nodes * imbalance`` connections) fits behind an
    NGINX worker with ``worker_connections`` slots: the smallest ``n`` that passes, found by counting up
    from the lower bound (no rounding of a quotient involved)."""
    room = NginxLimits(worker_connections=worker_connections).proxied_websockets()
    n = max(1, math.floor(clients * imbalance / room))
    while clients / n * imbalance > room:
        n += 1
    return n


@exercise("06.4", "how many nodes behind a stock NGINX?", "my_nodes_needed")
def nodes_for_nginx(fn):
    answers = [call(fn, *case, name="my_nodes_needed") for case in EX4_CASES]
    if all(a is None for a in answers):
        raise not_yet(NOT_ANSWERED)
    for (clients, imbalance, slots), a in zip(EX4_CASES, answers):
        want = nodes_needed(clients, imbalance, slots)
        if not (is_number(a) and not isinstance(a, bool) and a == want):
            room = NginxLimits(worker_connections=slots).proxied_websockets()
            raise not_yet(f"{clients:,} clients, imbalance {imbalance:g}, worker_connections {slots}: got {a!r} "
                          f"(hint: such a node proxies {room} WebSockets; the busiest holds clients / n x imbalance)")
    stock = [nodes_needed(c, i, w) for c, i, w in EX4_CASES[:4]]
    return passed(f"100,000 clients: {stock[0]} nodes with round robin and {stock[1]} with an imbalance of 2.5 behind a "
                  f"stock NGINX; {stock[2]} and {stock[3]} with worker_connections 10240")
