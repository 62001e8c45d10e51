"""connection-flood and the gateway: each defence does what its real system does, and no more."""

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import sim
from sim.components.client import Client
from sim.components.security.gateway import Gateway, GatewaySpec
from sim.components.security.tokens import TokenIssuer, TokenVerifier
from sim.components.server import Server
from sim.core import Constant, Context, LinkSpec, Network, ParameterError
from sim.scenarios.q2_security.connection_flood import parse_defences

SEED = 20261124


def setup(spec, **kw):
    ctx = Context(1)
    net = Network(ctx, LinkSpec(latency=Constant(0.01)))
    issuer = TokenIssuer("HS256", seed=1)
    gate = Gateway(ctx, spec, verifier=TokenVerifier(issuer.verification_key, "HS256"))
    server = Server(ctx, "origin", network=net, gate=gate)
    return ctx, net, issuer, gate, server


def client(ctx, net, name, ip, token=None, slow=False, **kw):
    c = Client(ctx, name, net, "origin", **kw)
    c.handshake_data = {"ip": ip, "token": token, "slow": slow}
    return c


def outcome(ctx, c):
    ev = c.connect()
    ctx.run(until=ctx.now + 0.5)
    return ev.value if ev.triggered else "pending"


def test_limit_conn_counts_per_address_and_frees_on_close():
    ctx, net, _, gate, server = setup(GatewaySpec(limit_conn=2))
    a, b, c = (client(ctx, net, f"c{i}", "10.0.0.1") for i in range(3))
    assert [outcome(ctx, x) for x in (a, b, c)] == ["accepted", "accepted", "refused"]
    assert outcome(ctx, client(ctx, net, "other", "10.0.0.2")) == "accepted"
    a.close()
    ctx.run(until=ctx.now + 0.5)
    assert outcome(ctx, c) == "accepted"
    server.crash()
    assert gate.limit_conn.counts == {}  # a crash ends every connection: every count is released


def test_slow_handshakes_hold_slots_escape_limit_conn_and_get_408():
    spec = GatewaySpec(slots=3, limit_conn=1, handshake_timeout=10.0)
    ctx, net, _, gate, server = setup(spec)
    slow = [client(ctx, net, f"s{i}", "10.0.0.9", slow=True, connect_timeout=100) for i in range(3)]
    events = [s.connect() for s in slow]
    ctx.run(until=1.0)
    assert gate.pending == 3 and not any(e.triggered for e in events)  # limit_conn=1 never saw them
    assert outcome(ctx, client(ctx, net, "user", "10.0.0.1")) == "refused"  # no slot left
    ctx.run(until=10.5)
    assert all(e.value == "refused" for e in events) and gate.pending == 0
    assert outcome(ctx, client(ctx, net, "user2", "10.0.0.1")) == "accepted"


def test_the_edge_absorbs_slow_handshakes():
    ctx, net, _, gate, server = setup(GatewaySpec(slots=1, edge=True))
    for i in range(50):
        client(ctx, net, f"s{i}", "10.0.0.9", slow=True, connect_timeout=100).connect()
    assert outcome(ctx, client(ctx, net, "user", "10.0.0.1")) == "accepted"


def test_authentication_before_upgrade_refuses_missing_expired_and_forged_tokens():
    ctx, net, issuer, gate, server = setup(GatewaySpec(require_token=True))
    good = issuer.issue("u", "read", 0.0, 60)
    forged = TokenIssuer("HS256", seed=99).issue("u", "read", 0.0, 60)
    assert outcome(ctx, client(ctx, net, "a", "1", token=good)) == "accepted"
    assert outcome(ctx, client(ctx, net, "b", "2", token=None)) == "refused"
    assert outcome(ctx, client(ctx, net, "c", "3", token=forged)) == "refused"
    ctx.run(until=61)
    assert outcome(ctx, client(ctx, net, "d", "4", token=good)) == "refused"  # expired by now
    assert server.connections.keys() == {"a"}


