"""``push-vs-webhook``: question 3, « WebSockets vs Webhooks », measured.

A provider creates ``events`` events (Poisson, ``event_rate`` per second) for one consumer, which
has outages (a renewal process: up ``outage_every``, down ``outage_duration``; the consumer is cut
off from the provider, so nothing it should answer is answered). Four transports carry them:

* ``websocket``: the consumer holds one WebSocket to the provider (:class:`WebSocketChannel`:
  handshake once, ping every ``heartbeat_interval``, the server drops a connection silent for
  ``idle_timeout`` (close code 1006, seen locally), per-connection memory). A frame sent into a
  dead connection, or while the consumer is not connected, is lost, unless the server keeps the
  last ``ws_buffer`` events and replays them when the consumer reconnects and says where it was;
* ``webhook``: one HTTPS POST per event attempt with the provider's timeout and retry schedule
  (:mod:`sim.components.webhook`); the receiver verifies the signature and deduplicates;
* ``long-polling``: :mod:`sim.components.long_polling`; the provider queues events in the session;
* ``short-polling``: :mod:`sim.components.polling`, a GET every ``poll_interval``.

Every transport pays the same per-request costs (:mod:`sim.components.http`): a TCP + TLS set-up
when no kept-alive connection exists (``setup_round_trips``, ``setup_bytes``), request and response
headers, and the TCP/IP headers of every segment (``packet_overhead_bytes`` per ``mss_bytes``),
WebSocket frames and pings included. Webhooks, short polls and long polls keep an idle connection
``http_keep_alive`` seconds (NGINX's ``keepalive_timeout``, 75 s; none: a new connection per
request). The WebSocket's own TCP + TLS set-up is charged in bytes for each accepted handshake,
but its round trips are not simulated (the Upgrade request leaves at once).

Idle time is counted rather than simulated (``idle="counted"``), so one event per day over 200
days costs a few thousand simulation events: heartbeats, the server's detection of a dead
WebSocket, empty short polls and idle long polls are the closed forms of
:mod:`sim.components.idle_time`; ``idle="simulated"`` sends every ping and poll instead.

Summary, one row per (transport, rate); the cost window runs from START (5 s, when
every transport is set up) to the last event, or to the last delivery if later:

* ``latency_p50_s``/``latency_p99_s``: creation to first arrival at the consumer's application;
* ``lost``: events never applied by the end of the run (webhook: given up past the retry horizon,
  or never retried; WebSocket: sent into a dead connection or while disconnected and not
  replayed); ``duplicates``: copies beyond the first that reached the consumer (for webhooks, valid
  signed copies that the receiver's dedupe by event id absorbed);
* ``after_outage``: events created before an outage ended and delivered after it, ``after_outage_delay_mean_s``
  and ``_max_s`` their creation-to-delivery delay;
* ``requests_per_event``: HTTP requests (POST attempts, GETs, WebSocket handshakes) per delivered
  event; ``bytes_per_event``: every byte on the wire, headers, set-ups and heartbeats included;
* ``connection_seconds``: connection-seconds held at the provider; ``memory_mean_bytes`` = the mean
  number of open connections × ``memory_per_connection_bytes``.
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import simpy

from sim.components import frames
from sim.components.backoff import Textbook
from sim.components.client import CONNECTED, DISCONNECTED, Client
from sim.components.http import HttpConnections, MeteredNetwork, WireCost, preset_value
from sim.components.idle_time import MODES as IDLE_MODES, IdleTime
from sim.components.security.gateway import Gateway, GatewaySpec
from sim.components.resilient_client import ReconnectTracker, ResilientClient
from sim.components.long_polling import LongPollingServer, LongPollingSpec
from sim.components.polling import ParkableLongPollingClient, ShortPoller, ShortPollingServer
from sim.components.server import Server, ServerSpec
from sim.components.webhook import (
    PROVIDERS, WebhookEvent, WebhookProvider, WebhookReceiver, WebhookSender, derive_secret,
)
from sim.core.params import WorkModel
from sim.core import (
    Context, Distribution, Exponential, LinkSpec, ParameterError, Params, Result, Uniform, expand_names, param,
)
from sim.core.registry import scenario
from sim.core.replication import replicate, replications_param

TRANSPORTS = ("websocket", "webhook", "long-polling", "short-polling")
PROVIDER, CONSUMER = "provider", "consumer"
START = 5.0
"""The first event comes after this warm-up, in seconds: every transport is set up by then."""

CLOSE_CODES = frames.CLOSE_CODES  # what each code means, for the notebook
SIMULATED_EXCHANGE_S = 4e-5
"""CPU seconds of one simulated idle exchange (ping and pong, empty poll and answer), measured:
40 events at one an hour with ``idle="simulated"``, 2,400 short polls in 0.08 s, 5,760 long polls in 0.2 s."""
RETRY_S = 1.0
"""The WebSocket consumer's pause between failed connection attempts (an application choice)."""


