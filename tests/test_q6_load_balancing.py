"""``load-balancing`` and the balancer component: stickiness, keys moved, NAT, two choices, determinism."""

import pytest
from hypothesis import given, settings, strategies as st

import sim
from sim.components.load_balancer import KEYED, POLICIES, ClientKey, LoadBalancer, Sessions, stable_hash
from sim.core import Context, ParameterError
from sim.scenarios.q6_deployment.load_balancing import LoadBalancingParams

SEED = 20261124
SMALL = dict(clients=2000, ramp=10.0, reconnect_window=10.0, bins=(10, 100, 1000), bins_replications=3)


def keys(n, seed=1):
    rng = Context(seed).rng("ips")
    return [ClientKey(f"k{i}", int(ip)) for i, ip in enumerate(rng.integers(0, 2**32, size=n))]


@settings(derandomize=True, deadline=None, max_examples=30)
@given(policy=st.sampled_from(["ip_hash", "consistent_hash", "sticky_cookie"]), nodes=st.integers(2, 12),
       victim=st.integers(0, 11), churn=st.integers(1, 50))
def test_sticky_and_hash_policies_never_move_a_live_session_while_its_node_is_healthy(policy, nodes, victim, churn):
    lb = LoadBalancer(Context(3), policy, [f"n{i}" for i in range(nodes)])
    ks = keys(300)
    home = {k: lb.route(k) for k in ks}
    for i in range(churn):  # other clients come and go, loads change
        lb.opened(lb.route(ks[i]))
    down = f"n{victim % nodes}"
    lb.mark_down(down)
    for k in ks:
        again = lb.route(k)
        if home[k].name != down:
            assert again is home[k]
        else:
            assert again.name != down


@pytest.mark.parametrize("nodes", [5, 10, 20])
def test_consistent_hashing_moves_about_one_key_in_n_plus_one_and_modulo_moves_most(nodes):
    ks = keys(20_000)
    moved = {}
    for policy in ("consistent_hash", "modulo_hash"):
        lb = LoadBalancer(Context(1), policy, [f"n{i}" for i in range(nodes)])
        before = [lb.owner(k) for k in ks]
        lb.add(f"n{nodes}")
        moved[policy] = sum(a is not lb.owner(k) for a, k in zip(before, ks)) / len(ks)
    assert 0.5 / (nodes + 1) <= moved["consistent_hash"] <= 2 / (nodes + 1)
    assert moved["modulo_hash"] > 0.5


def test_nat_makes_ip_hash_imbalanced_but_not_the_key_hash():
    def imbalance(per_nat):
        s = sim.run("load-balancing", seed=SEED, policy="ip_hash,consistent_hash", clients_per_nat=per_nat,
                    nat_share=0.5, **SMALL).summary.set_index("policy")
        return s.imbalance
    alone, natted = imbalance(1), imbalance(200)
    assert natted["ip_hash"] > 1.5 * alone["ip_hash"]
    assert natted["consistent_hash"] == pytest.approx(alone["consistent_hash"], rel=0.25)


def test_all_clients_behind_one_nat_land_on_one_node():
    lb = LoadBalancer(Context(0), "ip_hash", [f"n{i}" for i in range(8)])
    nat = 0x0A141E00  # 10.20.30.0/24: clients differ only in the last octet
    assert len({lb.route(ClientKey(f"u{i}", nat + i)).name for i in range(200)}) == 1


@pytest.fixture(scope="module")
def everything():
    return sim.run("load-balancing", seed=SEED, **SMALL)


def test_power_of_two_max_load_is_below_one_random_choice(everything):
    bins = everything.series["balls_into_bins"]
    assert (bins.max_load_two_choices < bins.max_load_one_choice).all()
    big = bins.set_index("n").loc[1000]
    assert big.max_load_two_choices <= big.theory_two_choices + 2  # ln ln n / ln 2 + O(1)
    s = everything.summary.set_index("policy")
    assert s.loc["power_of_two", "imbalance"] < s.loc["random", "imbalance"]


