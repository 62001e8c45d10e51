"""The solutions of notebook 01 (cloud services) give the right answers, checked against the simulator."""

import pytest

import sim
from sim.components import appsync as asx
from sim.components import realtime_tree as rt

SEED = 20261124  # the test suite's one seed, as in test_queue.py


@pytest.fixture(scope="module")
def q1(load_solutions):
    return load_solutions("01_cloud_services_solutions")


NODE = ("presence", "r1", "ann")


@pytest.mark.parametrize("auth, value, allowed", [
    ({"uid": "ann"}, True, True), ({"uid": "ann"}, False, True), ({"uid": "ann"}, "yes", False),
    ({"uid": "ann"}, 1, False), ({"uid": "bob"}, True, False), (None, True, False),
])
def test_exercise_1_presence_rules(q1, auth, value, allowed):
    rules = rt.Rules(q1.presence_rules())
    assert rules.can_write(NODE, auth, None, rt.set_in(None, NODE, value)) == allowed
    assert rules.can_read(("presence", "r1"), {"uid": "x"}, None) and not rules.can_read(("presence", "r1"), None, None)


def test_exercise_1_rules_work_in_a_running_database(q1):
    from sim.core import Constant, Context, LinkSpec, Network

    ctx = Context(SEED)
    net = Network(ctx, LinkSpec(latency=Constant(0.02), fifo=True))
    db = rt.Database(q1.presence_rules())
    rt.RealtimeServer(ctx, "db", net, db)
    ann, bob = (rt.RealtimeClient(ctx, n, net, "db", auth={"uid": n}) for n in ("ann", "bob"))
    for c in (ann, bob):
        c.connect()
    ctx.run(1)
    ann.set("/presence/r1/ann", True)
    bob.set("/presence/r1/ann", False)
    ctx.run(2)
    assert db.get("/presence/r1/ann") is True and bob.rejected


@pytest.mark.parametrize("payload, passes", [
    ({"value": 150, "title": "cpu"}, True), ({"value": 100}, True), ({"value": 99.9, "title": "cpu"}, False),
    ({"value": 1, "title": "!disk"}, True), ({"value": 1, "title": "disk!"}, False), ({}, False),
])
def test_exercise_2_filter(q1, payload, passes):
    spec = asx.check_filter(q1.alert_filter())
    assert asx.filter_matches(spec, payload) == passes


def test_exercise_3_first_rate_over_the_threshold(q1):
    rate = q1.first_rate_over(0.25, seed=SEED)
    limit = rt.presets()["limits"]["write_rate_per_second"]["value"]
    assert rate is not None and rate > limit          # below the documented ceiling nothing queues for long
    table = sim.run("cloud-sync", seed=SEED, service="rtdb", workload="dashboard", users=2, duration_s=6.0,
                    write_rates=q1.RATES, write_burst_s=2.0, depths=(1,)).series["write_limit"]
    rtdb = table[table.service == "rtdb"].set_index("offered_rate")
    assert rtdb.loc[rate, "commit_wait_p99_s"] > 0.25
    assert (rtdb[rtdb.index < rate].commit_wait_p99_s <= 0.25).all()