@dataclass(frozen=True)
class PushVsWebhookParams(Params):
    """Parameters of ``push-vs-webhook``."""
    work = WorkModel(seconds_at_defaults=0.8, factors=('events',))  # measured, see check_work

    transport: str = param("all", help=f"{', '.join(TRANSPORTS)}; several separated by commas, or all "
                                       "(on the same events)")
    replications: int = replications_param()
    event_rates: tuple[float, ...] = param((1 / 86400, 1 / 3600, 1 / 60, 1.0, 100.0), gt=0, le=10_000, unit="1/s",
                                           help="event rates to compare (default: 1 per day to 100 per second)")
    events: int = param(200, ge=1, le=1_000_000, help="events per rate; the horizon is about events / rate")
    event_bytes: int = param(1500, ge=0, unit="B", help="payload of one event (a JSON object; an assumption)")
    latency: Distribution = param(Uniform(0.02, 0.08), unit="s", ge=1e-4,
                                  help="one-way latency provider <-> consumer (mean >= 0.1 ms, as on loopback: with no delay "
                                       "a reconnect loop never lets the clock move)")
    loss: float = param(0.0, ge=0, lt=1, help="probability that the network loses a message")
    outage_every: Distribution | None = param(Exponential(1 / 43200), unit="s", none_means="no outages",
                                              help="consumer up time between outages (default mean 12 h)")
    outage_duration: Distribution = param(Exponential(1 / 1800), unit="s",
                                          help="length of a consumer outage (default mean 30 min)")
    provider: str = param("stripe", choices=PROVIDERS,
                          help="webhook timeout and retry schedule (data/webhook_providers.json)")
    http_keep_alive: float | None = param(float(preset_value("keep_alive_s")), gt=0, le=86400, unit="s",
                                          none_means="a new TCP + TLS connection per request",
                                          help="an idle HTTP connection (webhook POSTs, short and long polls) is kept this "
                                               "long for the next request (NGINX keepalive_timeout default)")
    setup_round_trips: int = param(int(preset_value("setup_round_trips")), ge=0, le=10,
                                   help="round trips to open an HTTPS connection: TCP 1 + TLS 1.3 1 (TLS 1.2: 2)")
    setup_bytes: int = param(int(preset_value("setup_bytes")), ge=0, le=10**6, unit="B",
                             help="bytes of a TCP + TLS set-up with a certificate chain (order of magnitude, an assumption)")
    request_header_bytes: int = param(int(preset_value("request_header_bytes")), ge=0, le=10**6, unit="B",
                                      help="HTTP request headers (SPDY whitepaper: 700-800 B typical)")
    response_header_bytes: int = param(int(preset_value("response_header_bytes")), ge=0, le=10**6, unit="B",
                                       help="HTTP response headers (an assumption)")
    packet_overhead_bytes: int = param(int(preset_value("packet_overhead_bytes")), ge=0, le=120, unit="B",
                                       help="IP + TCP headers of every segment, every transport alike (IPv4 20 + TCP 20 "
                                            "+ timestamps 12)")
    mss_bytes: int = param(int(preset_value("mss_bytes")), ge=536, le=65495, unit="B",
                           help="largest TCP payload of one segment (Ethernet MTU 1500 minus 52 B of headers)")
    idle: str = param("counted", choices=IDLE_MODES,
                      help="idle pings, empty polls and hold timeouts: counted with the closed forms of "
                           "sim.components.idle_time, or simulated one by one (slow at low rates)")
    receiver_processing: Distribution = param(Exponential(10.0), unit="s",
                                              help="webhook handler time before its 2xx (default mean 0.1 s)")
    tolerance: float = param(300.0, ge=0, unit="s", help="signature timestamp tolerance (Stripe DEFAULT_TOLERANCE); 0 checks no age, "
                                                                    "as stripe-python")
    heartbeat_interval: float = param(30.0, gt=0, unit="s",
                                      help="WebSocket ping period (RFC 6455 defines none: an application choice)")
    idle_timeout: float = param(60.0, gt=0, unit="s", help="server closes a WebSocket silent this long (1006)")
    ws_buffer: int = param(0, ge=0, help="events the WebSocket server keeps for replay on reconnect (0: none)")
    memory_per_connection_bytes: int = param(1000, ge=0, unit="B",
                                             help="memory per open connection (~1 KB: Go + epoll, 1M sockets < 1 GB; "
                                                  "secondary source, other stacks use more)")
    poll_interval: float = param(60.0, gt=0, unit="s", help="short polling period")
    hold_timeout: float = param(25.0, gt=0, unit="s", help="long polling hold (Engine.IO pingInterval 25 s)")
    drain: float = param(4 * 86400.0, gt=0, unit="s",
                         help="time allowed after the last event for late deliveries (> Stripe's 3 days)")

    def validate(self) -> None:
        self.transports  # raises on an unknown name
        if self.idle_timeout < self.heartbeat_interval:
            raise ParameterError("idle_timeout", f"must be >= heartbeat_interval ({self.heartbeat_interval} s), "
                                                 f"got {self.idle_timeout}")
        if self.outage_every is not None and not self.outage_every.mean > 0:
            raise ParameterError("outage_every", f"must have a mean > 0 s, got {self.outage_every.spec()}")

    @property
    def transports(self) -> tuple[str, ...]:
        return expand_names("transport", self.transport, TRANSPORTS)

    def estimated_seconds(self) -> tuple[float, str | None, int]:
        """The work model's estimate, plus, with ``idle="simulated"``, every idle ping, poll and
        hold timeout over the horizon (about ``events / rate`` per rate): those runs grow with
        simulated time, not with events."""
        estimate, worst, power = super().estimated_seconds()
        if self.idle != "simulated":
            return estimate, worst, power
        names = self.transports
        per_second = (("websocket" in names) / self.heartbeat_interval + ("short-polling" in names) / self.poll_interval
                      + ("long-polling" in names) / self.hold_timeout)
        horizon = sum(self.events / rate for rate in self.event_rates)
        idle = SIMULATED_EXCHANGE_S * horizon * per_second * self.replications
        return (estimate + idle, "events", 1) if idle > estimate else (estimate + idle, worst, power)

    def wire_cost(self) -> WireCost:
        """The one per-request cost model of every transport (:mod:`sim.components.http`)."""
        return WireCost(setup_round_trips=self.setup_round_trips, setup_bytes=self.setup_bytes,
                        request_header_bytes=self.request_header_bytes,
                        response_header_bytes=self.response_header_bytes,
                        packet_overhead_bytes=self.packet_overhead_bytes, mss_bytes=self.mss_bytes)


