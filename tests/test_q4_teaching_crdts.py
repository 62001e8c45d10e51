"""The teaching CRDTs: merges are commutative, associative and idempotent, and mean what they say.

States are built from random histories of operations on three replicas with random merges in
between (so they are states a real run could reach), then merged in every grouping and order.
"""

import pytest
from hypothesis import given, settings, strategies as st

from sim.components.crdt.teaching import GCounter, LWWRegister, ORSet, PNCounter

REPLICAS = ("A", "B", "C")
SETTINGS = settings(derandomize=True, deadline=None, max_examples=150)

# one step of a history: (replica, action, argument)
step = st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(0, 5))


def run_history(empty, apply, steps):
    """Three replicas start ``empty``; each step is a local operation or a merge from another replica."""
    states = [empty, empty, empty]
    for r, action, arg in steps:
        if action == 3:
            states[r] = states[r].merge(states[arg % 3])
        else:
            states[r] = apply(states[r], REPLICAS[r], action, arg)
    return states


def g_apply(s, replica, action, arg):
    return s.increment(replica, arg)


def pn_apply(s, replica, action, arg):
    return s.decrement(replica, arg) if action == 1 else s.increment(replica, arg)


def or_apply(s, replica, action, arg):
    element = f"e{arg % 3}"
    return s.remove(element) if action == 1 else s.add(element, replica)


def lww_history(steps):
    # a write's timestamp is its step number: no replica writes twice at the same time
    states = [LWWRegister()] * 3
    for t, (r, action, arg) in enumerate(steps):
        if action == 3:
            states[r] = states[r].merge(states[arg % 3])
        else:
            states[r] = states[r].assign(f"v{t}", t % 4, REPLICAS[r])  # t % 4: many equal timestamps
    return states


HISTORIES = {
    "G-Counter": lambda steps: run_history(GCounter(), g_apply, steps),
    "PN-Counter": lambda steps: run_history(PNCounter(), pn_apply, steps),
    "OR-Set": lambda steps: run_history(ORSet(), or_apply, steps),
}


def check_laws(a, b, c):
    assert a.merge(b) == b.merge(a), "merge must be commutative"
    assert a.merge(b.merge(c)) == a.merge(b).merge(c), "merge must be associative"
    assert a.merge(a) == a, "merge must be idempotent"
    assert a.merge(b).merge(b) == a.merge(b)


@pytest.mark.parametrize("kind", HISTORIES)
@SETTINGS
@given(steps=st.lists(step, min_size=5, max_size=40))
def test_merge_laws(kind, steps):
    check_laws(*HISTORIES[kind](steps))


@SETTINGS
@given(steps=st.lists(step, min_size=5, max_size=40))
def test_lww_merge_laws_with_tied_timestamps(steps):
    a, b, c = lww_history(steps)
    # the precondition of the laws: one stamp, one write (timestamps tie; (time, replica) never does)
    check_laws(a, b, c)


@SETTINGS
@given(steps=st.lists(step, min_size=5, max_size=40))
def test_counters_count_every_operation_once_merged(steps):
    a, b, c = run_history(PNCounter(), pn_apply, steps)
    expected = sum(-arg if action == 1 else arg for _, action, arg in steps if action != 3)
    assert a.merge(b).merge(c).value == expected
    g = run_history(GCounter(), g_apply, steps)
    assert g[0].merge(g[1]).merge(g[2]).value == sum(arg for _, action, arg in steps if action != 3)


@SETTINGS
@given(steps=st.lists(step, min_size=5, max_size=40))
def test_merge_only_goes_up(steps):
    a, b, _ = run_history(GCounter(), g_apply, steps)
    m = a.merge(b)
    assert all(m.counts.get(r, 0) >= n for r, n in a.counts.items())
    x, y, _ = run_history(ORSet(), or_apply, steps)
    assert x.adds <= x.merge(y).adds and x.removed <= x.merge(y).removed


def test_or_set_add_wins_over_a_concurrent_remove():
    base = ORSet().add("x", "A")
    a = base.remove("x")  # A removes the x it has seen...
    b = base.add("x", "B")  # ...while B adds x again
    assert "x" not in a and "x" in a.merge(b) and "x" in b.merge(a)
    assert a.merge(b).merge(a.remove("x")).value == frozenset({"x"})  # B's add was never observed by A


def test_lww_register_ties_are_broken_by_replica_not_by_arrival():
    a = LWWRegister().assign("dark", 5.0, "A")
    b = LWWRegister().assign("light", 5.0, "B")
    assert a.merge(b).value == b.merge(a).value == "light"
    assert a.assign("old", 4.0, "C").value == "dark"  # an older write loses at once


def test_pn_counter_needs_two_halves():
    a = PNCounter().increment("A", 3)
    b = a.decrement("B", 5)
    assert a.merge(b).value == b.merge(a).value == -2


def test_bad_values_are_refused():
    with pytest.raises(ValueError):
        GCounter().increment("A", -1)
    with pytest.raises(ValueError):
        GCounter({"A": -3})
    with pytest.raises(TypeError):
        GCounter().increment(None)
