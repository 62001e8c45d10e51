"""The ``backoff-contention`` scenario: the optimistic-concurrency experiment of the AWS blog post.

One seed, chosen once (SEED), for every stochastic case. The checks are the blog's qualitative
results, which a model that drops the version test, the backoff or the jitter would not show,
and exact counts in the noise-free case (sd = 0), where the whole run can be worked out by hand.
"""

import math

import pytest

import sim
from sim.core import ParameterError
from sim.scenarios.q7_resilience.backoff_contention import STRATEGIES, BackoffContentionParams

SEED = 20150304
JITTERED = ("full_jitter", "equal_jitter", "decorrelated_jitter")


def run(**changes):
    return sim.run("backoff-contention", seed=changes.pop("seed", SEED), **changes)


@pytest.fixture(scope="module")
def contention():
    """Every strategy with 50 clients (the blog's middle of the range), a few runs each."""
    result = run(clients=(50,), replications=6)
    return result, result.summary.set_index("strategy")


# --- the blog's results -------------------------------------------------------------------------
def test_jitter_needs_far_fewer_calls_than_none_or_plain_exponential(contention):
    _, s = contention
    worst_jittered = max(s.loc[j, "calls_ci_high"] for j in JITTERED)
    for synchronized in ("none", "exponential"):
        assert worst_jittered < 0.75 * s.loc[synchronized, "calls_ci_low"], s[["calls", "calls_ci_low"]]
    # full jitter is among the best: at most 10 % more calls than the best strategy
    assert s.loc["full_jitter", "calls"] <= 1.1 * s["calls"].min()


def test_exponential_without_jitter_takes_the_longest(contention):
    _, s = contention
    # the losers of each round come back together after ever longer sleeps: about 10 times slower
    others = s.drop(index="exponential")
    assert s.loc["exponential", "completion_ms_ci_low"] > 5 * others["completion_ms_ci_high"].max()
    # no backoff at all is the fastest (it wastes calls, not time)
    assert s["completion_ms"].idxmin() == "none"


def test_every_client_writes_exactly_once(contention):
    result, _ = contention
    runs = result.series["replications"]
    assert len(runs) == len(STRATEGIES) * 6
    assert (runs["successes"] == runs["clients"]).all()
    assert (runs["final_version"] == runs["clients"]).all()
    assert (runs["calls"] >= runs["clients"]).all()
    # each attempt is one read then one write, each a request and a reply
    assert (runs["reads"] == runs["calls"]).all()
    assert (runs["messages"] == 4 * runs["calls"]).all()


def test_summary_columns_and_means(contention):
    result, s = contention
    assert list(result.summary.columns) == ["strategy", "clients", "calls", "calls_ci_low", "calls_ci_high",
                                            "completion_ms", "completion_ms_ci_low", "completion_ms_ci_high",
                                            "replications"]
    assert list(s.index) == list(STRATEGIES)
    runs = result.series["replications"]
    for strategy, row in s.iterrows():
        mine = runs[runs["strategy"] == strategy]
        assert row["calls"] == pytest.approx(mine["calls"].mean())
        assert row["completion_ms"] == pytest.approx(mine["completion_ms"].mean())
        assert row["calls_ci_low"] <= row["calls"] <= row["calls_ci_high"]
        assert row["replications"] == 6


# --- cases worked out by hand -------------------------------------------------------------------
def test_one_client_writes_once_after_two_round_trips():
    result = run(clients=(1,), replications=40)
    runs = result.series["replications"]
    assert (runs["calls"] == 1).all()
    # read + write = 4 one-way delays of mean 10 ms and sd 2 ms: 40 ms, sd 4 ms
    assert runs["completion_ms"].between(40 - 5 * 4, 40 + 5 * 4).all()
    for _, row in result.summary.iterrows():
        assert row["calls"] == 1
        assert row["completion_ms_ci_low"] <= 40.0 <= row["completion_ms_ci_high"]


def test_one_client_without_network_noise_takes_exactly_four_delays():
    s = run(clients=(1,), replications=2, latency_sd=0.0).summary
    assert (s["calls"] == 1).all()
    assert s["completion_ms"].to_numpy() == pytest.approx(40.0)