# ====================================================================== ledger =====
class _Ledger:
    """The consumer application's view: first arrival of each event (a record per event), and
    the counts, in the run's metrics registry."""

    __slots__ = ("env", "created", "first", "_applied", "_copies")

    def __init__(self, ctx: Context, created: np.ndarray) -> None:
        self.env = ctx.env
        self.created = created
        self.first = np.full(len(created), np.nan)
        self._applied = ctx.metrics.counter("consumer_events_applied_total",
                                            "events the consumer's application received a first time")
        self._copies = ctx.metrics.counter("consumer_extra_copies_total",
                                           "copies of an event already received that reached the consumer's application")

    def receive(self, seq: int) -> None:
        if math.isnan(self.first[seq]):
            self.first[seq] = self.env.now
            self._applied.inc()
        else:
            self._copies.inc()

    @property
    def delivered(self) -> int:
        return int(self._applied.value)

    @property
    def copies(self) -> int:
        return int(self._copies.value)


# ============================================================ WebSocket channel =====
class WebSocketChannel:
    """Provider -> consumer over one persistent WebSocket; see the module docstring.

    The consumer is down during each outage ``(start, end)``: at ``end`` it restarts, reconnects
    and, with a buffer, asks for a replay after the last event it has.
    """

    def __init__(self, ctx: Context, net: MeteredNetwork, p: PushVsWebhookParams, on_event: Callable[[int], None],
                 outages: list[tuple[float, float]], idle: IdleTime) -> None:
        self.ctx, self.env, self.net, self.p, self.on_event = ctx, ctx.env, net, p, on_event
        self.idle = idle
        self.simulated = p.idle == "simulated"
        spec = ServerSpec(memory_per_connection_bytes=p.memory_per_connection_bytes)
        # simulated idle time: the server's idle timeout sees the pings stop (else a closed form)
        self.gate = Gateway(ctx, GatewaySpec(idle_timeout=p.idle_timeout)) if self.simulated else None
        self.server = Server(ctx, PROVIDER, spec, net, on_data=self._on_client_frame, gate=self.gate)
        self.client: ResilientClient | None = None
        self.reconnect = Textbook("constant", base=RETRY_S, cap=RETRY_S)
        self.tracker = ReconnectTracker()
        self.buffer: list[int] = []
        """Seqs the server can replay (the last ``ws_buffer`` events)."""
        self.last_seq = -1
        metrics = ctx.metrics  # the run's one metrics registry: what a /metrics endpoint would expose
        self._not_sent = metrics.counter("websocket_events_not_sent_total",
                                         "events published while the server had no connection to the consumer")
        """Events published while the server had no connection (lost unless buffered)."""
        self._closes = metrics.counter("websocket_server_closes_total", "connections the server closed, by close code",
                                       ["code"])
        self._connected = metrics.counter("websocket_connected_seconds_total",
                                          "seconds the consumer's WebSocket was open, within the cost window")
        self._connected_since = math.nan
        self._ping_origin = math.nan
        """When the consumer's connection started: it pings at ``origin + k * heartbeat_interval``."""
        self._last_frame_at = math.nan
        """When the server last heard a frame other than a ping (the handshake or the resume request)."""
        self._connect()
        for start, end in outages:
            self.env.timeout(start).callbacks.append(lambda _e: self._outage_starts())
            self.env.timeout(end).callbacks.append(lambda _e: self._restart())

    @property
    def connected_seconds(self) -> float:
        """Seconds the consumer's connection was open since START (up to the last accounting)."""
        return self._connected.value

    @property
    def handshakes(self) -> int:
        """WebSocket handshakes attempted, by every consumer process."""
        return sum(self.tracker.attempts.values())

    def _connect(self) -> None:
        # a new consumer process: it connects, and tries again every RETRY_S while that fails
        self.client = ResilientClient(self.ctx, CONSUMER, self.net, PROVIDER, self.reconnect, self.tracker,
                                      connect_timeout=10.0, on_message=self._on_event, on_connect=self._on_connect,
                                      heartbeat_interval=self.p.heartbeat_interval if self.simulated else None)
        self.client.start()

    def _on_connect(self, client: Client) -> None:
        now, one_way = self.env.now, self.idle.one_way
        self._connected_since = max(now, START)  # the cost window opens at START
        self._ping_origin = now
        self._last_frame_at = now - one_way  # the server accepted the handshake
        if self.p.ws_buffer:
            client.send(("resume", self.last_seq), 8)
            self._last_frame_at = now + one_way

    def _on_client_frame(self, server: Server, client: str, data) -> None:
        kind, after = data
        for seq in self.buffer:
            if seq > after:
                server.send_to(client, seq, self.p.event_bytes)

    def _on_event(self, _client: Client, seq: int) -> None:
        self.last_seq = max(self.last_seq, seq)
        self.on_event(seq)

    def publish(self, seq: int) -> None:
        if self.p.ws_buffer:
            self.buffer.append(seq)
            if len(self.buffer) > self.p.ws_buffer:
                del self.buffer[0]
        if not self.server.send_to(CONSUMER, seq, self.p.event_bytes):
            self._not_sent.inc()

    def _outage_starts(self) -> None:
        # the consumer dies: no close frame, no more pings; the server notices only when the pings
        # have stopped for idle_timeout (simulated: the gate's idle timeout; counted: the closed form)
        self._account_connected()
        self._kill_consumer()
        if self.simulated or CONSUMER not in self.server.connections:
            return
        accepted = self.server.connections[CONSUMER]
        p = self.p
        detect = self.idle.dead_websocket_noticed_at(self.env.now, self._ping_origin, p.heartbeat_interval,
                                                     p.idle_timeout, self._last_frame_at)
        self.env.timeout(detect - self.env.now).callbacks.append(lambda _e: self._idle_check(accepted))

    def _kill_consumer(self) -> None:
        client = self.client
        client.abandon()  # no more attempts
        if client.state == CONNECTED:
            client.state = DISCONNECTED  # so that close() sends no frame: the process is gone
        client.close(frames.ABNORMAL_CLOSURE)  # stops its heartbeats

    def _idle_check(self, accepted: float) -> None:
        if self.server.connections.get(CONSUMER) == accepted and self.server.drop(CONSUMER):
            self._closes.labels(code=str(frames.ABNORMAL_CLOSURE)).inc()
            # the reset the idle timeout sends (as the simulated gate does), into the dead connection
            self.net.send(PROVIDER, CONSUMER, (frames.RESET, None), frames.FRAME_HEADER_BYTES)

    @property
    def closed_abnormally(self) -> int:
        """Connections the server dropped after its idle timeout (1006 at the consumer)."""
        if self.gate is not None:
            return int(self.ctx.metrics["gateway_refusals_total"].labels(reason="idle_reset").value)
        return int(self._closes.labels(code=str(frames.ABNORMAL_CLOSURE)).value)

    def _restart(self) -> None:
        self.client.abandon()  # the old process is gone, and its connection unknown to the new one
        self._connect()

    def _account_connected(self) -> None:
        if not math.isnan(self._connected_since):
            now = self.env.now
            self._connected.inc(max(0.0, now - self._connected_since))
            if not self.simulated:
                self.idle.heartbeats(self._ping_origin, self._connected_since, now, self.p.heartbeat_interval)
            self._connected_since = math.nan

    def finish(self) -> None:
        self._account_connected()


