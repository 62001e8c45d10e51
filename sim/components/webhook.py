"""Webhooks: a provider POSTs each event to the consumer's HTTPS endpoint and retries on failure.

* :class:`WebhookProvider` — a provider's timeout and retry schedule, from
  ``data/webhook_providers.json`` (Stripe, GitHub, Shopify, Slack; each value says whether it is
  documented, derived or an assumption).
* :func:`sign` / :func:`verify` — Stripe's signature scheme (stripe-python ``_webhook.py``): the
  header ``t=<unix ts>,v1=<hex HMAC-SHA256(secret, "{t}.{raw body}")>``; a request is accepted if
  any ``v1`` matches (constant-time comparison) and ``t`` is not older than the tolerance (300 s).
* :class:`WebhookSender` — one HTTP POST per event *attempt*. Unless a connection is kept alive
  (:class:`~sim.components.http.HttpConnections`, the one connection model of every HTTP transport)
  each attempt first pays the connection set-up (TCP plus TLS), then waits for the answer within
  the provider's timeout; a timeout, a lost message or a non-2xx answer is a failure, retried after
  the provider's next delay until its retry horizon. Past the horizon the event is **given up**
  (counted, never silently dropped).
* :class:`WebhookReceiver` — verifies the signature and the timestamp, then deduplicates by event id:
  delivery is at least once (a 2xx lost or late makes the provider send again) and unordered, so
  only an idempotent receiver applies each event exactly once.

Everything travels over a :class:`~sim.core.network.Network`, so latency, loss and partitions
(a receiver outage is a partition) act on handshakes, requests and answers alike.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from typing import Callable

import simpy

from sim import data
from sim.core.context import Context
from sim.core.distributions import Constant, Distribution
from sim.core.errors import ParameterError
from sim.core.network import Message, Network
from sim.components.http import Connection, HttpConnections, WireCost, answer_setup

EPOCH = 1_700_000_000
"""Unix time of simulated t = 0: signatures carry Unix timestamps, but must not depend on the wall clock."""
DEFAULT_TOLERANCE = 300.0
"""Stripe's ``DEFAULT_TOLERANCE`` (stripe-python ``_webhook.py``), in seconds."""
PROVIDERS = ("stripe", "github", "shopify", "slack")

# on the wire: (kind, data)
POST, ANSWER = "post", "answer"  # set-up messages: sim.components.http
OK, BAD_SIGNATURE, STALE = 200, 400, 401
"""Answers of the receiver: applied or duplicate (2xx); bad signature; timestamp outside the tolerance."""


# ============================================================== provider presets =====
@dataclass(frozen=True)
class WebhookProvider:
    """Timeout and retry schedule of one provider; see ``data/webhook_providers.json``."""

    name: str
    timeout_s: float
    """Longest wait for the answer of one attempt, set-up included."""
    connect_timeout_s: float | None
    """Longest wait for the connection set-up (None: only ``timeout_s``)."""
    delays_s: tuple[float, ...]
    """Wait after each failed attempt before the next one (empty: no automatic redelivery)."""
    horizon_s: float
    """No retry starts later than this after the first attempt."""
    source: str = ""

    def __post_init__(self) -> None:
        if not (isinstance(self.timeout_s, (int, float)) and 0 < self.timeout_s < math.inf):
            raise ParameterError("timeout_s", f"must be a number of seconds > 0, got {self.timeout_s!r}")
        if self.connect_timeout_s is not None and not 0 < self.connect_timeout_s <= self.timeout_s:
            raise ParameterError("connect_timeout_s", f"must be in (0, timeout_s], got {self.connect_timeout_s!r}")
        if any(not d >= 0 for d in self.delays_s):
            raise ParameterError("delays_s", f"must all be >= 0 s, got {self.delays_s!r}")
        if not self.horizon_s >= 0:
            raise ParameterError("horizon_s", f"must be >= 0 s, got {self.horizon_s!r}")

    @classmethod
    def preset(cls, name: str) -> "WebhookProvider":
        """The provider ``name`` (one of :data:`PROVIDERS`) from ``data/webhook_providers.json``."""
        presets = data.load("webhook_providers")
        if name not in presets:
            raise ParameterError("provider", f"must be one of {', '.join(sorted(presets))}, got {name!r}")
        p = presets[name]
        if p["formula"] == "table":
            delays = tuple(float(d) for d in p["delays_s"])
        elif p["formula"] == "none":
            delays = ()
        else:  # exponential: initial * multiplier^k while the retry starts within the horizon
            delays, elapsed, k = [], 0.0, 0
            while p["max_retries"] is None or k < p["max_retries"]:
                d = p["initial_s"] * p["multiplier"] ** k
                if elapsed + d > p["horizon_s"] * (1 + 1e-12):
                    break
                delays.append(d)
                elapsed += d
                k += 1
            delays = tuple(delays)
        return cls(name, float(p["timeout_s"]), p["connect_timeout_s"], delays, float(p["horizon_s"]), p["source"])

    def attempt_offsets(self) -> list[float]:
        """Start of each attempt after the first, when every attempt fails at once (lower bounds)."""
        out, t = [0.0], 0.0
        for d in self.delays_s:
            t += d
            out.append(t)
        return out


