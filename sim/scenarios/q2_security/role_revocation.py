"""``role-revocation``: a role is revoked (or a token expires) while the user is connected (2B).

The course (2B) says identity must be bound to each connection so that permissions can be
« propag[ées] dynamiquement (ex. changement de rôle en live) ». Here ``users`` users hold a
WebSocket to a room that receives ``message_rate`` messages per second; each needs the scope
``read:room``. ``revoked_users`` of them lose it at random times between ``revoke_from`` and
``revoke_to``. Connections last ``connection_mean`` seconds on average, then the client
reconnects with its token if still valid, else a fresh one (which no longer carries the scope).
Tokens are real JWTs (PyJWT, ``algorithm``) valid ``token_ttl`` seconds.

Each policy of :data:`~sim.components.security.sessions.POLICIES` runs on the same seed:

* ``connect_only`` checks at the handshake: the exposure lasts as long as the connection (and
  longer, if the client reconnects with its old, still valid token);
* ``token_expiry`` makes clients re-authenticate ``refresh_margin`` s before their token expires:
  the exposure is at most one token lifetime;
* ``per_message`` asks the permission store for every delivery: no exposure, one check per
  message per recipient;
* ``push`` sends the change to the server, which downgrades the session after ``push_delay``.

Summary columns: ``leaked_messages`` (sent to a user who no longer held the scope at that
instant), ``exposure_window_s`` (mean over revoked users of the time from the revocation to the
last message leaked to them; 0 if none), ``max_exposure_s``, ``checks_per_s`` (token
verifications + store lookups + pushed changes handled, per second of the run).

Simplified: one server; the store answers at once; the push reaches the server after a fixed
delay; a refresh always succeeds (the identity provider is up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.components.backoff import Textbook
from sim.components.resilient_client import ReconnectTracker, ResilientClient
from sim.components.security.sessions import AUTH, POLICIES, IdentityProvider, PermissionStore, SessionAuthority
from sim.components.security.tokens import ALGORITHMS, TokenIssuer, TokenVerifier
from sim.components.server import Server
from sim.core import Context, Distribution, Exponential, LinkSpec, Network, ParameterError, Params, Result, \
    TruncatedNormal, Uniform, expand_names, param
from sim.core.registry import scenario
from sim.core.replication import replicate, replications_param

SCOPE = "read:room"
MEASURES = ("leaked_messages", "exposure_window_s", "max_exposure_s", "checks_per_s", "still_exposed_at_end")


@dataclass(frozen=True)
class RoleRevocationParams(Params):
    """Parameters of ``role-revocation``."""

    policy: str = param("all", help="connect_only, token_expiry, per_message, push; several separated by commas, or all")
    users: int = param(50, ge=1, help="connected users")
    revoked_users: int = param(10, ge=0, help="users whose read:room scope is revoked during the run")
    revoke_from: float = param(60.0, ge=0, unit="s", help="revocations happen uniformly between revoke_from ...")
    revoke_to: float = param(240.0, ge=0, unit="s", help="... and revoke_to")
    message_rate: float = param(1.0, gt=0, unit="1/s", help="messages per second to the room (Poisson)")
    token_ttl: float = param(300.0, gt=0, unit="s", help="lifetime of each token (exp - iat)")
    refresh_margin: float = param(30.0, ge=0, unit="s", help="token_expiry: clients refresh this long before exp")
    connection_mean: float = param(1800.0, gt=0, unit="s", help="mean life of a connection before the client "
                                                                "reconnects (exponential)")
    push_delay: float = param(0.5, ge=0, unit="s", help="push: time for a permission change to reach the server")
    push_action: str = param("downgrade", choices=("downgrade", "disconnect"),
                             help="push: remove the scope from the session, or close it (1008)")
    algorithm: str = param("HS256", choices=ALGORITHMS, help="token signature: HS256 (shared secret) or RS256")
    horizon: float = param(600.0, gt=0, unit="s", help="simulated time")
    latency: Distribution = param(TruncatedNormal(0.03, 0.01), unit="s", help="one-way network latency")
    replications: int = replications_param(1)

    def validate(self) -> None:
        self.policies()
        if self.revoked_users > self.users:
            raise ParameterError("revoked_users", f"must be <= users ({self.users}), got {self.revoked_users}")
        if not self.revoke_from <= self.revoke_to < self.horizon:
            raise ParameterError("revoke_to", f"must be >= revoke_from ({self.revoke_from:g} s) and < horizon "
                                              f"({self.horizon:g} s), got {self.revoke_to:g}")
        if self.refresh_margin >= self.token_ttl:
            raise ParameterError("refresh_margin", f"must be < token_ttl ({self.token_ttl:g} s), got {self.refresh_margin:g}")

    def policies(self) -> tuple[str, ...]:
        return expand_names("policy", self.policy, POLICIES)


def simulate(p: RoleRevocationParams, seed: int, replication: int, policy: str) -> dict:
    ctx = Context(seed, replication=replication)
    env = ctx.env
    net = Network(ctx, LinkSpec(latency=p.latency))
    store = PermissionStore()
    issuer = TokenIssuer(p.algorithm, seed=seed)
    idp = IdentityProvider(issuer, store, p.token_ttl)
    verifier = TokenVerifier(issuer.verification_key, p.algorithm)
    authority = SessionAuthority(ctx, verifier, store, policy, push_delay=p.push_delay, push_action=p.push_action)
    server = Server(ctx, "server", network=net, gate=authority,
                    on_data=lambda s, c, d: authority.reauthenticate(s, c, d[1]) if d[0] == AUTH else None)
    tracker = ReconnectTracker(ctx.metrics)
    backoff = Textbook("full_jitter", base=1.0, multiplier=2.0, cap=30.0)
    uniform = Uniform(0.0, 1.0).bind(ctx.rng("backoff")).sampler()
    lifetimes = Exponential(1 / p.connection_mean).bind(ctx.rng("connections"))
    start = ctx.rng("start")
    clients: dict[str, tuple[ResilientClient, str]] = {}
    tokens: dict[str, tuple[str, float]] = {}  # user -> (token, exp)

    def token(user: str) -> str:
        tok, exp = tokens.get(user, ("", -math.inf))
        if env.now >= exp - 1.0:  # the client's own clock tells it the token is (about to be) stale
            tok, exp = idp.token_for(user, env.now), math.floor(env.now) + math.ceil(p.token_ttl)
            tokens[user] = (tok, exp)
        return tok

    def refresh(user: str, client: ResilientClient):
        # token_expiry: re-authenticate over the socket before exp, with a fresh token
        while True:
            _, exp = tokens[user]
            yield env.timeout(max(0.0, exp - p.refresh_margin - env.now))
            fresh, fexp = idp.token_for(user, env.now), math.floor(env.now) + math.ceil(p.token_ttl)
            tokens[user] = (fresh, fexp)
            client.handshake_data = {"token": fresh}
            client.send((AUTH, fresh))

    def life(env, user: str, client: ResilientClient):
        yield env.timeout(5.0 * start.random())
        while True:
            client.handshake_data = {"token": token(user)}
            client.stopped = False
            client.backoff = backoff.new_state()
            client.start()
            yield env.timeout(lifetimes.sample())
            client.stop()
            yield env.timeout(1.0)

    for i in range(p.users):
        user = f"user{i}"
        store.grant(user, SCOPE)
        c = ResilientClient(ctx, user, net, server.name, backoff, tracker, uniform)
        # after a close by the server (1008), the retry must carry a token the server can accept
        c.on_disconnect = lambda cl, how, code, u=user: setattr(cl, "handshake_data", {"token": token(u)})
        clients[user] = (c, user)
        env.process(life(env, user, c))
        if policy == "token_expiry":
            token(user)
            env.process(refresh(user, c))

    revoke_rng = ctx.rng("revocations")
    revoked_at: dict[str, float] = {}
    for i in range(p.revoked_users):
        user = f"user{i}"
        at = float(revoke_rng.uniform(p.revoke_from, p.revoke_to))
        revoked_at[user] = at
        env.timeout(at).callbacks.append(lambda _e, u=user: store.revoke(u, SCOPE))

    leaks: dict[str, list[float]] = {u: [] for u in revoked_at}
    gaps = Exponential(p.message_rate).bind(ctx.rng("messages"))

    def publisher(env):
        n = 0
        while True:
            yield env.timeout(gaps.sample())
            n += 1
            for client in list(server.connections):
                if authority.may_receive(client, SCOPE):
                    if client in leaks and SCOPE not in store.scopes[client]:  # the truth, not counted as a check
                        leaks[client].append(env.now)
                    server.send_to(client, ("room", n), 100)

    env.process(publisher(env))
    env.run(until=p.horizon)

    exposures = [(times[-1] - revoked_at[u]) if times else 0.0 for u, times in leaks.items()]
    return {
        "policy": policy,
        "leaked_messages": sum(len(t) for t in leaks.values()),
        "exposure_window_s": float(sum(exposures) / len(exposures)) if exposures else 0.0,
        "max_exposure_s": float(max(exposures)) if exposures else 0.0,
        "checks_per_s": authority.checks / p.horizon,
        "still_exposed_at_end": sum(1 for t in leaks.values() if t and t[-1] > p.horizon - 5.0),
        "token_verifications": verifier.checks,
        "store_lookups": store.lookups,
    }


@scenario("role-revocation", RoleRevocationParams,
          "Q2: a role is revoked while connected: exposure window and leaked messages against checks per second, "
          "for connect-only, token expiry, per-message checks and pushed changes")
def run_role_revocation(p: RoleRevocationParams, seed: int) -> Result:
    reps = replicate(p.replications, lambda r: [simulate(p, seed, r, policy) for policy in p.policies()])
    summary = reps.summary(["policy"], MEASURES)
    return Result("role-revocation", seed, p, summary, {"replications": reps.rows})
