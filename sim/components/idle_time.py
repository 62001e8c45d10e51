"""Idle time counted instead of simulated: every closed form of ``push-vs-webhook``, in one place.

At one event a day over 200 days a WebSocket pings 576,000 times, a 60 s short poller polls
288,000 times and a long poller's hold times out about 690,000 times, all carrying nothing. With
``idle="counted"`` (the default) the scenario counts that traffic here, with the same cost model
as the messages it simulates (:class:`~sim.components.http.WireCost`: headers, set-ups, TCP/IP
bytes per segment, connections kept alive); with ``idle="simulated"`` every ping, poll and
timeout goes through the network instead, and ``tests/test_q3_push_vs_webhook.py`` checks that the
two agree (exactly where nothing is random, within a confidence interval over seeds otherwise).

The shortcuts, and what the simulated mode does instead:

1. **heartbeats** (:meth:`IdleTime.heartbeats`): a ping and its pong every ``heartbeat_interval``
   of connected time, counted from the connection's start. Simulated: the client pings.
2. **dead WebSocket** (:meth:`IdleTime.dead_websocket_noticed_at`): the server notices a consumer
   that died at the arrival of its last ping (or its last frame) plus ``idle_timeout``.
   Simulated: an idle-timeout gate (:class:`~sim.components.security.gateway.Gateway`) sees the
   pings stop.
3. **empty short polls** (:meth:`IdleTime.short_poll_ticks`): a poller whose cursor is up to date
   skips the ticks that end more than ``skip_margin`` before the next event (the scenario, which
   generated the events, tells it when that is) and counts them: one empty GET and its empty
   answer each, on one connection kept alive across the ticks if the keep-alive outlasts the
   pause between them, else on a new connection each. Simulated: every tick polls.
4. **idle long polls** (:meth:`IdleTime.long_poll_resume`, :meth:`IdleTime.long_poll_cycles`): a
   long poller is parked over long idle stretches and resumed when it would have started the poll
   that the next event (or outage) finds held at the server, one cycle (hold + round trips) after
   another from its last real poll; the parked cycles are counted, each an empty GET and its empty
   hold-timeout answer. Simulated: the client keeps polling.

Durations use the mean round trip (``2 * latency.mean``): that is where the counted and the
simulated runs may differ, by a fraction of a round trip per counted request.
"""

from __future__ import annotations

import math

from sim.components import frames
from sim.components.http import HttpConnections, WireCost
from sim.core.context import Context

MODES = ("counted", "simulated")


