"""``connection-flood``: attackers open and hold persistent connections beside legitimate users.

The course (2A) lists « DDoS via connexions persistantes » with « limiter les connexions, quotas
IP, WAF, CDN ». Here ``users`` legitimate users come and go (sessions and pauses, heartbeats every
25 s like Engine.IO), ``nat_users`` of them behind one shared address (a campus or carrier NAT).
From ``attack_start`` to ``attack_end``, attackers from ``attack_ips`` addresses try to fill the
origin's ``slots``:

* ``hold_attackers`` open a connection and keep it, silent, reconnecting 2 s after losing it or being refused;
* ``flood_attackers`` retry every 0.5 s while refused (a reconnect loop), and hold when let in;
* ``slow_attackers`` open a handshake and never finish it (slowloris), 0.5 s apart.

Each configuration of ``defences`` (see :data:`DEFENCES`, combined with ``+``, ``all`` for every
one) is run on the same seed (common random numbers). Reconnection is ``ResilientClient`` with a
``Backoff`` (users: full jitter 1-30 s; attackers: constant delays).

Summary columns: ``legitimate_success_rate`` (share of the attack window during which the users
who wanted a connection had one, averaged over 1 s samples), the same for ``nat_success_rate`` and
``direct_success_rate``, ``baseline_success_rate`` (before the attack), ``time_to_recover_s``
(from the attack's start until the share is back to 95 % of the baseline for the rest of the
attack; 0 if it never fell, nan if it never came back), ``attacker_connections`` (mean open).

Simplified: one origin; the edge's own capacity is unlimited; a refused or reset handshake costs
the origin nothing (no CPU model beyond ``admission_rate``); attackers do not adapt to defences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from sim import data
from sim.components.backoff import Textbook
from sim.components.resilient_client import ReconnectTracker, ResilientClient
from sim.components.security.gateway import REASONS, Gateway, GatewaySpec
from sim.components.security.tokens import TokenIssuer, TokenVerifier
from sim.components.server import Server, ServerSpec
from sim.core import Context, Distribution, Exponential, LinkSpec, Network, ParameterError, Params, Result, \
    TruncatedNormal, Uniform, param
from sim.core.registry import scenario
from sim.core.replication import replicate, replications_param
from sim.scenarios.q2_security._configs import parse_configs

DEFENCES = ("limit_conn", "limit_req", "waf", "edge", "timeouts", "auth")
"""Each defence the gateway can switch on (``none`` for no defence, ``all`` for every one)."""


def parse_defences(text: str) -> tuple[tuple[str, frozenset[str]], ...]:
    """``"none,limit_conn,waf+edge,all"`` -> ``(("none", {}), ("limit_conn", {...}), ...)``."""
    return parse_configs(text, DEFENCES, "defences")


@dataclass(frozen=True)
class ConnectionFloodParams(Params):
    """Parameters of ``connection-flood``."""

    defences: str = param("none,limit_conn,limit_req,waf,edge,timeouts,auth,all",
                          help="configurations to compare, separated by commas: none, all, or defences joined by + "
                               "(limit_conn, limit_req, waf, edge, timeouts, auth)")
    users: int = param(100, ge=1, help="legitimate users")
    nat_users: int = param(20, ge=0, help="of the users, how many share one public address (NAT)")
    session_mean: float = param(60.0, gt=0, unit="s", help="mean length of a user's session (exponential)")
    think_mean: float = param(10.0, gt=0, unit="s", help="mean pause between a user's sessions (exponential)")
    hold_attackers: int = param(200, ge=0, help="attackers that open connections and hold them, silent")
    flood_attackers: int = param(25, ge=0, help="attackers that retry every 0.5 s while refused (reconnect loop)")
    slow_attackers: int = param(50, ge=0, help="attackers that open handshakes and never finish them (slowloris)")
    attack_ips: int = param(10, ge=1, help="addresses the attackers come from (1: one machine; thousands: a botnet)")
    attacker_tokens: bool = param(False, help="attackers hold valid tokens (an authenticated flood: free accounts)")
    attack_start: float = param(30.0, ge=0, unit="s", help="when the attack begins")
    attack_end: float = param(150.0, gt=0, unit="s", help="when the attackers stop")
    horizon: float = param(180.0, gt=0, unit="s", help="simulated time")
    slots: int = param(300, ge=1, help="sockets the origin holds at once (open connections + handshakes being read)")
    admission_rate: float = param(200.0, gt=0, unit="1/s", help="handshakes the origin completes per second")
    limit_conn: int = param(5, ge=1, help="limit_conn: connections per address")
    limit_req_rate: float = param(2.0, gt=0, unit="1/s", help="limit_req: handshakes per second per address")
    limit_req_burst: int = param(10, ge=0, help="limit_req: burst (with nodelay)")
    waf_limit: int = param(100, ge=10, help="WAF rate-based rule: handshakes per window per address (AWS minimum 10)")
    waf_window: float = param(60.0, unit="s", help="WAF evaluation window: 60, 120, 300 or 600 s")
    handshake_timeout: float = param(60.0, gt=0, unit="s", help="client_header_timeout without the timeouts defence "
                                                                 "(NGINX default 60 s)")
    short_handshake_timeout: float = param(10.0, gt=0, unit="s", help="client_header_timeout with the timeouts "
                                                                       "defence (CIS benchmark: 10 s)")
    idle_timeout: float = param(60.0, gt=0, unit="s", help="with the timeouts defence: reset connections silent this "
                                                           "long (NGINX proxy_read_timeout 60 s)")
    heartbeat_interval: float = param(25.0, gt=0, unit="s", help="users' ping period (Engine.IO pingInterval 25 s)")
    latency: Distribution = param(TruncatedNormal(0.03, 0.01), unit="s", help="one-way network latency")
    replications: int = replications_param(1)

    def validate(self) -> None:
        parse_defences(self.defences)
        if self.nat_users > self.users:
            raise ParameterError("nat_users", f"must be <= users ({self.users}), got {self.nat_users}")
        if not self.attack_start < self.attack_end <= self.horizon:
            raise ParameterError("attack_end", f"must be after attack_start ({self.attack_start} s) and at most "
                                               f"horizon ({self.horizon} s), got {self.attack_end}")
        windows = data.load("security")["aws_waf_rate_based"]["evaluation_windows_s"]
        if self.waf_window not in windows:
            raise ParameterError("waf_window", f"must be one of {', '.join(map(str, windows))} s, got {self.waf_window:g}")
        if self.idle_timeout <= self.heartbeat_interval:
            raise ParameterError("idle_timeout", f"must be > heartbeat_interval ({self.heartbeat_interval} s), "
                                                 f"or users' connections would be reset")


def gateway_spec(p: ConnectionFloodParams, on: frozenset[str]) -> GatewaySpec:
    return GatewaySpec(
        slots=p.slots,
        handshake_timeout=p.short_handshake_timeout if "timeouts" in on else p.handshake_timeout,
        idle_timeout=p.idle_timeout if "timeouts" in on else None,
        limit_conn=p.limit_conn if "limit_conn" in on else None,
        limit_req_rate=p.limit_req_rate if "limit_req" in on else None,
        limit_req_burst=p.limit_req_burst, limit_req_nodelay=True,
        waf_limit=p.waf_limit if "waf" in on else None, waf_window=p.waf_window,
        edge="edge" in on, require_token="auth" in on)


MEASURES = ("legitimate_success_rate", "nat_success_rate", "direct_success_rate", "baseline_success_rate",
            "time_to_recover_s", "attacker_connections")


def simulate(p: ConnectionFloodParams, seed: int, replication: int, label: str, on: frozenset[str]):
    """One run with the defences ``on``: a summary row and per-second samples."""
    ctx = Context(seed, replication=replication)
    env = ctx.env
    net = Network(ctx, LinkSpec(latency=p.latency))
    issuer = TokenIssuer("HS256", seed=seed)
    verifier = TokenVerifier(issuer.verification_key, "HS256")
    gate = Gateway(ctx, gateway_spec(p, on), verifier=verifier)
    server = Server(ctx, "origin", ServerSpec(admission_rate=p.admission_rate, admission_burst=50), net, gate=gate)
    uniform = Uniform(0.0, 1.0).bind(ctx.rng("backoff")).sampler()
    token_ttl = p.horizon + 3600

    # --- legitimate users: sessions and pauses; reconnection by ResilientClient ----------------
    user_policy = Textbook("full_jitter", base=1.0, multiplier=2.0, cap=30.0)
    groups = {g: ReconnectTracker(ctx.metrics, clients=f"users_{g}") for g in ("nat", "direct")}
    wanting = {"nat": 0, "direct": 0}
    session = Exponential(1 / p.session_mean).bind(ctx.rng("sessions"))
    think = Exponential(1 / p.think_mean).bind(ctx.rng("pauses"))

    def user(env, client: ResilientClient, group: str):
        yield env.timeout(think.sample())
        while True:
            wanting[group] += 1
            client.stopped = False
            client.backoff = user_policy.new_state()
            client.start()
            yield env.timeout(session.sample())
            wanting[group] -= 1
            client.stop()
            yield env.timeout(think.sample())

    for i in range(p.users):
        group = "nat" if i < p.nat_users else "direct"
        c = ResilientClient(ctx, f"user{i}", net, server.name, user_policy, groups[group], uniform,
                            heartbeat_interval=p.heartbeat_interval)
        c.handshake_data = {"ip": "198.51.100.1" if group == "nat" else f"203.0.113.{i}/{i}",
                            "token": issuer.issue(f"user{i}", ["read", "write"], 0.0, token_ttl)}
        env.process(user(env, c, group))

    # --- attackers ------------------------------------------------------------------------------
    attack_tracker = ReconnectTracker(ctx.metrics, clients="attackers")
    kinds = [("hold", p.hold_attackers, 2.0, False), ("flood", p.flood_attackers, 0.5, False),
             ("slow", p.slow_attackers, 0.5, True)]
    attackers = []
    start_jitter = ctx.rng("attack.start")
    k = 0
    for kind, count, delay, slow in kinds:
        # a slow attacker waits for the 408 before trying again, so each holds at most one handshake
        policy = Textbook("constant", base=delay, connect_timeout=3600.0 if slow else 10.0)
        for _ in range(count):
            a = ResilientClient(ctx, f"attacker{k}", net, server.name, policy, attack_tracker, uniform)
            token = issuer.issue(f"attacker{k}", ["read", "write"], 0.0, token_ttl) if p.attacker_tokens else None
            a.handshake_data = {"ip": f"192.0.2.{k % p.attack_ips}", "token": token, "slow": slow}
            attackers.append((a, p.attack_start + 5.0 * start_jitter.random()))
            k += 1

    def attack(env):
        for a, at in sorted(attackers, key=lambda x: x[1]):
            yield env.timeout(at - env.now)
            a.start()
        yield env.timeout(p.attack_end - env.now)
        for a, _ in attackers:
            a.stop()

    env.process(attack(env))

    samples = []

    def sample(env):
        while True:
            row = {"time_s": env.now, "attacker_connections": attack_tracker.connected}
            for g, t in groups.items():
                row[f"{g}_wanting"] = wanting[g]
                row[f"{g}_connected"] = t.connected
            samples.append(row)
            yield env.timeout(1.0)

    env.process(sample(env))
    env.run(until=p.horizon)

    s = pd.DataFrame(samples)
    s["wanting"] = s["nat_wanting"] + s["direct_wanting"]
    s["connected"] = s["nat_connected"] + s["direct_connected"]
    s["success"] = (s["connected"] / s["wanting"]).where(s["wanting"] > 0)
    attack_window = s[(s.time_s >= p.attack_start) & (s.time_s < p.attack_end)]
    before = s[(s.time_s >= min(10.0, p.attack_start / 2)) & (s.time_s < p.attack_start)]

    def share(frame, group=""):
        c = frame[f"{group}connected"].sum()
        w = frame[f"{group}wanting"].sum()
        return float(c / w) if w else math.nan

    baseline = share(before) if len(before) else math.nan
    ok_level = 0.95 * baseline if baseline == baseline else 0.95
    below = attack_window[attack_window["success"] < ok_level]
    if below.empty:
        recover = 0.0
    elif below.time_s.max() >= attack_window.time_s.max():
        recover = math.nan
    else:
        recover = float(below.time_s.max() + 1.0 - p.attack_start)
    row = {"defences": label,
           "legitimate_success_rate": share(attack_window),
           "nat_success_rate": share(attack_window, "nat_") if p.nat_users else math.nan,
           "direct_success_rate": share(attack_window, "direct_") if p.nat_users < p.users else math.nan,
           "baseline_success_rate": baseline,
           "time_to_recover_s": recover,
           "attacker_connections": float(attack_window["attacker_connections"].mean()),
           **{f"refused_{r}": int(gate._refusals[r].value) for r in REASONS},
           "refused_by_origin": int(sum(server._m_handshakes[r].value for r in ("refused_full", "refused_rate")))}
    s.insert(0, "defences", label)
    return row, {"per_second": s}


@scenario("connection-flood", ConnectionFloodParams,
          "Q2: attackers hold, flood and slow-open persistent connections; per-IP limits, limit_req, WAF, edge, "
          "timeouts and authentication, one by one and combined")
def run_connection_flood(p: ConnectionFloodParams, seed: int) -> Result:
    configs = parse_defences(p.defences)

    def once(r):
        rows, tables = [], []
        for label, on in configs:
            row, named = simulate(p, seed, r, label, on)
            rows.append(row)
            tables.append(named["per_second"])
        return rows, {"per_second": pd.concat(tables, ignore_index=True)}

    reps = replicate(p.replications, once)
    refusals = [c for c in reps.rows.columns if c.startswith("refused_")]
    summary = reps.summary(["defences"], [*MEASURES, *refusals])
    return Result("connection-flood", seed, p, summary, {"replications": reps.rows, **reps.series})
