"""The solutions of notebook 06 (deployment) give the right answers."""

import math

import numpy as np
import pytest
from scipy import stats

from sim.components.autoscaler import HpaSpec, recommend

SEED = 20261124  # the test suite's one seed, as in test_queue.py


@pytest.fixture(scope="module")
def q6(load_solutions):
    return load_solutions("06_deployment_solutions")


def binomial_interval(k: int, n: int, confidence: float = 0.999) -> tuple[float, float]:
    """Clopper-Pearson interval of a proportion."""
    a = 1 - confidence
    low = stats.beta.ppf(a / 2, k, n - k + 1) if k > 0 else 0.0
    high = stats.beta.ppf(1 - a / 2, k + 1, n - k) if k < n else 1.0
    return low, high


# --- exercise 1: keys moved ---------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 5, 10, 99])
def test_moved_share_formulas(q6, n):
    assert q6.moved_share(n, True) == pytest.approx(1 / (n + 1), rel=1e-15)
    assert q6.moved_share(n, False) == pytest.approx(n / (n + 1), rel=1e-15)
    # modulo: the share of residues h mod n(n+1) for which h mod n != h mod (n+1), counted exactly
    m = n * (n + 1)
    assert sum(h % n != h % (n + 1) for h in range(m)) / m == pytest.approx(q6.moved_share(n, False), rel=1e-15)


@pytest.mark.parametrize("n", [2, 4, 8, 16, 32])
def test_simulated_moved_shares_match_the_theory(q6, n):
    clients = 2_000
    sim_moved = q6.simulated_moved(n, clients, seed=SEED)
    # modulo: each key's 64-bit hash is uniform, so the count moved is Binomial(clients, n/(n+1))
    low, high = binomial_interval(round(sim_moved["modulo_hash"] * clients), clients)
    assert low <= q6.moved_share(n, False) <= high
    # consistent: exactly the keys on the new node's arcs move ...
    assert round(sim_moved["consistent_hash"] * clients) == q6.keys_moved_on_ring(n, clients)
    # ... and their count is Binomial(clients, that node's share of the ring)
    low, high = binomial_interval(q6.keys_moved_on_ring(n, clients), clients)
    assert low <= q6.ring_share_of_new_node(n) <= high


# --- exercise 2: HPA recommendation -------------------------------------------------------------
def test_exercise_2_by_hand(q6):
    assert q6.exercise_2_by_hand() == 5


def test_hpa_recommendation_matches_the_simulator(q6):
    rng = np.random.default_rng(SEED)
    for _ in range(2_000):
        values = [int(v) for v in rng.integers(0, 300, rng.integers(1, 15))]
        target = float(rng.choice([1, 50, 100, 150, 333]))
        tolerance = float(rng.choice([0.0, 0.05, 0.1, 0.2]))
        spec = HpaSpec(target=target, tolerance=tolerance, min_replicas=1, max_replicas=10_000)
        assert q6.hpa_recommendation(values, target, tolerance) == recommend(spec, len(values), values, 0)[0]


@pytest.mark.parametrize("values, expected", [((100, 100), 2), ((110, 110), 2), ((111, 111), 3), ((89, 89), 2),
                                              ((80, 80), 2), ((0, 0, 0), 0), ((600.0, 0.0), 6)])
def test_hpa_recommendation_edges(q6, values, expected):
    # 110 is within the 10 % tolerance; 111 is not: ceil(222/100) = 3; 80 leaves it: ceil(160/100) = 2
    assert q6.hpa_recommendation(values, 100.0, 0.1) == expected


# --- exercise 3: scale-up speed -----------------------------------------------------------------
def test_scale_up_sequence(q6):
    assert q6.scale_up_sequence() == [6, 12, 20, 20]
    assert q6.scale_up_sequence() == q6.simulated_scale_up()


@pytest.mark.parametrize("start, max_replicas", [(1, 50), (3, 100), (7, 30), (2, 3)])
def test_scale_up_sequence_matches_hpa_step(q6, start, max_replicas):
    assert q6.scale_up_sequence(start, 6, max_replicas) == q6.simulated_scale_up(start, 6, max_replicas)
    assert math.isfinite(sum(q6.scale_up_sequence(start, 6, max_replicas)))


# --- exercise 4: nodes behind a stock NGINX -----------------------------------------------------
def test_nodes_needed_for_the_course_sizes(q6):
    assert q6.nodes_needed(100_000, 1.0) == 393  # 100,000 / 255 = 392.2
    assert q6.nodes_needed(100_000, 1.0, 10_240) == 20  # 100,000 / 5,119 = 19.5


def test_nodes_needed_agrees_with_counting_up(q6):
    from sim.exercises.deployment import nodes_needed

    rng = np.random.default_rng(SEED)
    for _ in range(500):
        clients, slots = int(rng.integers(1, 2_000_000)), int(rng.integers(4, 70_000))
        imbalance = float(rng.choice([1.0, 1.1, 1.5, 2.5, 4.0]))
        assert q6.nodes_needed(clients, imbalance, slots) == nodes_needed(clients, imbalance, slots), (clients, slots)
