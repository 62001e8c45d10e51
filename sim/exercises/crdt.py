"""Checks of notebook 04 (CRDTs and collaboration)."""

from __future__ import annotations

import numpy as np

import sim
from sim.components.crdt import GCounter
from sim.exercises import NOT_ANSWERED, call, exercise, not_yet, passed

#: Exercise 3's runs of crdt-convergence.
EX3 = dict(model="pycrdt", loss=0.05, operations=300, partition_length=0.0)
EX3_PERIOD = 1.0


def _clean(state):
    return {k: v for k, v in state.items() if v}  # a zero entry is the same as none


@exercise("04.1", "the merge of a G-Counter", "my_gcounter_merge")
def gcounter_merge(merge, trials=200, seed=4):
    rng = np.random.default_rng(seed)

    def state():
        return {r: int(rng.integers(0, 5)) for r in "ABCD" if rng.random() < 0.7}

    def m(a, b):
        out = call(merge, a, b, name="my_gcounter_merge")
        if not isinstance(out, dict):
            raise not_yet(f"merge({a}, {b}) should be a dict, got {out!r}")
        return _clean(out)

    if call(merge, {"A": 1}, {"B": 2}, name="my_gcounter_merge") is None:
        raise not_yet(NOT_ANSWERED)
    for _ in range(trials):
        a, b, c = state(), state(), state()
        a_copy, b_copy = dict(a), dict(b)
        merged = m(a, b)
        if a != a_copy or b != b_copy:
            raise not_yet("the merge changed one of its arguments")
        if merged != GCounter(a).merge(GCounter(b)).counts:
            raise not_yet(f"merge({a}, {b}) gave {merged}")
        if m(b, a) != merged or m(a, a) != _clean(a) or m(a, m(b, c)) != m(m(a, b), c):
            raise not_yet("not commutative, associative and idempotent")
    return passed(f"the same as GCounter.merge on {trials} random states; commutative, associative, idempotent")


@exercise("04.2", "a last-writer-wins register that really converges", "my_lww_merge")
def lww_merge(merge, trials=300, seed=5):
    rng = np.random.default_rng(seed)

    def m(a, b):
        return call(merge, a, b, name="my_lww_merge")

    if m(("x", 1.0, "A"), ("y", 2.0, "B")) is None:
        raise not_yet(NOT_ANSWERED)
    for _ in range(trials):
        # timestamps from a coarse clock, so ties happen; one replica never writes twice at the same time
        stamps = rng.choice([(t, r) for t in range(3) for r in "ABC"], size=3, replace=False)
        a, b, c = [(f"v{t}{r}", float(t), str(r)) for t, r in stamps]
        newest = max((a, b, c), key=lambda s: (s[1], s[2]))
        left, right = m(m(a, b), c), m(c, m(b, a))
        if left != right:
            raise not_yet(f"merging {a}, {b}, {c} in two orders gives {left} and {right}: replicas would differ")
        if left != newest:
            raise not_yet(f"merging {a}, {b}, {c} keeps {left}: not the most recent write")
        if m(a, a) != a:
            raise not_yet("merging a state with itself must change nothing")
    return passed(f"converges on {trials} random triples, ties included")


@exercise("04.3", "convergence needs delivery", "my_converged_without, my_converged_with, seed=SEED")
def convergence(without, with_, seed=1):
    if without is None or with_ is None:
        raise not_yet(NOT_ANSWERED)
    runs = {period: bool(sim.run("crdt-convergence", seed=seed, anti_entropy_period=period, **EX3)
                         .summary.converged.iloc[0]) for period in (None, EX3_PERIOD)}
    wrong = [name for name, got, period in (("without", without, None), ("with", with_, EX3_PERIOD))
             if bool(got) != runs[period]]
    if wrong:
        raise not_yet(f"not what the run{'s' if len(wrong) > 1 else ''} {' and '.join(wrong)} anti-entropy gave: "
                      "read `converged` again")
    return passed(f"without anti-entropy converged = {runs[None]}, with it {runs[EX3_PERIOD]}")
