"""The ``queue`` scenario against queueing theory.

One seed, chosen once (SEED) and used for every case: each analytic value must fall inside the
95 % confidence interval over replications, which a correct simulator misses about one time
in twenty per check. Little's law is an identity of the sample path, so it must hold within 1 %.
"""

import math

import pytest

import sim
from sim import theory
from sim.scenarios.queue import QueueParams

SEED = 20261124
REPS = 20
CUSTOMERS = 10_000

CASES = {
    # name: (parameters, the analytic column checked)
    "M/M/1 rho=0.5": (dict(arrival_rate=0.5, service_rate=1.0), "wq"),
    "M/M/1 rho=0.7": (dict(arrival_rate=0.7, service_rate=1.0), "wq"),
    "M/M/3 Erlang C": (dict(arrival_rate=2.0, service_rate=1.0, servers=3), "wq"),
    "M/M/3/3 Erlang B": (dict(arrival_rate=2.5, service_rate=1.0, servers=3, capacity=3), "blocking_probability"),
    "M/M/2/5": (dict(arrival_rate=2.5, service_rate=1.0, servers=2, capacity=5), "blocking_probability"),
}


@pytest.fixture(scope="module")
def results():
    return {name: sim.run("queue", seed=SEED, customers=CUSTOMERS, replications=REPS, warmup=200.0, **kw)
            for name, (kw, _) in CASES.items()}


# --- the formulas themselves, against values worked out by hand ---------------------------
def test_mm1_formula():
    m = theory.mm1(0.5, 1.0)
    assert m.wq == pytest.approx(0.5 / (1.0 - 0.5))  # rho / (mu - lambda)
    assert m.l == pytest.approx(1.0)  # rho / (1 - rho)
    assert theory.mm1(0.8, 1.0).wq == pytest.approx(4.0)


def test_erlang_formulas_by_hand():
    assert theory.erlang_b(1, 1.0) == pytest.approx(0.5)  # a / (1 + a)
    assert theory.erlang_b(2, 1.0) == pytest.approx(0.2)  # (1/2) / (1 + 1 + 1/2)
    assert theory.erlang_c(2, 1.0) == pytest.approx(1 / 3)  # 1 / (2 + 1)
    # M/M/c/c blocking from the general M/M/c/K solution is Erlang B
    assert theory.mmck(2.5, 1.0, 3, 3).blocking_probability == pytest.approx(theory.erlang_b(3, 2.5))
    # a very large K approaches the unlimited queue
    assert theory.mmck(0.7, 1.0, 1, 400).wq == pytest.approx(theory.mm1(0.7, 1.0).wq, rel=1e-9)


def test_unstable_queue_has_no_steady_state():
    assert math.isnan(theory.mmck(1.2, 1.0, 1, None).wq)


# --- simulation inside the confidence interval ---------------------------------------------
@pytest.mark.parametrize("name", CASES)
def test_analytic_value_inside_confidence_interval(results, name):
    column = CASES[name][1]
    row = results[name].summary.iloc[0]
    assert row[f"{column}_ci_low"] <= row[f"{column}_theory"] <= row[f"{column}_ci_high"], (
        f"{name}: {column} theory {row[f'{column}_theory']:.4f} outside "
        f"[{row[f'{column}_ci_low']:.4f}, {row[f'{column}_ci_high']:.4f}]")
    # the interval is informative, not wide enough to hold anything
    width = row[f"{column}_ci_high"] - row[f"{column}_ci_low"]
    assert width < 0.1 * max(row[f"{column}_theory"], 0.05)


@pytest.mark.parametrize("name", CASES)
def test_littles_law_holds_within_one_percent(results, name):
    for rep in results[name].series["replications"].itertuples():
        assert rep.l == pytest.approx(rep.throughput * rep.w, rel=0.01)
        assert rep.lq == pytest.approx(rep.throughput * rep.wq, rel=0.01, abs=1e-9)


def test_loss_system_never_queues(results):
    row = results["M/M/3/3 Erlang B"].summary.iloc[0]
    assert row["wq"] == 0.0 and row["lq"] == 0.0


def test_customers_counted_after_warmup_only():
    r = sim.run("queue", seed=3, customers=500, replications=2, warmup=50.0)
    assert (r.series["replications"]["customers"] == 500).all()


def test_duration_limit_stops_the_run():
    r = sim.run("queue", seed=3, customers=None, duration=200.0, replications=2, warmup=0.0)
    obs = r.series["replications"]["observed_s"]
    assert (obs <= 200.0).all() and (obs > 150.0).all()


# --- determinism -----------------------------------------------------------------------------
def test_same_seed_same_results_different_seed_differs():
    a = sim.run("queue", seed=11, customers=2000, replications=3)
    b = sim.run("queue", seed=11, customers=2000, replications=3)
    c = sim.run("queue", seed=12, customers=2000, replications=3)
    assert a.summary.equals(b.summary) and a.series["replications"].equals(b.series["replications"])
    assert not a.summary.equals(c.summary)


def test_replications_are_independent_of_their_count():
    """Replication r uses its own streams: asking for more replications does not change the first ones."""
    a = sim.run("queue", seed=5, customers=1000, replications=2).series["replications"]
    b = sim.run("queue", seed=5, customers=1000, replications=4).series["replications"]
    assert a.equals(b.iloc[:2].reset_index(drop=True))


# --- validation ------------------------------------------------------------------------------
@pytest.mark.parametrize("changes, parameter", [
    (dict(arrival_rate=-1.0), "arrival_rate"),
    (dict(service_rate=0.0), "service_rate"),
    (dict(servers=0), "servers"),
    (dict(servers=2, capacity=1), "capacity"),
    (dict(customers=None, duration=None), "customers"),
    (dict(replications=0), "replications"),
    (dict(warmup=-5.0), "warmup"),
])
def test_bad_parameters_name_the_parameter(changes, parameter):
    with pytest.raises(sim.core.ParameterError) as err:
        QueueParams(**changes)
    assert err.value.parameter == parameter


@pytest.mark.parametrize("name", ["M/M/2/5", "M/M/3/3 Erlang B"])
@pytest.mark.parametrize("column", ["w", "wq", "l", "lq", "throughput"])
def test_finite_capacity_times_follow_littles_law_with_the_admitted_rate(results, name, column):
    """w = L / λ(1 - P_block): with the offered rate λ instead, w would fall outside the interval."""
    row = results[name].summary.iloc[0]
    if column == "wq" and row["wq_theory"] == 0.0:
        assert row["wq"] == 0.0
        return
    assert row[f"{column}_ci_low"] <= row[f"{column}_theory"] <= row[f"{column}_ci_high"], (
        f"{name}: {column} theory {row[f'{column}_theory']:.4f} outside "
        f"[{row[f'{column}_ci_low']:.4f}, {row[f'{column}_ci_high']:.4f}]")
    if column in ("w", "wq"):
        kw = CASES[name][0]
        th = theory.mmck(kw["arrival_rate"], kw["service_rate"], kw["servers"], kw["capacity"])
        wrong = (th.l if column == "w" else th.lq) / kw["arrival_rate"]  # Little's law with the offered rate
        assert not row[f"{column}_ci_low"] <= wrong <= row[f"{column}_ci_high"]  # the check has the power to see it
