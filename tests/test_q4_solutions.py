"""The solutions of notebook 04 are right, and the notebook's self-checks would accept them."""

import pytest
from hypothesis import given, settings, strategies as st

from sim.components.crdt import GCounter, LWWRegister


@pytest.fixture(scope="module")
def solutions(load_solutions):
    return load_solutions("04_crdt_collaboration_solutions")


counters = st.dictionaries(st.sampled_from("ABCD"), st.integers(1, 50), max_size=4)


@settings(derandomize=True, deadline=None, max_examples=100)
@given(a=counters, b=counters, c=counters)
def test_exercise_1_gcounter_merge(solutions, a, b, c):
    merge = solutions.gcounter_merge
    a_before = dict(a)
    assert merge(a, b) == GCounter(a).merge(GCounter(b)).counts
    assert a == a_before  # inputs are not modified
    assert merge(a, b) == merge(b, a)
    assert merge(a, merge(b, c)) == merge(merge(a, b), c)
    assert merge(a, a) == a


stamps = st.lists(st.tuples(st.integers(0, 3), st.sampled_from("ABC")), min_size=3, max_size=3, unique=True)


@settings(derandomize=True, deadline=None, max_examples=100)
@given(stamps=stamps)
def test_exercise_2_lww_merge_with_ties(solutions, stamps):
    merge = solutions.lww_merge
    a, b, c = [(f"v{t}{r}", float(t), r) for t, r in stamps]
    newest = max((a, b, c), key=lambda s: (s[1], s[2]))
    assert merge(merge(a, b), c) == merge(c, merge(b, a)) == newest
    assert merge(a, a) == a
    # the same choice as the package's register
    expected = LWWRegister(*a).merge(LWWRegister(*b))
    assert merge(a, b)[0] == expected.value


def test_exercise_3_convergence_needs_anti_entropy(solutions):
    answer = solutions.exercise_3()
    assert answer.converged_with and not answer.converged_without
    assert answer.held_back_without > 0
