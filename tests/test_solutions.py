"""The exercise solutions kept apart from the notebooks give the right answers."""

import pytest

from sim import theory

SEED = 20261124  # the test suite's one seed, as in test_queue.py


@pytest.fixture(scope="module")
def primer(load_solutions):
    return load_solutions("00_simulator_primer_solutions")


def test_primer_exercise_1_erlang_b(primer):
    for c, a in [(1, 0.5), (3, 2.5), (10, 7.0)]:
        assert primer.erlang_b_formula(c, a) == pytest.approx(theory.erlang_b(c, a), rel=1e-12)
    answer = primer.exercise_1(seed=SEED, replications=20)
    assert answer.ci_low <= answer.formula <= answer.ci_high


def test_primer_exercise_2_servers(primer):
    assert primer.exercise_2(seed=SEED) == primer.exercise_2_theory() == 5
