"""``event-forgery``: clients emit events they should not, and an on-path attacker when TLS is off.

The course (2A) lists « Injection ou usurpation d'événements » with « signature des messages,
validation côté serveur, TLS obligatoire ». Here ``clients`` honest users post chat events
(``event_rate`` each) that the server fans out to everyone, signed envelopes included.
``mallory`` is an authenticated, malicious client: she sends events that claim another sender
(spoofed), oversized and malformed frames, and copies of other users' events she received
(replays). When TLS is off an on-path attacker alters ``tamper_share`` of the honest events in
transit and captures ``capture_share`` of them to inject again later, half ``replay_soon`` after
(inside the tolerance window), half ``tolerance + replay_soon`` after (outside it).

Defences (:data:`DEFENCES`; ``none``, ``all`` or names joined by ``+``), applied in this order:
``schema`` (size limit, then a JSON Schema via jsonschema), ``binding`` (the sender must be the
connection's authenticated identity), ``signature`` (HMAC-SHA256, the Stripe scheme of
:mod:`sim.components.webhook`, with each user's key, or one ``shared`` key every client holds),
``replay_window`` (timestamp tolerance and nonce cache, on top of the signature check: a
timestamp is worth something only when it is signed), ``tls`` (the on-path attacker can
neither read nor change the stream).

Summary columns: ``forged_accepted`` (spoofed, tampered, oversized or malformed events the
server applied; ``tampered_accepted`` of them altered in transit), ``replayed_accepted`` (copies applied), ``honest_rejected`` (honest events
refused: must stay 0), and ``checks_per_s``.

Simplified: every malformed or oversized frame the server applies counts as forged (in a real
server it might crash the handler or corrupt state); TLS is all-or-nothing; the on-path attacker
sees every connection.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sim.components.client import Client
from sim.components.security.replay import ACCEPTED, ReplayGuard, event_body, sign_event
from sim.components.security.sessions import PermissionStore, SessionAuthority
from sim.components.security.tokens import TokenIssuer, TokenVerifier
from sim.components.security.validation import OK, bound_sender, parse, validate
from sim.components.server import Server
from sim.components import webhook
from sim.core import Context, Distribution, Exponential, LinkSpec, Network, ParameterError, Params, Result, \
    TruncatedNormal, param
from sim.core.registry import scenario
from sim.core.replication import replicate, replications_param
from sim.scenarios.q2_security._configs import parse_configs

DEFENCES = ("schema", "binding", "signature", "replay_window", "tls")
ATTACKS = ("spoofed", "oversized", "malformed", "replayed")
FORGED = ("spoofed", "oversized", "malformed", "tampered")
MEASURES = ("forged_accepted", "tampered_accepted", "replayed_accepted", "honest_rejected", "honest_accepted", "checks_per_s")


@dataclass(frozen=True)
class EventForgeryParams(Params):
    """Parameters of ``event-forgery``."""

    defences: str = param("none,schema,binding,signature,replay_window,tls,signature+replay_window,all",
                          help="configurations separated by commas: none, all, or defences joined by + "
                               "(schema, binding, signature, replay_window, tls)")
    clients: int = param(8, ge=1, help="honest clients")
    event_rate: float = param(0.25, gt=0, unit="1/s", help="events per second each honest client posts (Poisson)")
    attack_rate: float = param(1.0, gt=0, unit="1/s", help="bad events per second mallory sends (Poisson)")
    attacks: str = param("spoofed,oversized,malformed,replayed", help="what mallory sends, drawn in turn; "
                                                                      "several of spoofed, oversized, malformed, replayed")
    tamper_share: float = param(0.1, ge=0, le=1, help="without TLS: share of honest events altered in transit")
    capture_share: float = param(0.1, ge=0, le=1, help="without TLS: share of honest events captured and injected later")
    replay_soon: float = param(30.0, gt=0, unit="s", help="delay of replays inside the window (the others come "
                                                           "tolerance + replay_soon later)")
    tolerance: float = param(300.0, gt=0, unit="s", help="replay window: timestamp tolerance (Stripe: 300 s)")
    signing_key: str = param("per_user", choices=("per_user", "shared"),
                             help="HMAC key: one per user (known to the server) or one shared by every client")
    max_frame_bytes: int = param(16_384, ge=64, unit="B", help="schema: largest event accepted")
    horizon: float = param(600.0, gt=0, unit="s", help="simulated time")
    latency: Distribution = param(TruncatedNormal(0.03, 0.01), unit="s", help="one-way network latency")
    replications: int = replications_param(1)

    def validate(self) -> None:
        parse_configs(self.defences, DEFENCES, "defences")
        self.attack_kinds()
        if self.horizon <= self.tolerance + self.replay_soon:
            raise ParameterError("horizon", f"must be > tolerance + replay_soon ({self.tolerance + self.replay_soon:g} s), "
                                            "or no replay lands outside the window")

    def attack_kinds(self) -> tuple[str, ...]:
        from sim.core import expand_names

        return expand_names("attacks", self.attacks, ATTACKS)


def user_key(seed: int, user: str, shared: bool) -> bytes:
    return hashlib.sha256(f"event-key:{seed}:{'shared' if shared else user}".encode()).digest()


def simulate(p: EventForgeryParams, seed: int, replication: int, label: str, on: frozenset[str]) -> dict:
    ctx = Context(seed, replication=replication)
    env = ctx.env
    net = Network(ctx, LinkSpec(latency=p.latency))
    issuer = TokenIssuer("HS256", seed=seed)
    authority = SessionAuthority(ctx, TokenVerifier(issuer.verification_key, "HS256"), PermissionStore(),
                                 "connect_only")
    shared = p.signing_key == "shared"
    users = [f"user{i}" for i in range(p.clients)] + ["mallory"]
    keys = {u: user_key(seed, u, shared) for u in users}
    guards = {u: ReplayGuard(keys[u], p.tolerance, use_nonces="replay_window" in on) for u in users}
    counts = {"checks": 0, "tampered_accepted": 0, "honest_rejected": 0, "honest_accepted": 0, "forged_accepted": 0, "replayed_accepted": 0}
    applied: set[tuple[str, int]] = set()  # (nonce, timestamp) of every event applied: a second copy is a replay
    server_box: list[Server] = []

    def apply_event(server: Server, client: str, frame) -> None:
        _, envelope, truth = frame  # ``truth`` is the simulation's label, never read by the checks below
        body, header = envelope["body"], envelope.get("header", "")
        sub = authority.sessions[client].sub
        event = None
        verdict = OK
        if "schema" in on:
            counts["checks"] += 1
            verdict, event = validate(body, p.max_frame_bytes)
        if verdict == OK and event is None:
            event = parse(body) or {}
        if verdict == OK and "binding" in on:
            counts["checks"] += 1
            verdict = bound_sender(event, sub)
        if verdict == OK and ("signature" in on or "replay_window" in on):
            counts["checks"] += 1
            claimed = event.get("sender") if isinstance(event.get("sender"), str) else sub
            guard = guards.get(claimed)
            if guard is None:
                verdict = "unknown_sender"
            elif "replay_window" in on:
                verdict = OK if guard.check(header, body, env.now) == ACCEPTED else "refused"
            else:  # signature alone: is it signed by the claimed sender's key (any age)?
                status = webhook.verify(guard.secret, header, body, webhook.EPOCH + env.now, tolerance=float("inf"))
                verdict = OK if status == webhook.OK else "bad_signature"
        kind = truth["kind"]
        if verdict != OK:
            if kind == "honest":
                counts["honest_rejected"] += 1
            return
        key = (truth["nonce"], truth["t"])
        if key in applied:  # a second copy of an event already applied
            counts["replayed_accepted"] += 1
            return
        # a captured copy whose original never got through (altered in transit, then refused)
        # is the genuine event arriving late: counted with the honest ones
        if kind in ("honest", "replayed"):
            counts["honest_accepted"] += 1
        elif kind in FORGED:
            counts["forged_accepted"] += 1
            if kind == "tampered":
                counts["tampered_accepted"] += 1
        applied.add(key)
        for other in list(server.connections):  # fan-out, signed envelope included
            server.send_to(other, ("event", envelope, truth), len(body))

    server = Server(ctx, "server", network=net, gate=authority,
                    on_data=lambda s, c, d: apply_event(s, c, d) if d[0] == "event" else None)
    server_box.append(server)

    captured_by_mallory: list = []

    def mallory_hears(_c, payload) -> None:
        if payload[0] == "event" and payload[2]["kind"] == "honest":
            captured_by_mallory.append(payload)

    clients = {}
    for u in users:
        c = Client(ctx, u, net, server.name, on_message=mallory_hears if u == "mallory" else None)
        c.handshake_data = {"token": issuer.issue(u, ["write:room-1"], 0.0, 3600)}
        clients[u] = c
        c.connect()

    rng = ctx.rng("on-path")
    seq = {"n": 0}

    def envelope_for(user: str, body: bytes) -> dict:
        return {"body": body, "header": sign_event(keys[user], env.now, body)}

    def inject(frame, at: float) -> None:
        # an on-path attacker without TLS writes into the victim's TCP stream: it arrives as the victim's
        env.timeout(at - env.now).callbacks.append(
            lambda _e, frame=frame, src=frame[2]["via"]: net.send(src, server.name, ("data", frame), 100))

    def honest(env, user: str):
        gaps = Exponential(p.event_rate).bind(ctx.rng(f"events.{user}"))
        while True:
            yield env.timeout(gaps.sample())
            seq["n"] += 1
            nonce = f"{user}-{seq['n']}"
            body = event_body(nonce, user, "room-1", f"hello {seq['n']}")
            env_ = envelope_for(user, body)
            truth = {"kind": "honest", "nonce": nonce, "t": int(env.now), "via": user}
            if "tls" not in on:
                if rng.random() < p.capture_share:
                    later = p.replay_soon if rng.random() < 0.5 else p.tolerance + p.replay_soon
                    inject(("event", env_, {**truth, "kind": "replayed"}), env.now + later)
                if rng.random() < p.tamper_share:
                    altered = body.replace(b"hello", b"pay me")
                    env_ = {**env_, "body": altered}
                    truth = {**truth, "kind": "tampered"}
            clients[user].send(("event", env_, truth), len(env_["body"]))

    def mallory(env):
        kinds = p.attack_kinds()
        gaps = Exponential(p.attack_rate).bind(ctx.rng("mallory"))
        k = 0
        while True:
            yield env.timeout(gaps.sample())
            kind = kinds[k % len(kinds)]
            k += 1
            nonce = f"m-{k}"
            victim = users[k % p.clients]
            if kind == "replayed":
                if not captured_by_mallory:
                    continue
                _, env_, truth = captured_by_mallory[int(rng.integers(len(captured_by_mallory)))]
                frame = ("event", env_, {**truth, "kind": "replayed"})
            else:
                if kind == "spoofed":  # claims to be the victim; signed with the key she holds
                    body = event_body(nonce, victim, "room-1", "I resign")
                    signer = victim if shared else "mallory"
                elif kind == "oversized":
                    body = event_body(nonce, "mallory", "room-1", "x" * (4 * p.max_frame_bytes))
                    signer = "mallory"
                else:  # malformed: not the schema (a number where text belongs, an extra field)
                    body = b'{"id":"' + nonce.encode() + b'","sender":"mallory","channel":"room-1","data":42,"admin":true}'
                    signer = "mallory"
                frame = ("event", {"body": body, "header": sign_event(keys[signer], env.now, body)},
                         {"kind": kind, "nonce": nonce, "t": int(env.now), "via": "mallory"})
            clients["mallory"].send(frame, len(frame[1]["body"]))

    def start(env):
        yield env.timeout(1.0)
        for u in users[:-1]:
            env.process(honest(env, u))
        env.process(mallory(env))

    env.process(start(env))
    env.run(until=p.horizon)
    return {"defences": label, "forged_accepted": counts["forged_accepted"],
            "tampered_accepted": counts["tampered_accepted"],
            "replayed_accepted": counts["replayed_accepted"], "honest_rejected": counts["honest_rejected"],
            "honest_accepted": counts["honest_accepted"], "checks_per_s": counts["checks"] / p.horizon}


@scenario("event-forgery", EventForgeryParams,
          "Q2: spoofed, tampered, malformed and replayed events against schema validation, sender binding, HMAC "
          "signatures, a replay window and TLS")
def run_event_forgery(p: EventForgeryParams, seed: int) -> Result:
    configs = parse_configs(p.defences, DEFENCES, "defences")
    reps = replicate(p.replications, lambda r: [simulate(p, seed, r, label, on) for label, on in configs])
    return Result("event-forgery", seed, p, reps.summary(["defences"], MEASURES), {"replications": reps.rows})
