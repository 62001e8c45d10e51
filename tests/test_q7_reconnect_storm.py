"""``reconnect-storm``: everyone comes back when the policy never gives up, and jitter breaks up the herd."""

import sys

import pytest
from hypothesis import given, settings, strategies as st

import sim
from sim.components.backoff import PRESETS, STRATEGIES
from sim.core import ParameterError
from sim.scenarios.q7_resilience.reconnect_storm import ReconnectStormParams

SEED = 20261124
NEVER_GIVE_UP = [s for s in STRATEGIES + PRESETS if s not in ("aws_standard", "signalr", "google_api_core")]


@settings(derandomize=True, deadline=None, max_examples=25)
@given(strategy=st.sampled_from(NEVER_GIVE_UP), clients=st.integers(1, 120), servers=st.integers(1, 3),
       admission_rate=st.floats(5, 500), burst=st.integers(1, 20), downtime=st.floats(0, 20),
       crash=st.sampled_from(["process", "host"]))
def test_every_client_eventually_reconnects_when_the_server_admits_some(strategy, clients, servers, admission_rate,
                                                                         burst, downtime, crash):
    p = ReconnectStormParams(clients=clients, servers=servers, strategy=strategy, admission_rate=admission_rate,
                             admission_burst=burst, downtime=downtime, crash=crash, horizon=3000.0,
                             heartbeat_interval=5.0)
    row = sim.run("reconnect-storm", p, seed=SEED).summary.iloc[0]
    assert row.gave_up == 0
    assert row.reconnected == row.affected == len(range(0, clients, servers))
    assert row.time_to_all_reconnected_s >= downtime or row.affected == 0
    # every attempt is either accepted (once per reconnection), refused or timed out
    assert row.attempts >= row.refused_attempts + row.timed_out_attempts + row.reconnected


def test_outcomes_add_up_for_clients_that_give_up():
    row = sim.run("reconnect-storm", seed=SEED, clients=400, strategy="signalr", admission_rate=20.0,
                  admission_burst=5).summary.iloc[0]
    assert row.gave_up > 0  # 0, 2, 10, 30 s and no jitter: most of the herd is refused four times
    assert row.reconnected + row.gave_up == row.affected


@pytest.fixture(scope="module")
def herd():
    result = sim.run("reconnect-storm", seed=SEED, clients=4000, strategy="exponential,full_jitter",
                     backoff_cap=8.0, horizon=200.0)
    return result.summary.set_index("strategy"), result.series["per_second"]


def test_without_jitter_the_whole_herd_retries_in_the_same_second(herd):
    summary, per_second = herd
    affected = summary.loc["exponential", "affected"]
    exp = per_second[per_second.strategy == "exponential"]
    # after the crash every retry wave of the unjittered herd falls in one second, minus those admitted
    crash_waves = exp[exp.time_s > 10].attempts
    assert crash_waves.max() == affected
    # the first second after the crash holds everyone's first retry whatever the strategy; after
    # the restart (t >= 15 s) full jitter spreads the retries out
    after_restart = per_second[(per_second.time_s >= 15) & (per_second.strategy == "full_jitter")]
    assert after_restart.attempts.max() < 0.5 * affected


def test_full_jitter_reconnects_everyone_sooner_than_the_synchronised_herd(herd):
    summary, _ = herd
    assert summary.loc["full_jitter", "reconnect_p99_s"] < summary.loc["exponential", "reconnect_p99_s"]
    assert summary.loc["full_jitter", "refused_attempts"] < summary.loc["exponential", "refused_attempts"]


def test_connected_series_dips_by_the_crashed_share_and_recovers(herd):
    summary, per_second = herd
    fj = per_second[per_second.strategy == "full_jitter"].set_index("time_s")
    assert fj.loc[5.0, "connected"] == 4000
    assert fj.loc[12.0, "connected"] == 4000 - summary.loc["full_jitter", "affected"]
    assert fj.connected.iloc[-1] == 4000


def test_same_seed_same_result():
    a = sim.run("reconnect-storm", seed=3, clients=300, strategy="full_jitter,grpc")
    b = sim.run("reconnect-storm", seed=3, clients=300, strategy="full_jitter,grpc")
    c = sim.run("reconnect-storm", seed=4, clients=300, strategy="full_jitter,grpc")
    assert a.summary.equals(b.summary) and a.series["per_second"].equals(b.series["per_second"])
    assert not a.summary.equals(c.summary)


def test_strategy_groups_expand():
    assert ReconnectStormParams(strategy="all").strategies() == STRATEGIES
    assert ReconnectStormParams(strategy="presets").strategies() == PRESETS
    assert ReconnectStormParams(strategy="grpc, full_jitter").strategies() == ("grpc", "full_jitter")


@pytest.mark.parametrize("changes, parameter", [
    (dict(strategy="sometimes"), "strategy"),
    (dict(clients=0), "clients"),
    (dict(servers=0), "servers"),
    (dict(admission_rate=-5.0), "admission_rate"),
    (dict(backoff_base=2.0, backoff_cap=1.0), "backoff_cap"),
    (dict(crash_at=290.0, downtime=20.0), "horizon"),
    (dict(crash="meteor"), "crash"),
])
def test_bad_parameters_name_the_parameter(changes, parameter):
    with pytest.raises(ParameterError) as err:
        ReconnectStormParams(**changes)
    assert err.value.parameter == parameter


def test_the_progress_bar_of_a_terminal_changes_nothing(monkeypatch):
    kwargs = dict(seed=3, clients=300, strategy="full_jitter,none", crash="host", heartbeat_interval=5.0)
    plain = sim.run("reconnect-storm", **kwargs)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # as on a terminal: the run stops to redraw the bar
    shown = sim.run("reconnect-storm", **kwargs)
    assert shown.summary.equals(plain.summary)
    assert shown.series["per_second"].equals(plain.series["per_second"])
    assert shown.series["reconnect_times"].equals(plain.series["reconnect_times"])
