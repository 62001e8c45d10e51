"""HTTP long polling: the transport a real-time client falls back to when WebSocket is blocked.

A long-polling session between a :class:`LongPollingClient` and a :class:`LongPollingServer`
over the simulated :class:`~sim.core.network.Network`:

* the client opens a session (a GET answered with the handshake), then sends a *poll* (GET);
* the server *holds* the poll until it has a message for that client, or until
  ``hold_timeout`` passes, then answers it with *every* queued message (one batch, possibly
  empty);
* the client re-polls as soon as an answer arrives: one round trip per answer, and the full
  HTTP request and response headers every time;
* client -> server messages go as separate POST requests, one per message.

A message that reaches the server while no poll is held (the answer to the previous poll is
on its way back, or the next poll is on its way in) waits for the next poll: the *re-poll
gap*, up to one round trip on top of the one-way latency. This is the behaviour Socket.IO's
Engine.IO describes for its polling transport: long-running GETs to receive, short POSTs to
send, successive emits concatenated in one response (https://socket.io/docs/v4/how-it-works/);
and the generic one in ``reference/real-systems.md`` §7 "Long polling" (hanging GET held until
an event or a timeout, re-issued at once, full headers each cycle, up to one RTT of extra
latency per event).

The WebSocket side it is compared with needs nothing new: :class:`~sim.components.server.Server`
pushes a data frame with a small header (:data:`~sim.components.frames.FRAME_HEADER_BYTES`)
the moment it has a message.

Not modelled: lost requests (no client-side request timeout, so use a loss-free link),
Engine.IO's heartbeat packets (its pong would add one POST per ``hold_timeout`` of silence),
HTTP/2 header compression, per-packet framing bytes inside a batch.

:func:`polls_per_message` and :func:`mean_latency` give the steady state of one client that
receives a Poisson stream over a link of constant latency, to check the simulation against.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import simpy

from sim.core.context import Context
from sim.core.errors import ParameterError
from sim.core.network import Message, Network
from sim.components.http import HttpConnections, answer_setup

# What travels on the wire: ``(kind, data)`` tuples, as in :mod:`sim.components.frames`.
OPEN = "open"      # client -> server: GET that creates the session (Engine.IO handshake)
POLL = "poll"      # client -> server: GET held until there is data or hold_timeout passes
POST = "post"      # client -> server: POST carrying one client message
OPENED = "opened"  # server -> client: answer to OPEN (session id, upgrades, ping interval)
BATCH = "batch"    # server -> client: answer to a poll: a tuple of every queued payload, maybe empty
POSTED = "posted"  # server -> client: answer to a POST
CLOSED = "closed"  # server -> client: answer to a poll on a closed or unknown session

#: Requests, as labelled in ``long_polling_requests_total``.
REQUEST_KINDS = (OPEN, POLL, POST)
#: Why a poll was answered, as labelled in ``long_polling_answers_total``.
ANSWER_REASONS = ("data", "timeout", "closed")

IDLE, OPENING, POLLING, CLOSED_STATE = "idle", "opening", "polling", "closed"
_ANSWERS_TO = {BATCH: POLL, CLOSED: POLL, OPENED: OPEN, POSTED: POST}
"""Which request each answer answers."""


@dataclass(frozen=True)
class LongPollingSpec:
    """What one long-polling deployment does; validated on creation."""

    hold_timeout: float = 25.0
    """Longest time the server holds a poll with nothing to send, in seconds. 25 s is the
    ``pingInterval`` of Engine.IO's handshake (socket.io/docs/v4/how-it-works): over polling a held
    GET is answered at the latest by the next heartbeat. Firestore's JS SDK times its hanging GET
    out after 30 s, configurable 5-30 s (reference/real-systems.md §7)."""
    request_header_bytes: int = 700
    """HTTP request line and headers of each GET or POST, in bytes. Chromium's SPDY whitepaper
    (dev.chromium.org/spdy/spdy-whitepaper, as quoted in talks that cite it): request headers
    "vary in size from ~200 bytes to over 2KB", "typical header sizes of 700-800 bytes is common"
    (cookies, User-Agent, Accept*)."""
    response_header_bytes: int = 300
    """Status line and headers of each response, in bytes. An assumption, not a measurement:
    Date, Content-Type, Content-Length, CORS and cache headers, without a browser's cookies and
    User-Agent, so well under a request's."""
    open_body_bytes: int = 100
    """Body of the handshake answer: Engine.IO's example ``{"sid":…,"upgrades":["websocket"],
    "pingInterval":25000,"pingTimeout":20000}`` is about 90 characters."""

    def __post_init__(self) -> None:
        h = self.hold_timeout
        if isinstance(h, bool) or not isinstance(h, (int, float)) or not (0 < h < math.inf):
            raise ParameterError("hold_timeout", f"must be a number of seconds > 0, got {h!r}")
        for name in ("request_header_bytes", "response_header_bytes", "open_body_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ParameterError(name, f"must be an integer number of bytes >= 0, got {value!r}")


class _Session:
    """Server side of one client's session."""

    __slots__ = ("queue", "held", "seq", "closed")

    def __init__(self) -> None:
        self.queue: deque[tuple[Any, int]] = deque()
        """Messages waiting for the next poll: ``(payload, size_bytes)``."""
        self.held = False
        """A poll is being held (the client is waiting on it)."""
        self.seq = 0
        """Number of the held poll, so a stale hold timer knows it is stale."""
        self.closed = False


class LongPollingServer:
    """The server end of long polling, network node ``name``; see the module docstring."""

    def __init__(self, ctx: Context, name: str, network: Network, spec: LongPollingSpec = LongPollingSpec(), *,
                 on_open: Callable[["LongPollingServer", str], None] | None = None,
                 on_post: Callable[["LongPollingServer", str, Any], None] | None = None) -> None:
        self.ctx = ctx
        self.env: simpy.Environment = ctx.env
        self.name = name
        self.network = network
        self.spec = spec
        self.on_open = on_open
        """Called as ``on_open(server, client)`` when a session opens: messages published from then on queue."""
        self.on_post = on_post
        """Called as ``on_post(server, client, payload)`` for each POSTed client message."""
        self.sessions: dict[str, _Session] = {}
        self.answered_messages = 0
        """Messages that have left in poll answers (they are on the wire or delivered)."""
        m, labels = ctx.metrics, {"server": name}
        requests = m.counter("long_polling_requests_total", "HTTP requests received, by kind", ("server", "kind"))
        self._m_requests = {k: requests.labels(server=name, kind=k) for k in REQUEST_KINDS}
        answers = m.counter("long_polling_answers_total", "Polls answered, by reason", ("server", "reason"))
        self._m_answers = {r: answers.labels(server=name, reason=r) for r in ANSWER_REASONS}
        self._m_batch = m.histogram("long_polling_batch_messages", "Messages carried by one poll answer",
                                    ("server",), buckets=(0, 1, 2, 3, 5, 10, 20, 50, 100), keep=False).labels(**labels)
        self._m_held = m.gauge("long_polling_held_polls", "Polls held open by the server", ("server",)).labels(**labels)
        network.attach(name, self._on_request)

    # --- requests -----------------------------------------------------------------------
    def _on_request(self, msg: Message) -> None:
        if answer_setup(self.network, self.name, msg):
            return  # a client's TCP + TLS set-up (sim.components.http)
        kind, data = msg.payload
        client = msg.src
        self._m_requests[kind].inc()
        if kind == POLL:
            self._poll(client)
        elif kind == POST:
            # HTTP has no server push, but a POST is answered at once whatever the session's state
            self._send(client, POSTED, None, 0)
            if self.on_post is not None:
                self.on_post(self, client, data)
        elif kind == OPEN:
            if client not in self.sessions or self.sessions[client].closed:
                self.sessions[client] = _Session()
            self._send(client, OPENED, None, self.spec.open_body_bytes)
            if self.on_open is not None:
                self.on_open(self, client)

    def _poll(self, client: str) -> None:
        session = self.sessions.get(client)
        if session is None or session.closed:
            self._m_answers["closed"].inc()
            self._send(client, CLOSED, None, 0)
            return
        if session.held:  # a client re-polling over its own held poll: answer the old one empty
            self._answer(client, session, "timeout")
        if session.queue:
            self._answer(client, session, "data")
            return
        session.held = True
        session.seq += 1
        self._m_held.inc()
        timer = self.env.timeout(self.spec.hold_timeout, (client, session, session.seq))
        timer.callbacks.append(self._hold_expired)

    def _hold_expired(self, event: simpy.Event) -> None:
        client, session, seq = event.value
        if session.held and session.seq == seq:  # else: answered with data meanwhile, timer is stale
            self._answer(client, session, "timeout")

    def _answer(self, client: str, session: _Session, reason: str) -> None:
        """Answer the client's poll with every queued message (none on a timeout)."""
        if session.held:
            session.held = False
            self._m_held.dec()
        queue = session.queue
        payloads = tuple(p for p, _ in queue)
        body = sum(size for _, size in queue)
        queue.clear()
        self.answered_messages += len(payloads)
        self._m_answers[reason].inc()
        self._m_batch.observe(len(payloads))
        self._send(client, BATCH, payloads, body)

    def _send(self, client: str, kind: str, data: Any, body_bytes: int) -> None:
        self.network.send(self.name, client, (kind, data), self.spec.response_header_bytes + body_bytes)

    # --- the application's side ---------------------------------------------------------
    def publish(self, client: str, payload: Any, size_bytes: int = 0) -> bool:
        """Queue a message for ``client``; it leaves at once if a poll is held. False (nothing
        queued) when the client has no open session."""
        session = self.sessions.get(client)
        if session is None or session.closed:
            return False
        session.queue.append((payload, size_bytes))
        if session.held:
            self._answer(client, session, "data")
        return True

    def close_session(self, client: str) -> list[tuple[Any, int]]:
        """Close ``client``'s session (e.g. after an upgrade to WebSocket) and hand back its queued
        messages ``(payload, size_bytes)``, for the caller to send another way. A held poll is
        answered ``closed``, and so is every later poll."""
        session = self.sessions.get(client)
        if session is None or session.closed:
            return []
        session.closed = True
        pending = list(session.queue)
        session.queue.clear()
        if session.held:
            session.held = False
            self._m_held.dec()
            self._m_answers["closed"].inc()
            self._send(client, CLOSED, None, 0)
        return pending

    @property
    def queued(self) -> int:
        """Messages waiting at the server for a poll, over every session."""
        return sum(len(s.queue) for s in self.sessions.values())

    def requests(self, kind: str | None = None) -> int:
        """HTTP requests received so far (of one kind, or all)."""
        kinds = REQUEST_KINDS if kind is None else (kind,)
        return int(sum(self._m_requests[k].value for k in kinds))


class LongPollingClient:
    """The client end: opens a session with ``server``, then keeps exactly one poll outstanding."""

    __slots__ = ("env", "name", "network", "server", "spec", "on_message", "state", "polls", "posts", "received",
                 "_opened", "connections", "busy", "last_poll_at")

    def __init__(self, ctx: Context, name: str, network: Network, server: str,
                 spec: LongPollingSpec = LongPollingSpec(), *,
                 on_message: Callable[["LongPollingClient", Any], None] | None = None,
                 connections: HttpConnections | None = None) -> None:
        self.env: simpy.Environment = ctx.env
        self.name = name
        self.network = network
        self.server = server
        self.spec = spec  # must match the server's: the client pays the request headers
        self.on_message = on_message
        """Called as ``on_message(client, payload)`` for each message received, in batch order."""
        self.state = IDLE
        self.polls = 0
        """Poll requests sent."""
        self.posts = 0
        """POST requests sent."""
        self.received = 0
        """Messages received."""
        self._opened: simpy.Event | None = None
        self.connections = connections
        """The client's HTTP connections (set-up when none is kept alive, keep-alive, connection-seconds,
        :mod:`sim.components.http`); None: requests are bare messages with no connection model."""
        self.last_poll_at = float("nan")
        """When the latest poll was started (its set-up, if any, included)."""
        self.busy: dict[str, deque] = {k: deque() for k in REQUEST_KINDS}
        """Connections carrying a request of each kind, oldest first (one request per connection)."""
        network.attach(name, self._on_response)

    def open(self) -> simpy.Event:
        """Send the opening GET; the event fires (value ``opened``) when its answer arrives, and
        the first poll leaves at that moment."""
        if self.state != IDLE:
            raise RuntimeError(f"{self.name} is {self.state}; open() needs an idle client")
        self.state = OPENING
        self._opened = self.env.event()
        self._request(OPEN, None, 0)
        return self._opened

    def send(self, payload: Any, size_bytes: int = 0) -> bool:
        """POST one message to the server; False (nothing sent) unless the session is open."""
        if self.state != POLLING:
            return False
        self.posts += 1
        self._request(POST, payload, size_bytes)
        return True

    def stop(self) -> None:
        """Stop polling (the poll held at the server, if any, is left to time out). With a
        connection pool, the connections carrying a request are counted closed now (the client is
        gone); idle ones close when their keep-alive expires."""
        self.state = CLOSED_STATE
        if self.connections is not None:
            for queue in self.busy.values():
                while queue:
                    self.connections.close(queue.popleft())

    def busy_connections(self) -> list:
        """Connections carrying a request now."""
        return [c for queue in self.busy.values() for c in queue]

    def _request(self, kind: str, data: Any, body_bytes: int) -> None:
        if self.connections is None:
            self.network.send(self.name, self.server, (kind, data), self.spec.request_header_bytes + body_bytes)
        else:
            self.env.process(self._request_over_http(kind, data, body_bytes))

    def _request_over_http(self, kind: str, data: Any, body_bytes: int):
        conn = yield from self.connections.open_or_reuse()
        if self.state == CLOSED_STATE and kind != POST:  # stopped during the set-up
            self.connections.release(conn)
            return
        self.busy[kind].append(conn)
        self.network.send(self.name, self.server, (kind, data), self.spec.request_header_bytes + body_bytes)

    def _answered(self, kind: str) -> None:
        """The answer to the oldest request of ``kind`` came: its connection is free again."""
        if self.connections is not None and self.busy[kind]:
            self.connections.release(self.busy[kind].popleft())

    def _poll(self) -> None:
        self.polls += 1
        self.last_poll_at = self.env.now
        self._request(POLL, None, 0)

    def _on_response(self, msg: Message) -> None:
        if msg.src != self.server or (self.connections is not None and self.connections.on_message(msg)):
            return
        kind, data = msg.payload
        self._answered(_ANSWERS_TO.get(kind, POLL))
        if kind == BATCH:
            if data:
                self.received += len(data)
                if self.on_message is not None:
                    for payload in data:
                        self.on_message(self, payload)
            if self.state == POLLING:
                self._poll()  # at once: every moment without a poll held is latency for the next message
        elif kind == OPENED and self.state == OPENING:
            self.state = POLLING
            self._poll()
            opened, self._opened = self._opened, None
            if opened is not None:
                opened.succeed(OPENED)
        elif kind == CLOSED:
            self.state = CLOSED_STATE


# --- steady state, for checks -----------------------------------------------------------------
def mean_hold(rate: float, rtt: float, hold_timeout: float) -> float:
    """Mean time a poll waits at the server, for Poisson messages at ``rate`` per second and a
    constant round trip ``rtt`` (server answer out, next poll in).

    A poll finds the queue empty with probability ``exp(-rate * rtt)`` (no message during the
    re-poll gap), and is then held until the next message or the timeout: ``min(Exp(rate), T)``.
    """
    if rate <= 0:
        return hold_timeout
    return math.exp(-rate * rtt) * -math.expm1(-rate * hold_timeout) / rate


def polls_per_message(rate: float, rtt: float, hold_timeout: float) -> float:
    """Poll requests per message delivered, in steady state: a poll cycle lasts ``rtt + hold``
    and carries on average ``rate * (rtt + hold)`` messages, so

        1 / (rate * rtt + exp(-rate * rtt) * (1 - exp(-rate * T))).

    Low rates: about ``1 / (1 - exp(-rate * T))`` (one poll per message plus the empty answers
    of hold timeouts); high rates: about ``1 / (rate * rtt)`` < 1 (batching). Since the hold
    is at most the wait for the next message, the value is always >= ``1 / (1 + rate * rtt)``.
    """
    if rate <= 0:
        return math.inf
    return 1.0 / (rate * (rtt + mean_hold(rate, rtt, hold_timeout)))


def mean_latency(rate: float, one_way: float, hold_timeout: float) -> float:
    """Mean delivery latency, in steady state, with a constant one-way latency: the one-way
    trip plus, for the messages that arrive during a re-poll gap (a share ``rtt / (rtt + hold)``
    of them, since Poisson arrivals see time averages), half the gap on average."""
    rtt = 2 * one_way
    cycle = rtt + mean_hold(rate, rtt, hold_timeout)
    return one_way + rtt * rtt / (2 * cycle)
