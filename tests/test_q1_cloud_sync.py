"""The cloud-sync scenario (question 1): RTDB vs AppSync on the same users and network."""

import subprocess
import sys

import pytest

import sim
from sim.scenarios.q1_cloud_sync import CloudSyncParams, layout_cost, simulate, write_limit

SEED = 20261124
FAST = dict(users=8, duration_s=25.0, write_rates=(500.0, 2000.0), write_burst_s=2.0, depths=(1, 4))
COLUMNS = ["service", "workload", "latency_p50_s", "latency_p99_s", "bytes_per_update", "missed_updates",
           "rejected_writes"]


@pytest.fixture(scope="module")
def result():
    return sim.run("cloud-sync", seed=SEED, replications=2, **FAST)


def test_summary_has_the_issue_columns_for_every_service_and_workload(result):
    s = result.summary
    assert set(COLUMNS) <= set(s.columns) and {"latency_p50_s_ci_low", "replications"} <= set(s.columns)
    assert set(zip(s.service, s.workload)) == {(a, b) for a in ("rtdb", "appsync") for b in ("chat", "dashboard")}
    assert (s.latency_p50_s > 0).all() and (s.latency_p99_s >= s.latency_p50_s).all()
    assert (s.replications == 2).all()
    assert {"write_limit", "layout", "replications"} <= set(result.series)


def test_bypass_writes_are_missed_by_appsync_subscribers_only():
    p = CloudSyncParams(**{**FAST, "bypass_share": 0.5, "intruder_share": 0.0})
    rtdb = simulate(p, "rtdb", "dashboard", SEED)
    appsync = simulate(p, "appsync", "dashboard", SEED)
    assert rtdb["missed_updates"] == 0 and rtdb["backend_writes"] > 0                    # the job's writes too
    assert appsync["backend_writes"] == rtdb["backend_writes"] > 0                          # the same job
    assert appsync["missed_updates"] == appsync["backend_writes"] * p.users  # every reader misses each, only those
    assert appsync["updates"] == rtdb["updates"]                                          # same updates made


def test_rejected_writes_come_from_intruders():
    none = CloudSyncParams(**{**FAST, "intruder_share": 0.0, "bypass_share": 0.0, "vanish_share": 0.0})
    some = CloudSyncParams(**{**FAST, "intruder_share": 0.3, "bypass_share": 0.0, "vanish_share": 0.0})
    for service in ("rtdb", "appsync"):
        for workload in ("chat", "dashboard"):
            assert simulate(none, service, workload, SEED)["rejected_writes"] == 0
            row = simulate(some, service, workload, SEED)
            assert row["rejected_writes"] > 0 and row["missed_updates"] == 0


def test_on_disconnect_clears_presence_appsync_keeps_ghosts():
    p = CloudSyncParams(**{**FAST, "vanish_share": 0.5})
    vanished = round(0.5 * (p.users - 1))
    assert simulate(p, "rtdb", "chat", SEED)["ghosts"] == 0
    assert simulate(p, "appsync", "chat", SEED)["ghosts"] == vanished


def test_an_id_only_mutation_selection_delivers_null_fields():
    full = simulate(CloudSyncParams(**FAST), "appsync", "chat", SEED)
    ids = simulate(CloudSyncParams(**{**FAST, "mutation_selection": "id-only"}), "appsync", "chat", SEED)
    # author, text and createdAt of every event (the authors' own copies too) arrive null
    assert full["null_fields"] == 0 and ids["null_fields"] >= 3 * ids["deliveries"] > 0
    assert ids["null_fields"] % 3 == 0 and ids["missed_updates"] == 0


def test_an_ancestor_listener_gets_its_subtree_an_appsync_selection_gets_its_fields():
    p = CloudSyncParams(**FAST)
    rtdb, appsync = simulate(p, "rtdb", "dashboard", SEED), simulate(p, "appsync", "dashboard", SEED)
    assert rtdb["snapshot_bytes_per_event"] > 10 * appsync["snapshot_bytes_per_event"]


def test_rules_are_not_filters_a_listener_above_the_grant_gets_nothing():
    row = simulate(CloudSyncParams(**{**FAST, "listen_path": "/dashboards"}), "rtdb", "dashboard", SEED)
    assert row["deliveries"] == 0 and row["missed_updates"] == row["updates"] * FAST["users"]


def test_write_limit_caps_throughput_and_the_backlog_grows_beyond_it():
    rows = {(r["service"], r["offered_rate"]): r for r in write_limit(CloudSyncParams(**FAST), SEED, 0)}
    below, above = rows[("rtdb", 500.0)], rows[("rtdb", 2000.0)]
    assert below["achieved_rate"] == pytest.approx(500, rel=0.15) and below["backlog_at_end"] < 10
    assert above["achieved_rate"] <= 1000 * 1.01 and above["backlog_at_end"] > 1000
    assert above["commit_wait_p99_s"] > 10 * below["commit_wait_p99_s"]
    assert not rows[("appsync", 2000.0)]["limit_modelled"]


def test_nested_layout_costs_grow_with_depth_flat_does_not():
    n1, n4 = layout_cost(1, "nested", SEED, 0), layout_cost(4, "nested", SEED, 0)
    f1, f4 = layout_cost(1, "flat", SEED, 0), layout_cost(4, "flat", SEED, 0)
    assert n4["snapshot_bytes_per_write"] > n1["snapshot_bytes_per_write"] > f1["snapshot_bytes_per_write"]
    assert n4["listeners_fired_per_write"] > n1["listeners_fired_per_write"]
    assert f1 == {**f4, "nesting": 1}


def test_same_seed_same_result():
    a = sim.run("cloud-sync", seed=3, **FAST).summary
    b = sim.run("cloud-sync", seed=3, **FAST).summary
    assert a.equals(b)


@pytest.mark.parametrize("setting, name", [
    ("subscription_query=subscription { onWidget { nope } }", "subscription_query"),
    ("subscription_query=subscription {", "subscription_query"),
    ("listen_path=/dash#boards", "listen_path"),
    ("read_rule=auth.uid ==", "read_rule"),
    ("service=firebase", "service"),
])
def test_bad_input_exits_2_with_one_line(setting, name):
    proc = subprocess.run([sys.executable, "-m", "sim", "run", "cloud-sync", "--set", setting],
                          capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and name in lines[0] and "Traceback" not in proc.stderr