def test_summary_columns_and_session_loss_by_policy(everything):
    s = everything.summary.set_index("policy")
    assert list(s.index) == list(POLICIES)
    for column in ("imbalance", "sessions_lost", "keys_moved_fraction"):
        assert column in s.columns
    for policy in KEYED:
        assert s.loc[policy, "sessions_lost"] == 0  # the reconnect lands where the session is
    for policy in ("round_robin", "random", "power_of_two"):
        assert s.loc[policy, "sessions_lost_fraction"] > 0.8  # ~ (N-1)/N land elsewhere
    assert s.loc["round_robin", "imbalance"] == 1.0
    assert s.loc["sticky_cookie", "keys_moved_fraction"] == 0
    assert s.loc["consistent_hash", "keys_moved_fraction"] < 2 / 21
    assert s.loc["modulo_hash", "keys_moved_fraction"] > 0.5
    assert s.keys_moved_fraction.isna().sum() == len(POLICIES) - len(KEYED)


def test_a_session_store_saves_every_session():
    s = sim.run("load-balancing", seed=SEED, policy="round_robin", session_store="on", **SMALL).summary.iloc[0]
    assert s.sessions_lost == 0 and s.sessions_fetched + s.sessions_kept == s.reconnects


def test_sessions_live_in_node_memory():
    sessions = Sessions()
    sessions.node_up("a")
    sessions.node_up("b")
    assert sessions.resume("c", "a")[0] == "created"
    assert sessions.resume("c", "a")[0] == "kept"
    assert sessions.resume("c", "b")[0] == "lost"
    sessions.node_down("b")
    assert sessions.resume("c", "b")[0] == "lost"  # same name, but the memory went with the process


def test_health_check_marks_a_dead_node_down_after_the_delay():
    ctx = Context(0)
    lb = LoadBalancer(ctx, "round_robin", ["a", "b"], health_check_delay=5.0)
    lb.fail("a")
    ctx.run(until=4.9)
    assert [b.name for b in lb.healthy] == ["a", "b"]
    ctx.run(until=5.1)
    assert [b.name for b in lb.healthy] == ["b"]


def test_stable_hash_is_the_same_in_another_process():
    import os
    import subprocess
    import sys

    code = "from sim.components.load_balancer import stable_hash; print(stable_hash('client-1'))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # Python's own hash() would change with this
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert int(out.stdout) == stable_hash("client-1")


def test_same_seed_same_summary():
    a = sim.run("load-balancing", seed=5, **SMALL)
    b = sim.run("load-balancing", seed=5, **SMALL)
    c = sim.run("load-balancing", seed=6, **SMALL)
    assert a.summary.equals(b.summary) and a.series["per_second"].equals(b.series["per_second"])
    assert not a.summary.equals(c.summary)


@pytest.mark.parametrize("field, value", [("clients", 0), ("nodes", 0), ("policy", "weighted"), ("nat_share", 1.5),
                                          ("clients_per_nat", 0), ("ramp", 0.0), ("bins", (2,)),
                                          ("virtual_nodes", 0)])
def test_bad_parameters_name_the_field(field, value):
    with pytest.raises(ParameterError) as err:
        LoadBalancingParams(**{field: value})
    assert err.value.parameter == field


def test_clients_per_nat_cannot_exceed_clients():
    with pytest.raises(ParameterError) as err:
        LoadBalancingParams(clients=10, clients_per_nat=50)
    assert err.value.parameter == "clients_per_nat"


# ============================================ fidelity to NGINX's own C code (nginx/nginx) ====
# The references below are transcriptions of the C functions, written apart from the model
# (nginx/nginx commit 3f6f7824d4e2eb1ac37dec76683d525ac0ff521c); None means "falls back to round robin".

