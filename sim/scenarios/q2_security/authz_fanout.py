"""``authz-fanout``: real-time messages reach the wrong clients when fan-out skips the check.

The course (2A) lists « Fuite de données temps réel : messages envoyés à de mauvais clients »
with « authentification stricte, scopes JWT, vérification serveur ». Here ``clients`` clients,
spread over ``nodes`` WebSocket nodes that share a Redis-Pub/Sub-like broker
(:class:`~sim.components.broker.PubSubBroker`), each hold a real JWT (PyJWT, ``algorithm``) whose
``scope`` is ``read:room-K`` for their own room; a share ``snoopers`` also subscribes to a room
they have no scope for. Publishers post ``message_rate`` messages per second to random rooms.

Fan-out modes (all on the same seed):

* ``broadcast`` — the node forwards every broker message to every subscribed client (the
  broker's own fan-out: Redis Pub/Sub has no notion of who may read what);
* ``channel_filter`` — only to clients subscribed to that room, but subscriptions are not
  checked: whoever asks gets it;
* ``scope_on_subscribe`` — a subscription is accepted only with the token's ``read:room-K``;
* ``scope_on_delivery`` — the scope is checked again for every delivery (what a server must do
  when scopes can change during a session; see ``role-revocation``).

Summary columns: ``leaked_messages`` (delivered to a client whose token lacks the room's scope),
``leaked_share`` (of all deliveries), ``deliveries``, ``refused_subscriptions``, ``checks_per_s``
(token verifications plus scope checks per second).
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.components.broker import MESSAGE, PUBLISH, SUBSCRIBE, PubSubBroker, PubSubNode, Publication, bus
from sim.components.client import Client
from sim.components.security.sessions import PermissionStore, SessionAuthority
from sim.components.security.tokens import ALGORITHMS, TokenIssuer, TokenVerifier
from sim.components.server import Server
from sim.core import Context, Distribution, Exponential, LinkSpec, Network, Params, Result, TruncatedNormal, \
    expand_names, param
from sim.core.registry import scenario
from sim.core.replication import replicate, replications_param

MODES = ("broadcast", "channel_filter", "scope_on_subscribe", "scope_on_delivery")
MEASURES = ("leaked_messages", "leaked_share", "deliveries", "refused_subscriptions", "checks_per_s")


@dataclass(frozen=True)
class AuthzFanoutParams(Params):
    """Parameters of ``authz-fanout``."""

    mode: str = param("all", help="broadcast, channel_filter, scope_on_subscribe, scope_on_delivery; several "
                                  "separated by commas, or all")
    clients: int = param(100, ge=1, help="subscribed clients")
    nodes: int = param(2, ge=1, help="WebSocket nodes sharing the broker")
    rooms: int = param(10, ge=1, help="rooms (channels); client i belongs to room i mod rooms")
    snoopers: float = param(0.1, ge=0, le=1, help="share of clients that also subscribe to a room they have no scope for")
    message_rate: float = param(20.0, gt=0, unit="1/s", help="messages per second over all rooms (Poisson)")
    duration: float = param(30.0, gt=0, unit="s", help="publishing time (after 2 s for everyone to connect)")
    algorithm: str = param("HS256", choices=ALGORITHMS, help="token signature: HS256 or RS256")
    latency: Distribution = param(TruncatedNormal(0.02, 0.005), unit="s", help="one-way network latency")
    replications: int = replications_param(1)

    def validate(self) -> None:
        self.modes()

    def modes(self) -> tuple[str, ...]:
        return expand_names("mode", self.mode, MODES)


def simulate(p: AuthzFanoutParams, seed: int, replication: int, mode: str) -> dict:
    ctx = Context(seed, replication=replication)
    env = ctx.env
    net = Network(ctx, LinkSpec(latency=p.latency))
    broker = PubSubBroker(ctx, net)
    issuer = TokenIssuer(p.algorithm, seed=seed)
    verifier = TokenVerifier(issuer.verification_key, p.algorithm)
    authority = SessionAuthority(ctx, verifier, PermissionStore(), "connect_only")  # verifies, keeps claims
    subscriptions: dict[str, set[str]] = {}
    counts = {"scope_checks": 0, "refused": 0, "deliveries": 0, "leaked": 0}
    servers, adapters = [], []

    def may(client: str, room: str) -> bool:
        counts["scope_checks"] += 1
        claims = authority.sessions.get(client)
        return claims is not None and claims.allows(f"read:{room}")

    for k in range(p.nodes):
        server = Server(ctx, f"node-{k}", network=net, gate=authority)
        node = PubSubNode(ctx, server, net, broker, read_rate=10e6)
        node_data = server.on_data  # the node's own handler (adds subscribers)

        def on_data(s, client, data, node_data=node_data):
            if data[0] != SUBSCRIBE:
                return node_data(s, client, data)
            room = data[1]
            if mode in ("scope_on_subscribe", "scope_on_delivery") and not may(client, room):
                counts["refused"] += 1
                return None
            subscriptions.setdefault(client, set()).add(room)
            return node_data(s, client, data)

        server.on_data = on_data
        if mode == "channel_filter" or mode == "scope_on_subscribe":
            node.authorize = lambda client, pub: pub.key in subscriptions.get(client, ())
        elif mode == "scope_on_delivery":
            node.authorize = lambda client, pub: pub.key in subscriptions.get(client, ()) and may(client, pub.key)
        servers.append(server)
        adapters.append(node)

    snoop = ctx.rng("snoopers")
    rooms = [f"room-{r}" for r in range(p.rooms)]
    scopes: dict[str, frozenset[str]] = {}

    def received(client: Client, payload) -> None:
        if payload[0] != MESSAGE:
            return
        counts["deliveries"] += 1
        if f"read:{payload[1].key}" not in scopes[client.name]:
            counts["leaked"] += 1

    for i in range(p.clients):
        name, room = f"c{i}", rooms[i % p.rooms]
        wants = [room]
        if p.rooms > 1 and snoop.random() < p.snoopers:
            wants.append(rooms[(i + 1) % p.rooms])
        scopes[name] = frozenset({f"read:{room}"})
        c = Client(ctx, name, net, servers[i % p.nodes].name, on_message=received,
                   on_connect=lambda cl, wants=wants: [cl.send((SUBSCRIBE, w), 20) for w in wants])
        c.handshake_data = {"token": issuer.issue(name, [f"read:{room}"], 0.0, 3600)}
        env.timeout(1.0 * i / p.clients).callbacks.append(lambda _e, c=c: c.connect())

    pick = ctx.rng("publish.room")
    gaps = Exponential(p.message_rate).bind(ctx.rng("publish.gaps"))

    def publisher(env):
        yield env.timeout(2.0)
        n = 0
        while env.now < 2.0 + p.duration:
            yield env.timeout(gaps.sample())
            n += 1
            pub = Publication(n, "publisher", n, rooms[int(pick.integers(p.rooms))], env.now, 200)
            net.send("publisher", bus(servers[n % p.nodes].name), (PUBLISH, pub), pub.size_bytes)

    net.attach("publisher", lambda msg: None)
    env.process(publisher(env))
    env.run(until=2.0 + p.duration + 2.0)
    horizon = env.now
    return {"mode": mode, "leaked_messages": counts["leaked"],
            "leaked_share": counts["leaked"] / counts["deliveries"] if counts["deliveries"] else 0.0,
            "deliveries": counts["deliveries"], "refused_subscriptions": counts["refused"],
            "checks_per_s": (verifier.checks + counts["scope_checks"]) / horizon}


@scenario("authz-fanout", AuthzFanoutParams,
          "Q2: fan-out through a Pub/Sub broker with and without JWT scope checks: messages that reach clients "
          "without the scope")
def run_authz_fanout(p: AuthzFanoutParams, seed: int) -> Result:
    reps = replicate(p.replications, lambda r: [simulate(p, seed, r, m) for m in p.modes()])
    return Result("authz-fanout", seed, p, reps.summary(["mode"], MEASURES), {"replications": reps.rows})