class IdleTime:
    """The closed forms of one run, and what they counted (in the run's metrics registry)."""

    def __init__(self, ctx: Context, cost: WireCost, one_way_latency: float) -> None:
        self.cost = cost
        self.one_way = one_way_latency
        self.round_trip = 2 * one_way_latency
        m = ctx.metrics
        self._bytes = m.counter("idle_counted_wire_bytes_total",
                                "Bytes of idle traffic counted instead of simulated, by shortcut", ("shortcut",))
        self._requests = m.counter("idle_counted_requests_total",
                                   "HTTP requests counted instead of simulated, by shortcut", ("shortcut",))
        self._conn_s = m.counter("idle_counted_connection_seconds_total",
                                 "Connection-seconds of connections counted instead of simulated", ("shortcut",))

    # --- what was counted ---------------------------------------------------------------
    @staticmethod
    def _total(family) -> float:
        return float(sum(child.value for child in family.children().values()))

    @property
    def wire_bytes(self) -> float:
        return self._total(self._bytes)

    @property
    def requests(self) -> float:
        return self._total(self._requests)

    @property
    def connection_seconds(self) -> float:
        return self._total(self._conn_s)

    # --- 1. heartbeats ------------------------------------------------------------------
    def heartbeats(self, origin: float, since: float, until: float, interval: float) -> None:
        """Pings sent in ``(since, until]`` by a connection that started at ``origin`` (pings at
        ``origin + k * interval``, k >= 1), each with its pong."""
        n = math.floor((until - origin) / interval) - math.floor((since - origin) / interval)
        if n > 0:
            ping = pong = self.cost.on_wire(frames.FRAME_HEADER_BYTES)
            self._bytes.labels(shortcut="heartbeats").inc(n * (ping + pong))

    # --- 2. dead WebSocket --------------------------------------------------------------
    def dead_websocket_noticed_at(self, now: float, origin: float, interval: float, idle_timeout: float,
                                  last_frame_at: float) -> float:
        """When a server with an idle timeout notices that a client connected since ``origin``
        (whose last other frame reached it at ``last_frame_at``) died at ``now``: at the arrival of
        its last ping plus ``idle_timeout``, never before ``now``."""
        pings = math.floor((now - self.one_way - origin) / interval)
        last = max(last_frame_at, origin + pings * interval + self.one_way if pings >= 1 else -math.inf)
        return max(now, last + idle_timeout)

    # --- 3. empty short polls -----------------------------------------------------------
    def short_poll_ticks(self, pool: HttpConnections, first: float, n: int, interval: float) -> None:
        """Count ``n`` empty polls at ``first + k * interval`` on ``pool``'s connections, as the
        simulation would make them (kept alive across ticks if the keep-alive outlasts the pause)."""
        if n <= 0:
            return
        cost, rtt = self.cost, self.round_trip
        setup_s = cost.setup_round_trips * rtt
        ka = pool.keep_alive
        conn = pool.take_idle(at=first)
        setups = 0
        if ka is not None and ka >= interval - rtt:  # one connection carries every tick
            if conn is None:
                conn, setups = pool.open_counted(first), 1
            pool.park_idle(conn, first + (n - 1) * interval + setups * setup_s + rtt)
        else:  # a connection per tick (the first may still find one kept alive)
            for k in range(n):
                t = first + k * interval
                new = conn is None
                if new:
                    conn = pool.open_counted(t)
                    setups += 1
                answered = t + (setup_s if new else 0.0) + rtt
                if k < n - 1 or ka is None:
                    pool.close_counted(conn, answered + (ka or 0.0))
                    conn = None
                else:
                    pool.park_idle(conn, answered)
        self._requests.labels(shortcut="short_polls").inc(n)
        self._bytes.labels(shortcut="short_polls").inc(n * cost.exchange_wire_bytes() + setups * cost.setup_wire_bytes())

    # --- 4. idle long polls -------------------------------------------------------------
    def long_poll_cycle(self, hold_timeout: float, keep_alive: float | None) -> float:
        """Seconds of one idle long-poll cycle: the hold, the answer and the next poll (and a new
        connection's set-up each time without keep-alive)."""
        setups = 0 if keep_alive is not None else self.cost.setup_round_trips
        return hold_timeout + (1 + setups) * self.round_trip

    def long_poll_resume(self, last_poll_at: float, until: float, cycle: float) -> tuple[float, int]:
        """``(resume, counted)``: a poller whose latest poll started at ``last_poll_at`` starts one
        every ``cycle`` while nothing comes; the poll that reaches the server last before ``until``
        (the next event or outage) starts at ``resume``, and the ``counted`` ones before it carry nothing."""
        k = math.floor((until - self.one_way - last_poll_at) / cycle)
        return last_poll_at + k * cycle, max(0, k - 1)

    def long_poll_cycles(self, pool: HttpConnections | None, n: float, cycle: float) -> None:
        """Count ``n`` empty long-poll cycles of ``cycle`` seconds, just ended (the poller resumes now)."""
        if n <= 0:
            return
        cost = self.cost
        per = cost.exchange_wire_bytes()
        if pool is not None and pool.keep_alive is None:  # a new connection per poll, held the whole cycle
            per += cost.setup_wire_bytes()
            self._conn_s.labels(shortcut="long_polls").inc(n * cycle)
        elif pool is not None:
            pool.keep_idle_alive()  # the counted polls kept the connection busy until now
        self._requests.labels(shortcut="long_polls").inc(n)
        self._bytes.labels(shortcut="long_polls").inc(n * per)