def test_idle_connections_are_reset_and_pinging_ones_kept():
    ctx, net, _, gate, server = setup(GatewaySpec(idle_timeout=60.0))
    silent = client(ctx, net, "silent", "1")
    talker = client(ctx, net, "talker", "2", heartbeat_interval=25.0)
    lost = []
    silent.on_disconnect = lambda c, how, code: lost.append((c.name, how, round(ctx.now)))
    silent.connect(), talker.connect()
    ctx.run(until=300)
    assert lost == [("silent", "reset", 60)]
    assert "talker" in server.connections and "silent" not in server.connections


def test_parse_defences():
    assert parse_defences("none,waf+limit_conn,all")[1] == ("limit_conn+waf", frozenset({"limit_conn", "waf"}))
    with pytest.raises(ParameterError):
        parse_defences("firewall")


# --- the scenario ------------------------------------------------------------------------------
SMALL = dict(users=40, nat_users=10, hold_attackers=60, flood_attackers=10, slow_attackers=20, slots=100,
             attack_start=20.0, attack_end=60.0, horizon=70.0)


@pytest.fixture(scope="module")
def flood():
    return sim.run("connection-flood", seed=SEED, **SMALL).summary.set_index("defences")


def test_the_undefended_server_is_filled_by_attackers(flood):
    none = flood.loc["none"]
    assert none.baseline_success_rate > 0.95
    assert none.legitimate_success_rate < 0.8 * none.baseline_success_rate
    assert none.attacker_connections > 0.5 * SMALL["slots"]


def test_auth_before_upgrade_stops_an_unauthenticated_flood_entirely(flood):
    auth = flood.loc["auth"]
    assert auth.attacker_connections == 0
    assert auth.legitimate_success_rate > 0.95


def test_ip_quotas_punish_users_behind_nat(flood):
    assert flood.loc["limit_conn"].nat_success_rate < 0.6 * flood.loc["none"].baseline_success_rate
    assert flood.loc["limit_conn"].direct_success_rate > 0.95


def test_an_authenticated_flood_passes_auth_and_the_edge():
    s = sim.run("connection-flood", seed=SEED, **SMALL, defences="none,edge+auth", attacker_tokens=True,
                attack_ips=500).summary.set_index("defences")
    assert s.loc["edge+auth"].attacker_connections > 0.5 * SMALL["slots"]
    assert s.loc["edge+auth"].legitimate_success_rate < 0.95  # vs > 0.95 when the flood has no tokens


def test_without_attack_no_defence_refuses_a_legitimate_user_within_its_quota():
    # every user has its own address (no NAT), capacity is ample: the limits must never refuse one
    s = sim.run("connection-flood", seed=SEED, **{**SMALL, "nat_users": 0, "hold_attackers": 0, "flood_attackers": 0,
                                                 "slow_attackers": 0}, defences="all").summary.iloc[0]
    refusals = [c for c in s.index if c.startswith("refused_") and not c.endswith(("_low", "_high"))]
    assert all(s[c] == 0 for c in refusals), s[refusals]
    assert s.legitimate_success_rate > 0.99


def test_same_seed_same_result():
    a = sim.run("connection-flood", seed=3, **SMALL, defences="none,all")
    b = sim.run("connection-flood", seed=3, **SMALL, defences="none,all")
    assert a.summary.equals(b.summary) and a.series["per_second"].equals(b.series["per_second"])


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hold=st.integers(0, 60), flood_n=st.integers(0, 20), slow=st.integers(0, 30), ips=st.integers(1, 200))
def test_unauthenticated_attack_mixes_never_get_a_connection_through_auth(hold, flood_n, slow, ips):
    s = sim.run("connection-flood", seed=SEED, **{**SMALL, "hold_attackers": hold, "flood_attackers": flood_n,
                                                 "slow_attackers": slow, "attack_ips": ips},
                defences="auth").summary.iloc[0]
    assert s.attacker_connections == 0
    # slow handshakes still take origin slots until their 408 (the token is read after the header)
    assert s.legitimate_success_rate > 0.9 or slow > 0


def test_bad_parameters_name_themselves():
    for bad, name in [(dict(defences="moat"), "defences"), (dict(nat_users=500), "nat_users"),
                      (dict(waf_window=30.0), "waf_window"), (dict(attack_end=500.0), "attack_end")]:
        with pytest.raises(ParameterError) as e:
            sim.run("connection-flood", seed=1, **bad)
        assert e.value.parameter == name if hasattr(e.value, "parameter") else name in str(e.value)
