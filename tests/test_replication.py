"""The one replication runner (sim.core.replication)."""

import math

import pandas as pd
import pytest

from sim.core import Context, ParameterError, mean_ci
from sim.core.replication import distinguishable, replicate, summarize


def once(r: int):
    """Two configurations per replication, drawing from the replication's own streams."""
    ctx = Context(7, replication=r)
    rows = [{"mode": m, "value": float(ctx.rng(m).normal()), "count": r + 1} for m in ("a", "b")]
    return rows, {"timeline": pd.DataFrame({"t": [0.0, 1.0], "x": [r, r]})}


def test_rows_and_series_carry_their_replication():
    reps = replicate(3, once)
    assert list(reps.rows.columns) == ["replication", "mode", "value", "count"]
    assert list(reps.rows["replication"]) == [0, 0, 1, 1, 2, 2]
    timeline = reps.series["timeline"]
    assert list(timeline.columns) == ["replication", "t", "x"]
    assert (timeline["replication"] == timeline["x"]).all()


def test_summary_is_mean_ci_by_key_in_first_seen_order():
    reps = replicate(4, once)
    s = reps.summary(["mode"], ["value", "count"])
    assert list(s.columns) == ["mode", "value", "value_ci_low", "value_ci_high",
                               "count", "count_ci_low", "count_ci_high", "replications"]
    assert list(s["mode"]) == ["a", "b"]
    for mode, row in s.set_index("mode").iterrows():
        values = reps.rows.loc[reps.rows["mode"] == mode, "value"]
        assert (row["value"], row["value_ci_low"], row["value_ci_high"]) == pytest.approx(mean_ci(values))
        assert row["replications"] == 4
    assert s["count"].tolist() == [2.5, 2.5]


def test_one_replication_keeps_values_and_their_types():
    s = replicate(1, once).summary(["mode"], ["value", "count"])
    assert s["count"].dtype.kind == "i" and s["count"].tolist() == [1, 1]
    assert s[["value_ci_low", "value_ci_high"]].isna().all().all()
    assert distinguishable(s, "value", {"mode": "a"}, {"mode": "b"}) is None


def test_first_replications_do_not_depend_on_how_many():
    a = replicate(2, once).rows
    b = replicate(5, once).rows
    assert a.equals(b.iloc[: len(a)].reset_index(drop=True))


def test_same_seed_same_summary():
    assert replicate(3, once).summary(["mode"], ["value"]).equals(replicate(3, once).summary(["mode"], ["value"]))


def test_a_single_row_per_replication_and_no_key():
    reps = replicate(3, lambda r: {"x": float(r)})
    s = summarize(reps.rows, [], ["x"])
    assert len(s) == 1 and s.loc[0, "x"] == 1.0 and s.loc[0, "replications"] == 3


def test_distinguishable_compares_intervals():
    s = pd.DataFrame({"k": ["a", "b", "c"], "x_ci_low": [0.0, 0.5, 2.0], "x_ci_high": [1.0, 1.5, 3.0]})
    assert distinguishable(s, "x", {"k": "a"}, {"k": "b"}) is False
    assert distinguishable(s, "x", {"k": "a"}, {"k": "c"}) is True
    with pytest.raises(ValueError):
        distinguishable(s, "x", {"k": "a"}, {"k": "z"})


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_count_names_replications(bad):
    with pytest.raises(ParameterError) as err:
        replicate(bad, once)
    assert err.value.parameter == "replications"


def test_default_columns_are_the_numeric_ones_and_labels_are_kept():
    reps = replicate(2, lambda r: [{"mode": m, "label": f"{m}!", "ok": True, "x": r + i} for i, m in enumerate("ab")])
    s = reps.summary(["mode"])
    assert list(s.columns) == ["mode", "label", "ok", "ok_ci_low", "ok_ci_high", "x", "x_ci_low", "x_ci_high",
                               "replications"]
    assert s["label"].tolist() == ["a!", "b!"] and s["x"].tolist() == [0.5, 1.5]


SCENARIOS_WITH_REPLICATIONS = ["queue", "backoff-contention", "push-vs-webhook", "crdt-convergence", "broker-fanout",
                               "offline-buffer", "reconnect-storm", "transport-fallback"]


@pytest.mark.parametrize("name", SCENARIOS_WITH_REPLICATIONS)
def test_scenarios_take_the_standard_replications_parameter(name):
    import sim

    info = {i.name: i for i in sim.get(name).params_type.describe()}
    assert info["replications"].type == "int" and info["replications"].allowed.startswith(">= 1")
    with pytest.raises(ParameterError) as err:
        sim.get(name).params_type(replications=0)
    assert err.value.parameter == "replications"


def test_a_scenario_s_first_replications_do_not_depend_on_how_many():
    import sim

    small = dict(clients=3, duration=30.0, mode="buffer,none")
    one = sim.run("offline-buffer", seed=4, replications=1, **small)
    three = sim.run("offline-buffer", seed=4, replications=3, **small)
    rows = three.series["replications"]
    assert one.series["replications"].equals(rows[rows["replication"] == 0].reset_index(drop=True))
    assert three.summary["replications"].tolist() == [3, 3]
    lost = rows.loc[rows["mode"] == "none", "lost"]
    assert three.summary.set_index("mode").loc["none", "lost"] == pytest.approx(lost.mean())
