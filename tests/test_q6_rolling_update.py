"""``rolling-update``: a graceful drain sends 1001/1012 and spreads the storm; a session store saves every session."""

import pytest

import sim
from sim.core import ParameterError
from sim.scenarios.q6_deployment.rolling_update import RollingUpdateParams

SEED = 20261124
SMALL = dict(clients=600, pods=4, pod_startup=5.0, horizon=120.0)


@pytest.fixture(scope="module")
def both():
    return sim.run("rolling-update", seed=SEED, **SMALL).summary.set_index(["termination", "session_store"])


def test_graceful_drain_with_a_store_loses_no_session_and_closes_with_1012(both):
    row = both.loc[("graceful", True)]
    assert row.sessions_lost == 0
    assert row.sessions_fetched > 0
    assert row.closed_1012 == row.disconnections > 0
    assert row.closed_1006 == 0 and row.closed_1001 == 0
    assert row.all_reconnected


def test_close_code_1001_when_asked():
    row = sim.run("rolling-update", seed=SEED, termination="graceful", session_store="on", close_code=1001,
                  **SMALL).summary.iloc[0]
    assert row.closed_1001 == row.disconnections > 0 and row.closed_1012 == 0 and row.sessions_lost == 0


def test_abrupt_kill_is_seen_as_1006(both):
    row = both.loc[("abrupt", False)]
    assert row.closed_1006 == row.disconnections > 0
    assert row.closed_1001 == row.closed_1012 == 0


def test_without_a_store_every_moved_client_loses_its_session(both):
    for termination in ("graceful", "abrupt"):
        row = both.loc[(termination, False)]
        assert row.sessions_lost == row.disconnections  # a replaced pod takes its memory with it
        assert both.loc[(termination, True), "sessions_lost"] == 0


def test_graceful_drain_spreads_the_reconnection_storm(both):
    assert both.loc[("graceful", False), "peak_attempts_per_s"] < 0.5 * both.loc[("abrupt", False),
                                                                                   "peak_attempts_per_s"]
    # the abrupt pod holds its clients until SIGKILL, 30 s after the delete: the rollout lasts longer
    assert both.loc[("abrupt", False), "rollout_s"] > both.loc[("graceful", False), "rollout_s"]


def test_everyone_ends_on_a_new_pod():
    result = sim.run("rolling-update", seed=SEED, termination="graceful", session_store="off", **SMALL)
    per_second = result.series["per_second"]
    assert per_second.connected.iloc[0] == per_second.connected.iloc[-1] == SMALL["clients"]


def test_max_unavailable_without_surge_also_completes():
    row = sim.run("rolling-update", seed=SEED, termination="abrupt", session_store="on", max_surge=0, max_unavailable=2,
                  **SMALL).summary.iloc[0]
    assert row.all_reconnected and row.sessions_lost == 0


def test_same_seed_same_summary():
    a = sim.run("rolling-update", seed=3, **SMALL)
    b = sim.run("rolling-update", seed=3, **SMALL)
    c = sim.run("rolling-update", seed=4, **SMALL)
    assert a.summary.equals(b.summary) and a.series["per_second"].equals(b.series["per_second"])
    assert not a.summary.equals(c.summary)


@pytest.mark.parametrize("field, value", [("clients", 0), ("pods", 0), ("close_code", 1000), ("policy", "fastest"),
                                          ("termination", "maybe"), ("strategy", "nope"), ("max_surge", -1),
                                          ("drain_period", 40.0), ("horizon", 20.0)])
def test_bad_parameters_name_the_field(field, value):
    with pytest.raises(ParameterError) as err:
        RollingUpdateParams(**{field: value})
    assert err.value.parameter == field


def test_surge_and_unavailable_cannot_both_be_zero():
    with pytest.raises(ParameterError) as err:
        RollingUpdateParams(max_surge=0, max_unavailable=0)
    assert err.value.parameter == "max_surge"


def test_replications_give_intervals_and_keep_the_first_run():
    one = sim.run("rolling-update", seed=SEED, termination="abrupt", session_store="off", **SMALL).summary.iloc[0]
    three = sim.run("rolling-update", seed=SEED, termination="abrupt", session_store="off", replications=3,
                    **SMALL)
    row = three.summary.iloc[0]
    assert row.replications == 3
    assert row.peak_attempts_per_s_ci_low <= row.peak_attempts_per_s <= row.peak_attempts_per_s_ci_high
    first = three.series["replications"].query("replication == 0").iloc[0]
    assert first.peak_attempts_per_s == one.peak_attempts_per_s and first.disconnections == one.disconnections