def _nginx_ip_hash_reference(octets, down):
    """ngx_http_upstream_get_ip_hash_peer over len(down) servers of weight 1; down[i]: server i is down."""
    if len(down) < 2:
        return None
    h, tries = 89, 0
    while True:
        for octet in octets:
            h = (h * 113 + octet) % 6271
        p = h % len(down)
        if not down[p]:
            return p, tries + 1
        tries += 1
        if tries > 20:
            return None


def _nginx_chash_reference(names, down, key):
    """ngx_http_upstream_init_chash + find_chash_point + get_chash_peer, servers of weight 1."""
    import struct
    import zlib
    points = []
    for i, name in enumerate(names):
        host, _, port = name.rpartition(":") if name.rpartition(":")[2].isdigit() else (name, "", "")
        base = host.encode() + b"\0" + port.encode()
        prev = 0
        for _ in range(160):
            prev = zlib.crc32(base + struct.pack("<I", prev))
            points.append((prev, i))
    points.sort()
    ring = [pt for k, pt in enumerate(points) if k == 0 or pt[0] != points[k - 1][0]]
    if len(names) < 2:
        return None
    h = zlib.crc32(key.encode())
    lo, hi = 0, len(ring)
    while lo < hi:  # first point >= h
        mid = (lo + hi) // 2
        if h > ring[mid][0]:
            lo = mid + 1
        elif h < ring[mid][0]:
            hi = mid
        else:
            lo = hi = mid
    index, tries = lo, 0
    while True:
        server = ring[index % len(ring)][1]
        if not down[server]:
            return server
        index += 1
        tries += 1
        if tries > 20:
            return None


def test_ip_hash_counts_tries_as_nginx_does_before_round_robin():
    n, healthy = 20, (3, 11)  # most servers down: some clients need many hashed picks
    lb = LoadBalancer(Context(0), "ip_hash", [f"n{i}" for i in range(n)])
    down = [i not in healthy for i in range(n)]
    for i in range(n):
        if down[i]:
            lb.mark_down(f"n{i}")
    picks_seen = set()
    for k in keys(3000, seed=7):
        expected = _nginx_ip_hash_reference(k.octets, down)
        got = lb.owner(k)
        if expected is None:
            assert got is None  # NGINX gives up hashing: round robin
            assert lb.route(k).name in {f"n{i}" for i in healthy}
        else:
            assert got is not None and got.name == f"n{expected[0]}"
            picks_seen.add(expected[1])
    assert 21 in picks_seen  # a client found on the 21st pick: the model used to give up after 20


def test_consistent_hash_places_points_and_keys_as_nginx_does():
    import struct
    import zlib

    from sim.components.load_balancer import nginx_chash_points
    # point 0 of server "10.0.0.1:8080" is crc32("10.0.0.1" NUL "8080" 00 00 00 00), point 1 chains on it
    first, second = nginx_chash_points("10.0.0.1:8080", 2)
    assert first == zlib.crc32(b"10.0.0.1\x008080\x00\x00\x00\x00")
    assert second == zlib.crc32(b"10.0.0.1\x008080" + struct.pack("<I", first))
    assert nginx_chash_points("unix:/tmp/app.sock", 1)[0] == zlib.crc32(b"/tmp/app.sock\x00\x00\x00\x00\x00")
    names = [f"10.0.0.{i}:8080" for i in range(1, 9)]
    lb = LoadBalancer(Context(0), "consistent_hash", names)
    for k in keys(2000, seed=3):
        assert lb.owner(k).name == names[_nginx_chash_reference(names, [False] * 8, k.name)]


def test_consistent_hash_gives_up_after_21_points_on_down_servers_as_nginx_does():
    names = [f"backend-{i}" for i in range(12)]
    down = [i not in (0, 1) for i in range(12)]  # ten of twelve down: runs of 21 down points happen
    lb = LoadBalancer(Context(0), "consistent_hash", names)
    for name, is_down in zip(names, down):
        if is_down:
            lb.mark_down(name)
    fell_back = 0
    for k in keys(3000, seed=5):
        expected = _nginx_chash_reference(names, down, k.name)
        got = lb.owner(k)
        if expected is None:
            fell_back += 1
            assert got is None and lb.route(k).name in names[:2]
        else:
            assert got.name == names[expected]
    assert fell_back > 0