@pytest.mark.parametrize("n", [1, 2, 7])
def test_without_noise_one_write_wins_each_round(n):
    """sd = 0: every client reads the same version and writes at the same instant, so exactly one
    write per round succeeds: n + (n-1) + ... + 1 calls, one round trip pair (40 ms) per round,
    plus, for exponential, the backoff 2 ** k * 5 ms after the k-th refusal (k = 1, 2, ...)."""
    s = run(clients=(n,), replications=1, latency_sd=0.0, strategy="none").summary.iloc[0]
    assert s["calls"] == n * (n + 1) // 2
    assert s["completion_ms"] == pytest.approx(40.0 * n)
    e = run(clients=(n,), replications=1, latency_sd=0.0, strategy="exponential").summary.iloc[0]
    assert e["calls"] == n * (n + 1) // 2
    assert e["completion_ms"] == pytest.approx(40.0 * n + sum(5.0 * 2**k for k in range(1, n)))


def test_cap_bounds_the_exponential_backoff():
    # 12 refusals: ceilings 10, 20, ..., 2560 ms, the last two capped at 2000 ms
    e = run(clients=(13,), replications=1, latency_sd=0.0, strategy="exponential").summary.iloc[0]
    assert e["completion_ms"] == pytest.approx(40.0 * 13 + sum(min(2000.0, 5.0 * 2**k) for k in range(1, 13)))


# --- reproducibility ----------------------------------------------------------------------------
def test_same_seed_same_results_different_seed_differs():
    a = run(clients=(10, 20), replications=3)
    b = run(clients=(10, 20), replications=3)
    c = run(clients=(10, 20), replications=3, seed=SEED + 1)
    assert a.summary.equals(b.summary) and a.series["replications"].equals(b.series["replications"])
    assert not a.summary.equals(c.summary)


def test_runs_are_independent_of_their_count():
    a = run(clients=(10,), replications=2, strategy="full_jitter").series["replications"]
    b = run(clients=(10,), replications=4, strategy="full_jitter").series["replications"]
    assert a.equals(b.iloc[:2].reset_index(drop=True))


def test_one_strategy_only():
    s = run(clients=(5, 10), replications=2, strategy="decorrelated_jitter").summary
    assert list(s["strategy"]) == ["decorrelated_jitter"] * 2
    assert list(s["clients"]) == [5, 10]


# --- parameters ---------------------------------------------------------------------------------
def test_clients_from_the_command_line():
    assert BackoffContentionParams.from_strings({"clients": "10:30:10"}).clients == (10, 20, 30)
    assert BackoffContentionParams.from_strings({"clients": "10,20,50"}).clients == (10, 20, 50)
    p = BackoffContentionParams.from_strings({"strategy": "full_jitter", "replications": "3", "backoff_base": "0.01"})
    assert (p.strategy, p.replications, p.backoff_base) == ("full_jitter", 3, 0.01)


def test_defaults():
    p = BackoffContentionParams()
    assert (p.strategy, p.backoff_base, p.backoff_cap, p.latency_mean, p.latency_sd) == ("all", 0.005, 2.0, 0.010, 0.002)
    assert p.strategies == STRATEGIES


@pytest.mark.parametrize("changes, parameter", [
    (dict(clients=(0,)), "clients"),
    (dict(clients=(10, -5)), "clients"),
    (dict(clients=()), "clients"),
    (dict(strategy="linear"), "strategy"),
    (dict(strategy="constant"), "strategy"),
    (dict(replications=0), "replications"),
    (dict(backoff_base=-0.005), "backoff_base"),
    (dict(backoff_base=0.0), "backoff_base"),
    (dict(backoff_cap=0.001), "backoff_cap"),
    (dict(backoff_cap=math.inf), "backoff_cap"),
    (dict(latency_mean=0.0), "latency_mean"),
    (dict(latency_sd=-0.001), "latency_sd"),
])
def test_bad_parameters_name_the_parameter(changes, parameter):
    with pytest.raises(ParameterError) as err:
        BackoffContentionParams(**changes)
    assert err.value.parameter == parameter


@pytest.mark.parametrize("text, parameter", [
    (dict(clients="0"), "clients"),
    (dict(clients="ten"), "clients"),
    (dict(strategy="fibonacci"), "strategy"),
    (dict(backoff_base="-1"), "backoff_base"),
    (dict(backoff_base="0.5", backoff_cap="0.1"), "backoff_cap"),
])
def test_bad_text_names_the_parameter(text, parameter):
    with pytest.raises(ParameterError) as err:
        BackoffContentionParams.from_strings(text)
    assert err.value.parameter == parameter


def test_cli_runs_and_reports_a_bad_value(capsys):
    from sim.cli import main

    assert main(["run", "backoff-contention", "--set", "clients=3", "replications=2", "strategy=full_jitter"]) == 0
    assert "full_jitter" in capsys.readouterr().out
    assert main(["run", "backoff-contention", "--set", "clients=0"]) == 2
    assert "clients" in capsys.readouterr().err
