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
    s = sim.run("load-balancing", seed=SEED, policy="round_robin", session_store=True, **SMALL).summary.iloc[0]
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
