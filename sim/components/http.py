"""HTTP over TCP + TLS: the one cost model of a request on the wire, and connections kept alive.

Every HTTP transport of question 3 (a webhook's POSTs, short polls, long polls) and the WebSocket's
``wss://`` connection pay the same things, computed here and nowhere else:

* :class:`WireCost` — the numbers (``data/http_connections.json``, each with its source): the
  TCP + TLS set-up (``setup_round_trips`` round trips carrying ``setup_bytes``) when no kept-alive
  connection exists, the request and response headers, and the TCP/IP headers of every segment
  (``packet_overhead_bytes`` per ``mss_bytes`` of payload, at least one segment per message).
* :class:`MeteredNetwork` — a :class:`~sim.core.network.Network` that adds those per-segment bytes
  for *every* message it carries (HTTP requests and answers, set-up messages, WebSocket frames,
  pings and pongs alike), so that ``wire_bytes`` counts all transports on the same terms.
* :class:`HttpConnections` — one HTTP client's connections to one server: it reuses an idle
  connection kept alive for at most ``keep_alive`` seconds (the server's ``keepalive_timeout``:
  NGINX's default is 75 s), else opens one by exchanging the set-up messages over the network,
  and accounts the connections opened and the connection-seconds they were held (set-up,
  requests, idling). ``keep_alive=None`` closes a connection after each request.
  The server side answers set-up messages with :func:`answer_setup`.

Simplifications (the same for every transport): no pure ACK segments, no teardown (FIN) segments,
no TCP keepalive probes, no link-layer framing; one request at a time per connection (HTTP/1.1
without pipelining), a second connection is opened when a request finds every connection busy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import simpy

from sim import data
from sim.core.context import Context
from sim.core.errors import ParameterError
from sim.core.network import LinkSpec, Message, Network

SETUP, SETUP_OK = "setup", "setup_ok"
"""Set-up messages on the wire: ``(SETUP, (key, step))`` answered by ``(SETUP_OK, (key, True))``."""


def presets() -> dict:
    """``data/http_connections.json``: each value with its status and source."""
    return data.load("http_connections")


def preset_value(name: str) -> Any:
    """The value of one entry of ``data/http_connections.json``."""
    return presets()[name]["value"]


@dataclass(frozen=True)
class WireCost:
    """What a request costs on the wire, in bytes; see the module docstring and the preset."""

    setup_round_trips: int = 2
    """Round trips to open a connection: TCP 1 + TLS 1.3 1 (TLS 1.2: 2 + 1)."""
    setup_bytes: int = 5000
    """Bytes of the TLS handshake records (certificate chain), spread over the set-up messages."""
    request_header_bytes: int = 700
    response_header_bytes: int = 300
    packet_overhead_bytes: int = 52
    """IPv4 + TCP headers (with timestamps) of one segment."""
    mss_bytes: int = 1448
    """Largest TCP payload of one segment (Ethernet MTU 1500 minus the headers)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            low = 1 if f.name == "mss_bytes" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ParameterError(f.name, f"must be an integer >= {low}, got {value!r}")

    @classmethod
    def preset(cls, **overrides: int) -> "WireCost":
        """The values of ``data/http_connections.json``, with ``overrides``."""
        values = {f.name: int(preset_value(f.name)) for f in fields(cls)}
        values.update(overrides)
        return cls(**values)

    def segments(self, size_bytes: int) -> int:
        """TCP segments that carry one message of ``size_bytes`` (at least one)."""
        return max(1, -(-int(size_bytes) // self.mss_bytes))

    def packet_bytes(self, size_bytes: int) -> int:
        """IP + TCP header bytes of one message of ``size_bytes``."""
        return self.segments(size_bytes) * self.packet_overhead_bytes

    def on_wire(self, size_bytes: int) -> int:
        """Bytes on the wire of one message of ``size_bytes``: payload plus its segments' headers."""
        return int(size_bytes) + self.packet_bytes(size_bytes)

    def setup_message_bytes(self) -> int:
        """Payload of each of the ``2 * setup_round_trips`` set-up messages."""
        return self.setup_bytes // max(1, 2 * self.setup_round_trips)

    def setup_wire_bytes(self) -> int:
        """Bytes on the wire of one connection set-up (both directions)."""
        return 2 * self.setup_round_trips * self.on_wire(self.setup_message_bytes()) if self.setup_round_trips else 0

    def exchange_wire_bytes(self, request_body: int = 0, response_body: int = 0) -> int:
        """Bytes on the wire of one request and its answer, on an open connection."""
        return self.on_wire(self.request_header_bytes + request_body) + self.on_wire(
            self.response_header_bytes + response_body)


class MeteredNetwork(Network):
    """A :class:`~sim.core.network.Network` that also counts the TCP/IP headers of every message."""

    def __init__(self, ctx: Context, default: LinkSpec | None = None, *, cost: WireCost, name: str = "network") -> None:
        super().__init__(ctx, default, name=name)
        self.cost = cost
        self.packet_bytes = 0
        """IP + TCP header bytes of every message sent (``bytes_sent`` counts payloads only)."""

    def send(self, src: str, dst: str, payload: Any = None, size_bytes: int = 0) -> Message:
        self.packet_bytes += self.cost.packet_bytes(size_bytes)
        return super().send(src, dst, payload, size_bytes)

    @property
    def wire_bytes(self) -> int:
        """Every byte sent: payloads and their segments' headers."""
        return self.bytes_sent + self.packet_bytes


def answer_setup(network: Network, me: str, msg: Message) -> bool:
    """Server side: answer ``msg`` if it is a set-up message (same size back); True if it was."""
    kind, body = msg.payload
    if kind != SETUP:
        return False
    key, _step = body
    network.send(me, msg.src, (SETUP_OK, (key, True)), msg.size_bytes)
    return True


class Connection:
    """One TCP + TLS connection of an :class:`HttpConnections` pool."""

    __slots__ = ("id", "opened_at", "idle_since", "closed")

    def __init__(self, id: int, opened_at: float) -> None:
        self.id = id
        self.opened_at = opened_at
        self.idle_since = math.nan
        self.closed = False


class HttpConnections:
    """An HTTP client's connections from node ``name`` to ``server``; see the module docstring.

    The client node's own message handler must first offer every message to :meth:`on_message`
    (which takes the set-up answers). ``open_or_reuse`` is a generator (``conn = yield from
    pool.open_or_reuse(deadline)``); ``release`` after a complete answer keeps the connection
    for the next request, ``close`` after a failure does not.
    """

    def __init__(self, ctx: Context, name: str, network: Network, server: str, cost: WireCost,
                 keep_alive: float | None) -> None:
        if keep_alive is not None and not (isinstance(keep_alive, (int, float)) and 0 < keep_alive < math.inf):
            raise ParameterError("http_keep_alive", f"must be seconds > 0 or None, got {keep_alive!r}")
        self.env: simpy.Environment = ctx.env
        self.name, self.network, self.server, self.cost = name, network, server, cost
        self.keep_alive = keep_alive
        self._idle: list[Connection] = []
        self._waiting: dict[tuple, simpy.Event] = {}
        self._next_id = 0
        self.opened = 0
        """Connections opened (each paid the set-up)."""
        self.connection_seconds = 0.0
        """Connection-seconds of the connections closed so far (see :meth:`finish`)."""
        self.open_connections = 0
        self.peak_connections = 0
        self.counted_from = 0.0
        """Connection-seconds before this time are left out (a scenario's cost window)."""

    # --- opening ------------------------------------------------------------------------
    def take_idle(self, at: float | None = None) -> Connection | None:
        """The most recently used idle connection still kept alive (now, or at time ``at``), or None."""
        now = self.env.now if at is None else at
        while self._idle:
            conn = self._idle.pop()  # most recently used first, as connection pools do
            if now - conn.idle_since <= self.keep_alive:
                return conn
            self._close_at(conn, conn.idle_since + self.keep_alive)
        return None

    def open_or_reuse(self, deadline: float = math.inf):
        """Generator: a kept-alive connection at once, or a new one after the set-up exchange;
        None if a set-up answer does not come by ``deadline`` (the connection is closed)."""
        conn = self.take_idle()
        if conn is not None:
            return conn
        env = self.env
        conn = self._new(env.now)
        size = self.cost.setup_message_bytes()
        for step in range(self.cost.setup_round_trips):  # TCP SYN/SYN-ACK, then TLS
            key = (self.name, conn.id, step)
            reply = self._waiting[key] = env.event()
            self.network.send(self.name, self.server, (SETUP, (key, step)), size)
            yield env.any_of([reply, env.timeout(max(0.0, deadline - env.now))])
            self._waiting.pop(key, None)
            if not reply.triggered:
                self.close(conn)
                return None
        return conn

    def _new(self, t: float) -> Connection:
        self._next_id += 1
        conn = Connection(self._next_id, t)
        self.opened += 1
        self.open_connections += 1
        self.peak_connections = max(self.peak_connections, self.open_connections)
        return conn

    # --- for requests counted instead of simulated (sim.components.idle_time) ------------
    def open_counted(self, t: float) -> Connection:
        """A connection opened at ``t`` by a counted request (its set-up bytes are the caller's)."""
        return self._new(t)

    def close_counted(self, conn: Connection, t: float) -> None:
        """Close a counted connection at ``t`` (possibly later than now: its accounting is done)."""
        self._close_at(conn, t)

    def park_idle(self, conn: Connection, idle_since: float) -> None:
        """Keep ``conn`` idle from ``idle_since`` (possibly later than now), the last counted answer."""
        conn.idle_since = idle_since
        if conn not in self._idle:
            self._idle.append(conn)

    def on_message(self, msg: Message) -> bool:
        """Take a set-up answer (True), or leave the message to the client (False)."""
        kind, body = msg.payload
        if kind != SETUP_OK:
            return False
        reply = self._waiting.get(body[0])
        if reply is not None and not reply.triggered:
            reply.succeed(True)
        return True

    # --- after a request ----------------------------------------------------------------
    def release(self, conn: Connection) -> None:
        """The answer came: keep the connection for the next request, or close it."""
        if conn.closed:
            return
        if self.keep_alive is None:
            self.close(conn)
        else:
            conn.idle_since = self.env.now
            self._idle.append(conn)

    def close(self, conn: Connection) -> None:
        """Close now (a failed or timed-out request: an HTTP/1.1 connection is not reused)."""
        self._close_at(conn, self.env.now)

    def _close_at(self, conn: Connection, t: float) -> None:
        if conn.closed:
            return
        conn.closed = True
        self.open_connections -= 1
        self.connection_seconds += self._held(conn, t)

    def _held(self, conn: Connection, t: float) -> float:
        return max(0.0, t - max(conn.opened_at, self.counted_from))

    def keep_idle_alive(self) -> None:
        """The idle connections were in use until now (requests counted, not simulated)."""
        for conn in self._idle:
            conn.idle_since = self.env.now

    def finish(self) -> None:
        """Close idle connections (at their expiry, or now if sooner), for the accounting."""
        now = self.env.now
        for conn in self._idle:
            self._close_at(conn, min(now, conn.idle_since + self.keep_alive))
        self._idle.clear()

    def connection_seconds_until_now(self, busy: list[Connection] = ()) -> float:
        """Connection-seconds so far: closed ones, idle ones up to now or their expiry, and
        ``busy`` ones (carrying a request) up to now; changes nothing."""
        now = self.env.now
        total = self.connection_seconds
        for conn in self._idle:
            if not conn.closed:
                total += self._held(conn, min(now, conn.idle_since + self.keep_alive))
        for conn in busy:
            if conn is not None and not conn.closed:
                total += self._held(conn, now)
        return total