# ================================================================== signatures =====
def derive_secret(seed: int, name: str = "endpoint") -> bytes:
    """A 32-byte signing secret derived from the run's seed (never from os.urandom: runs repeat)."""
    return hashlib.sha256(f"webhook-secret:{seed}:{name}".encode()).digest()


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """Stripe's ``Stripe-Signature`` header for ``body`` sent at Unix time ``timestamp``."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def parse_signature_header(header: str, scheme: str = "v1") -> tuple[int, list[str]] | None:
    """``(timestamp, signatures)`` read as stripe-python's ``_get_timestamp_and_signatures`` does,
    or ``None`` where that function raises (and ``verify_header`` rejects the request).

    Each comma-separated item is split at its first two ``=`` (``"v1=ab=cd"`` gives ``"ab"``); the
    *first* ``t`` item gives the timestamp (``int()``, so ``+17`` and ``1_7`` parse); every item
    whose key is exactly ``scheme`` gives a signature; an item ``t`` or ``v1`` without ``=`` makes the
    whole header unreadable (an ``IndexError`` in Stripe's code); other items are ignored.
    """
    items = [item.split("=", 2) for item in header.split(",")]
    try:
        timestamp = int([i[1] for i in items if i[0] == "t"][0])
        signatures = [i[1] for i in items if i[0] == scheme]
    except (IndexError, ValueError):
        return None
    return timestamp, signatures


def verify(secret: bytes, header: str, body: bytes, now: float, tolerance: float | None = DEFAULT_TOLERANCE) -> int:
    """:data:`OK` if ``header`` signs the raw ``body`` and is not older than ``tolerance`` s at Unix
    time ``now``; else :data:`BAD_SIGNATURE` or :data:`STALE`. Never raises on a malformed header.

    As stripe-python's ``WebhookSignature.verify_header``: the header is parsed by
    :func:`parse_signature_header`; any ``v1`` may match (several during a secret rotation), each
    compared in constant time; only *old* timestamps are refused, and a ``tolerance`` of 0 or
    ``None`` checks no age at all (``if tolerance and timestamp < now - tolerance``).
    """
    parsed = parse_signature_header(header)
    if parsed is None:
        return BAD_SIGNATURE
    timestamp, candidates = parsed
    if not candidates:
        return BAD_SIGNATURE
    expected = hmac.new(secret, b"%d." % timestamp + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        return BAD_SIGNATURE
    if tolerance and timestamp < now - tolerance:
        return STALE
    return OK


# ================================================================== the event =====
class WebhookEvent:
    """One event to deliver, with its delivery record (times in simulated seconds)."""

    __slots__ = ("id", "seq", "body", "size_bytes", "created_at", "attempts", "delivered_at", "gave_up_at")

    def __init__(self, id: str, seq: int, body: bytes, size_bytes: int, created_at: float) -> None:
        self.id = id
        self.seq = seq
        self.body = body
        """The raw bytes that are signed (small; ``size_bytes`` is what the wire is charged)."""
        self.size_bytes = size_bytes
        self.created_at = created_at
        self.attempts = 0
        self.delivered_at = math.nan
        """When the provider got a 2xx."""
        self.gave_up_at = math.nan
        """When the provider stopped retrying (the retry horizon passed)."""


# ================================================================== the sender =====
class WebhookSender:
    """The provider's delivery worker, network node ``name``; see the module docstring."""

    def __init__(self, ctx: Context, name: str, network: Network, receiver: str, provider: WebhookProvider,
                 secret: bytes, *, cost: WireCost = WireCost(), keep_alive: float | None = None,
                 on_done: Callable[[WebhookEvent], None] | None = None) -> None:
        self.ctx, self.env, self.name, self.network = ctx, ctx.env, name, network
        self.receiver = receiver
        self.provider = provider
        self.secret = secret
        self.cost = cost
        """Set-up, headers: the one HTTP cost model (:class:`~sim.components.http.WireCost`)."""
        self.pool = HttpConnections(ctx, name, network, receiver, cost, keep_alive)
        """The sender's connections; an idle one is kept ``keep_alive`` seconds (None: one per attempt)."""
        self.on_done = on_done
        """Called with the event once it is delivered or given up."""
        self._waiting: dict[tuple[int, int], simpy.Event] = {}
        self._rid = 0
        # accounting
        self.requests = 0
        """POSTs sent (every attempt that got as far as its request)."""
        self.delivered = 0
        self.gave_up = 0
        network.attach(name, self._on_answer)

    # --- delivery ---------------------------------------------------------------------
    def deliver(self, event: WebhookEvent) -> simpy.Process:
        """Start delivering ``event`` now (first attempt at once)."""
        return self.env.process(self._deliver(event))

    def _deliver(self, event: WebhookEvent):
        env = self.env
        delays = self.provider.delays_s
        while True:
            event.attempts += 1
            status = yield from self._attempt(event)
            if status is not None and 200 <= status < 300:
                event.delivered_at = env.now
                self.delivered += 1
                break
            k = event.attempts - 1  # failed attempts so far - 1: index of the next delay
            # the schedule fits the horizon (see WebhookProvider.preset); failed attempts' own durations
            # (timeouts) come on top, so the last retry may start up to attempts x timeout after it
            if k >= len(delays):
                event.gave_up_at = env.now
                self.gave_up += 1
                break
            yield env.timeout(delays[k])
        if self.on_done is not None:
            self.on_done(event)

    def _attempt(self, event: WebhookEvent):
        """One POST; returns the HTTP status, or None after a timeout or a dead connection."""
        env = self.env
        start = env.now
        deadline = start + self.provider.timeout_s
        limit = self.provider.connect_timeout_s
        conn = yield from self.pool.open_or_reuse(start + limit if limit is not None else deadline)
        if conn is None:
            return None
        timestamp = EPOCH + int(env.now)
        header = sign(self.secret, timestamp, event.body)
        self.requests += 1
        status = yield from self._exchange(conn, POST, (event.id, header, event.body),
                                           self.cost.request_header_bytes + event.size_bytes, deadline)
        if status is None:
            self.pool.close(conn)  # a timed-out HTTP/1.1 connection cannot be reused
        else:
            self.pool.release(conn)
        return status

    def _exchange(self, conn: Connection, kind: str, data, size: int, deadline: float):
        env = self.env
        self._rid += 1
        key = (conn.id, self._rid)
        reply = self._waiting[key] = env.event()
        self.network.send(self.name, self.receiver, (kind, (key, data)), size)
        wait = max(0.0, deadline - env.now)
        yield env.any_of([reply, env.timeout(wait)])
        self._waiting.pop(key, None)  # a late answer finds nobody waiting
        return reply.value if reply.triggered else None

    def _on_answer(self, msg: Message) -> None:
        if self.pool.on_message(msg):
            return
        _kind, (key, value) = msg.payload
        reply = self._waiting.get(key)
        if reply is not None and not reply.triggered:
            reply.succeed(value)

    # --- connections (the pool's accounting) ----------------------------------------------
    @property
    def connections(self) -> int:
        """Connections opened (each paid the set-up)."""
        return self.pool.opened

    @property
    def connection_seconds(self) -> float:
        """Connection-seconds held by the sender: set-up, waiting for answers and keep-alive idling
        (idle connections count once :meth:`finish` closed them)."""
        return self.pool.connection_seconds

    @property
    def open_connections(self) -> int:
        return self.pool.open_connections

    @property
    def peak_connections(self) -> int:
        return self.pool.peak_connections

    def finish(self) -> None:
        """Close idle keep-alive connections (at their expiry, or now if sooner) for the accounting."""
        self.pool.finish()


# ================================================================= the receiver =====
class WebhookReceiver:
    """The consumer's endpoint, network node ``name``: verify, deduplicate, apply, answer.

    ``apply(event_id)`` is the application's effect; with ``dedupe`` it runs once per event id and
    a later copy is only acknowledged (2xx). The answer leaves after ``processing`` seconds, so a
    slow handler can outlast the provider's timeout and cause a retry of an applied event.
    """

    def __init__(self, ctx: Context, name: str, network: Network | None, secret: bytes, *,
                 apply: Callable[[str], None] | None = None, dedupe: bool = True,
                 tolerance: float | None = DEFAULT_TOLERANCE, processing: Distribution = Constant(0.0),
                 clock_skew: float = 0.0, response_bytes: int = 300) -> None:
        if tolerance is not None and not (isinstance(tolerance, (int, float)) and tolerance >= 0):
            raise ParameterError("tolerance", f"must be a number of seconds >= 0 (0 or none: no age check), "
                                              f"got {tolerance!r}")
        self.ctx, self.env, self.name, self.network = ctx, ctx.env, name, network
        self.secret = secret
        self.apply = apply
        self.dedupe = dedupe
        self.tolerance = tolerance
        self.clock_skew = clock_skew
        self.response_bytes = response_bytes
        """Receiver clock minus provider clock, in seconds (NTP drift makes it non-zero)."""
        self._processing = processing.bind(ctx.rng(f"webhook.{name}.processing"))
        self.seen: dict[str, int] = {}
        """Copies received (with a valid signature) per event id."""
        self.applied = 0
        self.duplicates = 0
        """Valid copies of an already-seen event (acknowledged, applied again only without dedupe)."""
        self.rejected = {BAD_SIGNATURE: 0, STALE: 0}
        self.received = 0
        if network is not None:
            network.attach(name, self._on_message)

    def handle(self, event_id: str, header: str, body: bytes) -> int:
        """Check and apply one request now; returns the HTTP status to answer."""
        self.received += 1
        status = verify(self.secret, header, body, EPOCH + self.env.now + self.clock_skew, self.tolerance)
        if status != OK:
            self.rejected[status] += 1
            return status
        n = self.seen.get(event_id, 0)
        self.seen[event_id] = n + 1
        if n:
            self.duplicates += 1
            if self.dedupe:
                return OK
        self.applied += 1
        if self.apply is not None:
            self.apply(event_id)
        return OK

    def _on_message(self, msg: Message) -> None:
        kind, (key, data) = msg.payload
        if answer_setup(self.network, self.name, msg):
            return
        if kind == POST:
            delay = self._processing.sample()
            timer = self.env.timeout(delay, (msg.src, key, data))
            timer.callbacks.append(self._answer)

    def _answer(self, timer: simpy.Event) -> None:
        src, key, (event_id, header, body) = timer.value
        status = self.handle(event_id, header, body)
        self.network.send(self.name, src, (ANSWER, (key, status)), self.response_bytes)
