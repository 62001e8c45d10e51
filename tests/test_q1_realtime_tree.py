"""The Firebase-RTDB-like tree: paths, rules, listeners, latency compensation, offline queue,
onDisconnect, limits (course question 1)."""

import pytest
from hypothesis import given, settings, strategies as st

from sim.components.realtime_tree import (
    MAX_DEPTH, Database, PathError, PushIdGenerator, Query, RealtimeClient, RealtimeServer, RuleError, Rules,
    diff_events, get_in, make_write, normalize, parse_path, set_in,
)
from sim.core import Constant, Context, LinkSpec, Network

SEED = 20261124


def world(rules=None, root=None, write_rate=None, latency=0.05, seed=SEED, **server):
    ctx = Context(seed)
    net = Network(ctx, LinkSpec(latency=Constant(latency), fifo=True))
    db = Database(rules)
    db.root = normalize(root) if root is not None else None
    srv = RealtimeServer(ctx, "db", net, db, write_rate=write_rate, commit_latency=Constant(0.01), **server)
    return ctx, net, db, srv


def client(ctx, net, name, uid=None):
    c = RealtimeClient(ctx, name, net, "db", auth=None if uid is None else {"uid": uid})
    c.connect()
    return c


# --- paths and values ---------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["/a.b", "/a$", "/a#", "/a[0]", "/a//b", "/" + "x" * 769, "/ctl\x01"])
def test_keys_rtdb_refuses_raise_path_error(bad):
    with pytest.raises(PathError):
        parse_path(bad)


def test_depth_limit_is_less_than_32_levels():
    parse_path("/".join(["k"] * (MAX_DEPTH - 1)))
    with pytest.raises(PathError, match="32"):
        parse_path("/".join(["k"] * MAX_DEPTH))
    nested = {}
    node = nested
    for _ in range(MAX_DEPTH):
        node["k"] = {}
        node = node["k"]
    node["v"] = 1
    with pytest.raises(PathError):
        make_write(1, "c", "set", "/a", nested)


def test_arrays_become_objects_and_empty_objects_vanish():
    assert normalize([1, None, {"a": {}}]) == {"0": 1}
    root = set_in(None, ("a", "b"), 1)
    assert set_in(root, ("a", "b"), None) is None  # removing the last child removes the parents


def test_update_paths_must_not_overlap():
    with pytest.raises(PathError, match="overlap"):
        make_write(1, "c", "update", "/", {"a": 1, "a/b": 2})


def test_push_ids_sort_chronologically_even_within_one_millisecond():
    import random

    gen = PushIdGenerator(random.Random(1).random)
    ids = [gen.next(t) for t in (0.0, 0.0, 0.0, 0.0005, 0.002, 1.5, 1.5)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) and all(len(i) == 20 for i in ids)


# --- rules ------------------------------------------------------------------------------------
def test_read_and_write_grants_cascade_and_cannot_be_revoked_deeper():
    rules = Rules({"rules": {"a": {".read": True, "b": {".read": False}}, "c": {"d": {".read": True}}}})
    assert rules.can_read(("a", "b", "x"), None, None)       # granted at /a: the deeper false is ignored
    assert rules.can_read(("c", "d"), None, None)
    assert not rules.can_read(("c",), None, None)            # rules are not filters


def test_validate_does_not_cascade_and_every_one_must_pass():
    rules = Rules({"rules": {".write": True, "m": {"$id": {".validate": "newData.hasChildren(['t'])",
                                                           "t": {".validate": "newData.isString()"}}}}})
    ok = set_in(None, ("m", "1"), {"t": "hi"})
    assert rules.can_write(("m", "1"), None, None, ok)
    assert not rules.can_write(("m", "1"), None, None, set_in(None, ("m", "1"), {"t": 5}))
    assert not rules.can_write(("m", "1"), None, None, set_in(None, ("m", "1"), {"x": "hi"}))
    assert rules.can_write(("m", "1"), None, ok, None)       # deletes are not validated


@pytest.mark.parametrize("bad", ["auth.uid ==", "import os", "__import__('os')", "auth.uid == $", "foo == 1",
                                 "data.val(", "'unterminated"])
def test_a_rule_that_does_not_parse_is_a_user_error(bad):
    with pytest.raises(RuleError):
        Rules({"rules": {".read": bad}})


def test_wildcards_capture_the_key():
    rules = Rules({"rules": {"users": {"$uid": {".write": "auth != null && auth.uid == $uid"}}}})
    new = set_in(None, ("users", "alice"), {"n": 1})
    assert rules.can_write(("users", "alice"), {"uid": "alice"}, None, new)
    assert not rules.can_write(("users", "alice"), {"uid": "bob"}, None, new)
    assert not rules.can_write(("users", "alice"), None, None, new)