# ========================================================================= runs =====
def _outages(p: PushVsWebhookParams, ctx: Context, until: float) -> list[tuple[float, float]]:
    if p.outage_every is None:
        return []
    up = p.outage_every.bind(ctx.rng("outages.up"))
    down = p.outage_duration.bind(ctx.rng("outages.down"))
    out, t = [], 0.0
    while True:
        t += up.sample()
        if t >= until:
            return out
        d = down.sample()
        out.append((t, t + d))
        t += d


class _Run:
    """One transport at one rate."""

    def __init__(self, p: PushVsWebhookParams, transport: str, rate: float, seed: int, replication: int = 0) -> None:
        self.p, self.transport, self.rate = p, transport, rate
        # the same streams for every transport: common random numbers (same events, same outages)
        self.ctx = ctx = Context(seed, replication=replication)
        self.env = ctx.env
        gaps = ctx.rng("events").exponential(1 / rate, p.events)
        self.created = START + np.cumsum(gaps)
        self.t_end = float(self.created[-1])
        self.outages = _outages(p, ctx, self.t_end)
        self.wire = p.wire_cost()
        self.net = MeteredNetwork(ctx, LinkSpec(latency=p.latency, loss=p.loss, fifo=True), cost=self.wire)
        for s, e in self.outages:
            self.net.partition([CONSUMER], [PROVIDER], start=s, heal=e)
        self.idle = IdleTime(ctx, self.wire, p.latency.mean)
        self.counted = p.idle == "counted"
        self.ledger = _Ledger(ctx, self.created)
        self.next_index = 0
        self._resolved = ctx.metrics.counter("events_resolved_total",
                                             "events delivered, or given up by the transport, so far")
        self.all_resolved = self.env.event()

    def next_event_at(self) -> float:
        return float(self.created[self.next_index]) if self.next_index < len(self.created) else math.inf

    def _producer(self, publish):
        env = self.env
        for i, t in enumerate(self.created):
            yield env.timeout(t - env.now)
            self.next_index = i + 1
            publish(i)

    def _resolve(self, _event=None) -> None:
        self._resolved.inc()
        if self._resolved.value >= self.p.events and not self.all_resolved.triggered:
            self.all_resolved.succeed()

    def _pool(self) -> HttpConnections:
        """New HTTP connections from the client of this transport (the one keep-alive parameter)."""
        client, server = (PROVIDER, CONSUMER) if self.transport == "webhook" else (CONSUMER, PROVIDER)
        pool = HttpConnections(self.ctx, client, self.net, server, self.wire, self.p.http_keep_alive)
        pool.counted_from = START  # the cost window
        return pool

    def _deliver_and_resolve(self, seq: int) -> None:
        first = math.isnan(self.ledger.first[seq])
        self.ledger.receive(seq)
        if first:
            if self.env.now >= self.t_end:  # the cost window runs to the last delivery
                self.cost = self._snapshot()
            self._resolve()

    # --- transports ---------------------------------------------------------------------
    def _webhook(self) -> None:
        p, ctx = self.p, self.ctx
        provider = WebhookProvider.preset(p.provider)
        secret = derive_secret(ctx.seed)
        ids = ctx.rng("event.ids").integers(0, 2**63, len(self.created))
        self.receiver = WebhookReceiver(ctx, CONSUMER, self.net, secret, tolerance=p.tolerance,
                                        processing=p.receiver_processing, response_bytes=p.response_header_bytes,
                                        apply=lambda event_id: self.ledger.receive(self._seq_of[event_id]))
        self.sender = WebhookSender(ctx, PROVIDER, self.net, CONSUMER, provider, secret, cost=self.wire,
                                    keep_alive=p.http_keep_alive, on_done=self._resolve)
        self.sender.pool.counted_from = START
        self._seq_of: dict[str, int] = {}
        self.webhook_events: list[WebhookEvent] = []

        def publish(i: int) -> None:
            event_id = f"evt_{int(ids[i]):016x}"
            self._seq_of[event_id] = i
            body = json.dumps({"id": event_id, "type": "payment_intent.succeeded", "seq": i}).encode()
            ev = WebhookEvent(event_id, i, body, p.event_bytes, self.env.now)
            self.webhook_events.append(ev)
            self.sender.deliver(ev)

        self.env.process(self._producer(publish))

    def _websocket(self) -> None:
        self.channel = WebSocketChannel(self.ctx, self.net, self.p, self._deliver_and_resolve, self.outages, self.idle)
        self.env.process(self._producer(self.channel.publish))

    def _short_polling(self) -> None:
        p = self.p
        server = ShortPollingServer(self.ctx, PROVIDER, self.net, response_header_bytes=p.response_header_bytes)
        phase = float(self.ctx.rng("poll.phase").uniform(0, p.poll_interval))
        self.poll_pool = self._pool()
        self.poller = ShortPoller(self.ctx, CONSUMER, self.net, PROVIDER, interval=p.poll_interval, phase=phase,
                                  request_header_bytes=p.request_header_bytes, next_event_at=self.next_event_at,
                                  down=self.outages, on_event=self._deliver_and_resolve,
                                  until=self.t_end + p.drain, published_count=lambda: len(server.published),
                                  connections=self.poll_pool,
                                  on_idle_ticks=self._count_short_polls if self.counted else None)
        self.env.process(self._producer(lambda i: server.publish(i, p.event_bytes)))
        self.poll_server = server

    def _long_polling(self) -> None:
        p, ctx = self.p, self.ctx
        spec = LongPollingSpec(hold_timeout=p.hold_timeout, request_header_bytes=p.request_header_bytes,
                               response_header_bytes=p.response_header_bytes)
        self.lp_spec = spec
        self.lp_server = LongPollingServer(ctx, PROVIDER, self.net, spec)
        self.lp_clients: list[ParkableLongPollingClient] = []
        self._lp_new_client()
        self.env.process(self._producer(lambda i: self.lp_server.publish(CONSUMER, i, p.event_bytes)))
        if self.counted:
            self.env.process(self._lp_idle())
        for s, e in self.outages:
            self.env.timeout(s).callbacks.append(lambda _e: self.lp.stop())
            self.env.timeout(e).callbacks.append(lambda _e: self._lp_new_client())

    def _lp_new_client(self) -> None:
        self.lp = ParkableLongPollingClient(self.ctx, CONSUMER, self.net, PROVIDER, self.lp_spec,
                                            on_message=lambda _c, seq: self._deliver_and_resolve(seq),
                                            connections=self._pool())
        self.lp_clients.append(self.lp)
        self.lp.open()

    def _down_at(self, t: float) -> tuple[float, float] | None:
        i = bisect.bisect_right(self._outage_starts, t) - 1
        if i >= 0 and t < self.outages[i][1]:
            return self.outages[i]
        return None

    def _count_short_polls(self, poller: ShortPoller, a: float, b: float) -> int:
        """Shortcut 3 of sim.components.idle_time: the empty polls of ``[a, b)``, counted."""
        n = 0
        for first, ticks in poller.up_runs(a, b):
            self.idle.short_poll_ticks(self.poll_pool, first, ticks, poller.interval)
            n += ticks
        return n

    def _lp_idle(self):
        """Park the long poller over long idle stretches; count the polls it would have made
        (shortcut 4 of sim.components.idle_time)."""
        env, p = self.env, self.p
        cycle = self.idle.long_poll_cycle(p.hold_timeout, p.http_keep_alive)
        while not self.all_resolved.triggered and env.now < self.t_end + p.drain:
            down = self._down_at(env.now)
            if down is not None:
                yield env.timeout(down[1] - env.now + 1e-9)
                continue
            nxt = self.next_event_at()
            i = bisect.bisect_right(self._outage_starts, env.now)
            if i < len(self.outages):
                nxt = min(nxt, self.outages[i][0])
            if math.isinf(nxt):
                return
            if nxt - env.now > 3 * cycle and self.lp.state == "polling" and not self.lp_server.queued:
                resume, counted = self.idle.long_poll_resume(self.lp.last_poll_at, nxt, cycle)
                if counted < 1 or resume <= env.now:
                    yield env.timeout(cycle)
                    continue
                self.lp.park()
                yield env.timeout(resume - env.now)
                self.idle.long_poll_cycles(self.lp.connections, counted, cycle)
                self.lp.resume()
            else:
                yield env.timeout(cycle)

    # --- cost -----------------------------------------------------------------------------
    def _snapshot(self) -> dict:
        """Requests, bytes and connection-seconds at the provider since START, now: what went
        through the network (payloads and TCP/IP headers) plus what idle time counted."""
        now = self.env.now
        wire = self.net.wire_bytes + self.idle.wire_bytes
        if self.transport == "websocket":
            ch = self.channel
            ch._account_connected()
            if ch.client is not None and ch.client.state == CONNECTED:
                ch._connected_since = now
            accepted = self.ctx.metrics["server_handshakes_total"].labels(server=PROVIDER, result="accepted").value
            # each accepted wss:// handshake was preceded by a TCP + TLS set-up (bytes only, see the docstring)
            return {"time": now, "requests": ch.handshakes, "bytes": wire + accepted * self.wire.setup_wire_bytes(),
                    "conn_s": ch.connected_seconds}
        if self.transport == "short-polling":
            poller = self.poller
            return {"time": now, "requests": poller.requests + poller.idle_requests, "bytes": wire,
                    "conn_s": self.poll_pool.connection_seconds_until_now([poller.busy]) + self.idle.connection_seconds}
        if self.transport == "long-polling":
            held = sum(c.connections.connection_seconds_until_now(c.busy_connections()) for c in self.lp_clients)
            return {"time": now, "requests": self.lp_server.requests() + self.idle.requests, "bytes": wire,
                    "conn_s": held + self.idle.connection_seconds}
        s = self.sender  # webhook: every attempt counts, retries long after the window included
        s.finish()
        return {"time": now, "requests": sum(e.attempts for e in self.webhook_events), "bytes": wire,
                "conn_s": s.connection_seconds}  # every attempt is a request, even one whose set-up failed

    # --- run ----------------------------------------------------------------------------
    def execute(self) -> dict:
        env, p = self.env, self.p
        self._outage_starts = [s for s, _ in self.outages]
        getattr(self, "_" + self.transport.replace("-", "_"))()
        self.cost: dict = {}

        def at_end(_e):
            if not self.cost:
                self.cost = self._snapshot()

        env.timeout(self.t_end).callbacks.append(at_end)
        cap = env.timeout(self.t_end + p.drain)
        env.run(until=env.any_of([self.all_resolved, cap]))
        if self.transport == "webhook":
            self.cost = self._snapshot()
        return self._summary(self.cost)

    def _summary(self, cost: dict) -> dict:
        p, led = self.p, self.ledger
        window = self.t_end
        delivered = led.delivered
        lat = led.first - self.created
        ok = lat[~np.isnan(lat)]
        down_time = sum(min(e, window) - s for s, e in self.outages if s < window)
        ends = np.array([e for _, e in self.outages])
        after = []
        for seq in range(len(self.created)):
            d = led.first[seq]
            if not math.isnan(d) and len(ends) and np.any((ends > self.created[seq]) & (ends <= d)):
                after.append(d - self.created[seq])
        mem = p.memory_per_connection_bytes
        extra = {}
        if self.transport == "webhook":
            snd = self.sender
            extra = {"given_up": snd.gave_up, "attempts": sum(e.attempts for e in self.webhook_events),
                     "rejected": sum(self.receiver.rejected.values()), "connections_opened": snd.connections}
        elif self.transport == "websocket":
            ch = self.channel
            extra = {"not_sent": int(ch._not_sent.value), "closed_1006": ch.closed_abnormally}
        requests, bytes_total, conn_s = cost["requests"], cost["bytes"], cost["conn_s"]
        span = max(cost["time"], self.t_end) - START
        per = max(delivered, 1)
        row = {
            "transport": self.transport, "event_rate_per_s": self.rate, "events": p.events, "delivered": delivered,
            "lost": p.events - delivered,
            # webhook: valid copies the receiver had to deduplicate; others: copies reaching the application
            "duplicates": self.receiver.duplicates if self.transport == "webhook" else led.copies,
            "latency_p50_s": float(np.quantile(ok, 0.5)) if len(ok) else math.nan,
            "latency_p99_s": float(np.quantile(ok, 0.99)) if len(ok) else math.nan,
            "latency_max_s": float(ok.max()) if len(ok) else math.nan,
            "after_outage": len(after),
            "after_outage_delay_mean_s": float(np.mean(after)) if after else math.nan,
            "after_outage_delay_max_s": float(np.max(after)) if after else math.nan,
            "requests_per_event": requests / per, "bytes_per_event": bytes_total / per,
            "connection_seconds": conn_s, "connection_seconds_per_event": conn_s / per,
            "memory_mean_bytes": conn_s / span * mem if span > 0 else math.nan,
            "horizon_s": window, "outages": sum(1 for s, _ in self.outages if s < window), "downtime_s": down_time,
            "provider": p.provider if self.transport == "webhook" else "",
        }
        row.update(extra)
        return row


def simulate(p: PushVsWebhookParams, transport: str, rate: float, seed: int, replication: int = 0) -> dict:
    """One transport at one rate in one replication: its summary row."""
    if transport not in TRANSPORTS:
        raise ParameterError("transport", f"must be one of {', '.join(TRANSPORTS)}, got {transport!r}")
    return _Run(p, transport, rate, seed, replication).execute()


@scenario("push-vs-webhook", PushVsWebhookParams,
          "Q3: WebSocket vs webhook vs long/short polling: latency, cost per event, outages, duplicates")
def run_push_vs_webhook(p: PushVsWebhookParams, seed: int) -> Result:
    reps = replicate(p.replications, lambda r: [simulate(p, t, rate, seed, r)
                                                for rate in p.event_rates for t in p.transports])
    summary = reps.summary(["transport", "event_rate_per_s"], keep=["events"])
    return Result("push-vs-webhook", seed, p, summary, {"replications": reps.rows})
