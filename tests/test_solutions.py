"""The exercise solutions kept apart from the notebooks give the right answers."""

import importlib.util
from pathlib import Path

import pytest

from sim import theory

SOLUTIONS = Path(__file__).resolve().parent.parent / "notebooks" / "solutions"
SEED = 20261124  # the test suite's one seed, as in test_queue.py


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, SOLUTIONS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def primer():
    return load("00_simulator_primer_solutions")


def test_primer_exercise_1_erlang_b(primer):
    for c, a in [(1, 0.5), (3, 2.5), (10, 7.0)]:
        assert primer.erlang_b_formula(c, a) == pytest.approx(theory.erlang_b(c, a), rel=1e-12)
    answer = primer.exercise_1(seed=SEED, replications=20)
    assert answer.ci_low <= answer.formula <= answer.ci_high


def test_primer_exercise_2_servers(primer):
    assert primer.exercise_2(seed=SEED) == primer.exercise_2_theory() == 5