def _scalar_replay(lb, ks, kinds, clients):
    """What route_batch must equal: route/opened/closed one event at a time."""
    from sim.components.load_balancer import CLOSE
    where, out = {}, []
    for kind, c in zip(kinds, clients):
        if kind == CLOSE:
            b = where.pop(c)
            lb.closed(b)
        else:
            b = where[c] = lb.route(ks[c])
            lb.opened(b)
        out.append(b.index)
    return out


@settings(derandomize=True, deadline=None, max_examples=40)
@given(policy=st.sampled_from(POLICIES), nodes=st.integers(1, 9), n=st.integers(1, 60), seed=st.integers(0, 10**6),
       fallback=st.sampled_from(["round_robin", "least_connections"]))
def test_route_batch_and_owners_match_the_one_at_a_time_balancer(policy, nodes, n, seed, fallback):
    import numpy as np
    from sim.components.load_balancer import CLOSE, OPEN, REOPEN, ClientKeys

    rng = np.random.default_rng(seed)
    ips = rng.integers(0, 2**32, size=n) & ~np.int64(rng.integers(0, 2) * 255)  # sometimes a shared /24
    batch_keys = ClientKeys("c-", ips)
    ks = [batch_keys.key(i) for i in range(n)]
    times = np.concatenate([rng.uniform(0, 1, n), rng.uniform(1, 2, n), rng.uniform(2, 3, n)])
    kinds = np.repeat([OPEN, CLOSE, REOPEN], n)[np.argsort(times, kind="stable")]
    clients = np.tile(np.arange(n), 3)[np.argsort(times, kind="stable")]
    names = [f"n{i}" for i in range(nodes)]
    one = LoadBalancer(Context(seed), policy, names, fallback=fallback)
    many = LoadBalancer(Context(seed), policy, names, fallback=fallback)
    assert _scalar_replay(one, ks, kinds.tolist(), clients.tolist()) == many.route_batch(batch_keys, kinds, clients).tolist()
    assert [b.active for b in one.backends] == [b.active for b in many.backends]
    assert one.routed == many.routed
    if policy != "sticky_cookie":  # its batch cookies serve owners(), not route()
        assert one.route(ks[0]).index == many.route(ks[0]).index  # round-robin pointers and streams left alike
    for change in (lambda lb: lb.add("extra"), lambda lb: lb.mark_down("n0")):
        change(one), change(many)
        expected = [-1 if (b := one.owner(k)) is None else b.index for k in ks]
        assert many.owners(batch_keys).tolist() == expected


def test_resume_batch_matches_resume():
    import numpy as np
    from sim.components.load_balancer import SessionStore
    from sim.core.distributions import Uniform

    rng = np.random.default_rng(4)
    clients, nodes = rng.integers(0, 30, 200), rng.integers(0, 4, 200)
    names = ["a", "b", "c", "d"]
    results = []
    for batch in (False, True):
        sessions = Sessions(SessionStore(Context(2), Uniform(0.001, 0.01)))
        for name in names[:3]:  # "d" is down: nothing is kept there
            sessions.node_up(name)
        if batch:
            outcome, delays = sessions.resume_batch(clients, nodes, names)
            pairs = [(Sessions.OUTCOMES[o], d) for o, d in zip(outcome.tolist(), delays.tolist())]
        else:
            pairs = [sessions.resume(int(c), names[i]) for c, i in zip(clients, nodes)]
        results.append((pairs, sessions.counts, [sessions.holder(c) for c in range(30)], sessions.store.fetches))
    assert results[0] == results[1]