# --- listeners ----------------------------------------------------------------------------------
def test_query_limit_to_last_raises_child_removed_when_a_child_leaves_the_window():
    q = Query(order_by_child="t", limit_to_last=2)
    old = q.window({"a": {"t": 1}, "b": {"t": 2}, "c": {"t": 3}})
    new = q.window({"a": {"t": 1}, "b": {"t": 2}, "c": {"t": 3}, "d": {"t": 4}})
    types = {(e.type, e.key) for t in ("child_added", "child_removed") for e in diff_events(t, (), q, old, new, 0, False)}
    assert types == {("child_added", "d"), ("child_removed", "b")}


def test_child_moved_when_the_sort_order_changes():
    q = Query(order_by_child="score")
    old = {"a": {"score": 1}, "b": {"score": 2}}
    new = {"a": {"score": 3}, "b": {"score": 2}}
    moved = diff_events("child_moved", (), q, old, new, 0, False)
    assert [e.key for e in moved] == ["a"] and moved[0].previous == "b"


def test_ancestor_listener_is_handed_its_whole_subtree_but_the_wire_carries_the_delta():
    big = {f"w{i}": {"title": f"widget {i}", "value": i} for i in range(50)}
    ctx, net, db, srv = world(root={"dash": big})
    reader = client(ctx, net, "reader")
    writer = client(ctx, net, "writer")
    ctx.run(1)
    reader.on("/dash", "value")
    ctx.run(2)
    wire_before = srv.m_wire.value
    writer.set("/dash/w7/value", 1000)
    ctx.run(3)
    event = reader.events[-1]
    assert event.value["w7"]["value"] == 1000 and event.snapshot_bytes > 1000   # whole subtree to the callback
    assert srv.m_wire.value - wire_before < 100                                # only the change on the wire


# --- latency compensation, rejections, offline, onDisconnect -----------------------------------
def test_rejected_write_fires_locally_then_rolls_back_and_is_never_seen_by_others():
    rules = {"rules": {".read": True, "locked": {".write": False}, "open": {".write": True}}}
    ctx, net, db, srv = world(rules)
    w, other = client(ctx, net, "w", "u1"), client(ctx, net, "o", "u2")
    ctx.run(1)
    w.on("/locked", "value")
    other.on("/locked", "value")
    ctx.run(2)
    w.set("/locked/x", 1)
    ctx.run(3)
    values = [(e.value, e.local) for e in w.events]
    assert values == [(None, False), ({"x": 1}, True), (None, False)]        # local, then rolled back
    assert [e.value for e in other.events] == [None]                         # never seen
    assert db.get("/locked") is None and w.rejected[0][1] == "permission_denied"


def test_multi_path_update_is_atomic():
    rules = {"rules": {".read": True, "a": {".write": True}, "b": {".write": False}}}
    ctx, net, db, srv = world(rules)
    c = client(ctx, net, "c", "u")
    ctx.run(1)
    c.update("/", {"a/x": 1, "b/y": 2})
    ctx.run(2)
    assert db.root is None and c.rejected
    c.update("/", {"a/x": 1, "a/z": 2})
    ctx.run(3)
    assert db.root == {"a": {"x": 1, "z": 2}}


def test_denied_read_cancels_the_listener_and_delivers_nothing():
    rules = {"rules": {"public": {".read": True}, "secret": {".read": "auth != null && auth.uid == 'admin'"},
                       ".write": True}}
    ctx, net, db, srv = world(rules, root={"secret": {"k": "v"}, "public": {"p": 1}})
    anon = client(ctx, net, "anon")
    ctx.run(1)
    got = []
    anon.on("/secret", "value", got.append)
    anon.on("/", "value", got.append)      # the root: no grant at or above it, so denied too
    ctx.run(2)
    anon.set("/secret/k", "changed")
    ctx.run(3)
    assert [e.type for e in got] == ["cancel", "cancel"]


def test_offline_writes_queue_in_order_and_are_sent_on_reconnection():
    ctx, net, db, srv = world()
    c, reader = client(ctx, net, "c"), client(ctx, net, "r")
    ctx.run(1)
    reader.on("/log", "child_added")
    ctx.run(2)
    net.partition(["c"], start=2.0, heal=200.0)   # offline for longer than the heartbeat timeout
    keys = [c.push("/log", i)[0] for i in range(5)]
    ctx.run(150)
    assert db.get("/log") is None and len(c.pending) == 5 and c.conn.state != "connected"
    ctx.run(400)
    assert [e.key for e in reader.events] == keys and list(db.get("/log").values()) == [0, 1, 2, 3, 4]
    assert not c.pending


def test_on_disconnect_runs_when_a_silent_connection_times_out_and_is_checked_against_the_rules():
    rules = {"rules": {".read": True, "presence": {"$uid": {".write": "auth != null && auth.uid == $uid"}}}}
    ctx, net, db, srv = world(rules, idle_timeout=10.0)
    alice = client(ctx, net, "alice", "alice")
    watcher = client(ctx, net, "watcher", "w")
    ctx.run(1)
    alice.set("/presence/alice", "online")
    alice.on_disconnect_set("/presence/alice", "offline")
    alice.on_disconnect_set("/presence/bob", "offline")      # refused when set: not hers
    ctx.run(2)
    assert db.get("/presence/alice") == "online"
    net.partition(["alice"], start=3.0, heal=None)            # the device vanishes: no close frame
    ctx.run(30)
    assert db.get("/presence/alice") == "offline" and db.get("/presence/bob") is None


def test_transactions_from_contending_clients_lose_no_increment():
    ctx, net, db, srv = world(root={"n": 0})
    clients = [client(ctx, net, f"c{i}") for i in range(5)]
    ctx.run(1)
    for c in clients:
        c.on("/n", "value")
    ctx.run(2)
    for c in clients:
        for _ in range(3):
            c.transaction("/n", lambda v: (v or 0) + 1)
    ctx.run(30)
    assert db.get("/n") == 15 and not any(c.rejected for c in clients)


def test_write_rate_limit_queues_writes_beyond_it():
    ctx, net, db, srv = world(write_rate=100.0)
    c = client(ctx, net, "c")
    ctx.run(1)
    done = []
    for i in range(300):   # 300 writes at once against 100 per second: the last waits ~3 s
        c.set(f"/k/{i}", i, on_complete=lambda s, t0=ctx.now: done.append(ctx.now - t0))
    ctx.run(10)
    assert len(done) == 300 and max(done) == pytest.approx(3.0 + 0.1 + 0.01, abs=0.05)


def test_write_larger_than_the_limit_is_rejected():
    ctx, net, db, srv = world()
    db.max_write_bytes = 1000
    c = client(ctx, net, "c")
    ctx.run(1)
    c.set("/big", "x" * 2000)
    ctx.run(2)
    assert c.rejected[0][1] == "write_too_big" and db.root is None


@pytest.mark.parametrize("write_rate", [None, 200.0])   # 200/s: writes still queued at the crash
def test_acknowledged_writes_survive_a_server_restart(write_rate):
    ctx, net, db, srv = world(write_rate=write_rate)
    c = client(ctx, net, "c")
    ctx.run(1)
    acked = []
    for i in range(20):
        c.set(f"/k/{i}", i, on_complete=lambda s, i=i: acked.append(i) if s == "ok" else None)
    ctx.run(1.12)
    srv.crash_and_restart(downtime=2.0)
    ctx.run(60)
    assert acked and all(db.get(f"/k/{i}") == i for i in acked)
    assert all(db.get(f"/k/{i}") == i for i in range(20))    # the rest were re-sent from the client's queue


# --- properties -----------------------------------------------------------------------------------
KEYS = st.sampled_from(["a", "b", "c"])
PATHS = st.lists(KEYS, min_size=1, max_size=3).map(tuple)
VALUES = st.one_of(st.integers(0, 3), st.none(), st.dictionaries(KEYS, st.integers(0, 3), max_size=2))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(PATHS, VALUES), min_size=1, max_size=12), st.lists(KEYS, max_size=2).map(tuple))
def test_a_value_listener_sees_every_change_at_or_below_it_exactly_once_in_order(writes, at):
    ctx, net, db, srv = world()
    writer, reader = client(ctx, net, "w"), client(ctx, net, "r")
    ctx.run(1)
    reader.on(at, "value")
    ctx.run(2)
    expected, root = [None], None
    for path, value in writes:
        root = set_in(root, path, normalize(value))
        view = get_in(root, at)
        if view != expected[-1]:
            expected.append(view)
        writer.set(path, value)
    ctx.run(10)
    assert [e.value for e in reader.events] == expected
    assert db.root == root


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(PATHS, VALUES), min_size=1, max_size=10))
def test_the_writer_converges_to_the_server_after_local_events(writes):
    ctx, net, db, srv = world()
    writer = client(ctx, net, "w")
    ctx.run(1)
    writer.on("/", "value")
    ctx.run(2)
    for path, value in writes:
        writer.set(path, value)
    ctx.run(10)
    assert writer.events[-1].value == db.root and not writer.pending


def test_same_seed_same_events():
    def run(seed):
        ctx, net, db, srv = world(seed=seed)
        a, b = client(ctx, net, "a"), client(ctx, net, "b")
        ctx.run(1)
        b.on("/m", "child_added")
        ctx.run(2)
        for i in range(10):
            a.push("/m", i)
        ctx.run(5)
        return [(e.key, e.time) for e in b.events]

    assert run(3) == run(3) and run(3) != run(4)


def test_on_disconnect_runs_on_a_clean_close_too():
    ctx, net, db, srv = world()
    alice = client(ctx, net, "alice", "alice")
    ctx.run(1)
    alice.set("/presence/alice", True)
    alice.on_disconnect_remove("/presence/alice")
    ctx.run(2)
    alice.go_offline()
    ctx.run(3)
    assert db.get("/presence") is None


def test_connections_beyond_the_limit_are_refused():
    from sim.components.realtime_tree import presets

    spark = presets()["limits"]["simultaneous_connections"]["spark_plan"]
    ctx, net, db, srv = world(max_connections=spark)
    clients = [client(ctx, net, f"c{i}") for i in range(spark + 5)]
    ctx.run(1)
    assert sum(c.online for c in clients) == spark
