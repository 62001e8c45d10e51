"""Polling, the third way to get events: the consumer asks the provider instead of being told.

* **Short polling** (:class:`ShortPollingServer`, :class:`ShortPoller`): every ``interval`` seconds
  the consumer GETs ``/events?after=<cursor>`` and the provider answers at once with every event
  after the cursor (often none). The cursor only moves when an answer arrives, so a lost answer
  is fetched again: nothing is lost or duplicated, events only wait for the next tick.
* **Long polling** is :mod:`sim.components.long_polling` (not copied here). :class:`ParkableLongPollingClient`
  only adds ``park``/``resume`` so that a scenario can skip the idle cycles between rare events.

**Cheap idle time.** At one event per day a 30 s poller makes 2880 empty requests per event.
Those ticks cannot see anything, so a scenario may count them instead of simulating them: given
``on_idle_ticks``, a short poller whose cursor is up to date skips every tick that ends more than
``skip_margin`` seconds before the next event is created (the scenario, which generated the events,
tells it when that is) and hands them to ``on_idle_ticks`` (push-vs-webhook's closed form,
:mod:`sim.components.idle_time`), adding them to ``idle_requests``. Ticks while the consumer is
down (an outage) send nothing and are not counted. With ``connections`` (an
:class:`~sim.components.http.HttpConnections`) every GET goes over an HTTP connection: set-up when
none is kept alive, keep-alive, connection-seconds.
"""

from __future__ import annotations

import bisect
import math
from typing import Any, Callable, Sequence

import simpy

from sim.components.http import Connection, HttpConnections, answer_setup
from sim.components.long_polling import POLLING, LongPollingClient
from sim.core.context import Context
from sim.core.errors import ParameterError
from sim.core.network import Message, Network

GET, EVENTS = "get", "events"


class ShortPollingServer:
    """The provider's events API, network node ``name``: answers ``GET(cursor)`` with the events
    published after ``cursor`` (``published`` holds ``(payload, size_bytes)`` in order)."""

    def __init__(self, ctx: Context, name: str, network: Network, *, response_header_bytes: int = 300) -> None:
        self.env: simpy.Environment = ctx.env
        self.name = name
        self.network = network
        self.response_header_bytes = response_header_bytes
        self.published: list[tuple[Any, int]] = []
        self.requests = 0
        self.empty_answers = 0
        network.attach(name, self._on_request)

    def publish(self, payload: Any, size_bytes: int) -> None:
        self.published.append((payload, size_bytes))

    def _on_request(self, msg: Message) -> None:
        if answer_setup(self.network, self.name, msg):
            return
        _kind, (cursor, tag) = msg.payload
        self.requests += 1
        batch = self.published[cursor:]
        if not batch:
            self.empty_answers += 1
        body = sum(size for _, size in batch)
        self.network.send(self.name, msg.src, (EVENTS, (cursor, tuple(p for p, _ in batch), tag)),
                          self.response_header_bytes + body)


class ShortPoller:
    """The consumer, network node ``name``: polls ``server`` at ``phase + k * interval``.

    ``next_event_at()`` returns when the provider will create its next event (``inf`` if none);
    ``down`` lists the consumer's outages ``(start, end)``, sorted and disjoint. See the module
    docstring for the ticks that are counted instead of simulated.
    """

    def __init__(self, ctx: Context, name: str, network: Network, server: str, *, interval: float, phase: float = 0.0,
                 request_header_bytes: int = 700, next_event_at: Callable[[], float] = lambda: math.inf,
                 down: Sequence[tuple[float, float]] = (), on_event: Callable[[Any], None] | None = None,
                 skip_margin: float = 60.0, until: float = math.inf,
                 published_count: Callable[[], int] = lambda: 0, connections: HttpConnections | None = None,
                 on_idle_ticks: Callable[["ShortPoller", float, float], int] | None = None) -> None:
        if not (isinstance(interval, (int, float)) and 0 < interval < math.inf):
            raise ParameterError("poll_interval", f"must be a number of seconds > 0, got {interval!r}")
        if not 0 <= phase < interval:
            raise ParameterError("phase", f"must be in [0, interval), got {phase!r}")
        self.env: simpy.Environment = ctx.env
        self.name, self.network, self.server = name, network, server
        self.interval, self.phase = float(interval), float(phase)
        self.request_header_bytes = request_header_bytes
        self.next_event_at = next_event_at
        self.down = list(down)
        self._down_starts = [s for s, _ in self.down]
        self.on_event = on_event
        self.skip_margin = skip_margin
        self.until = until
        self.published_count = published_count
        """How many events the provider has published so far (to know whether the cursor is current)."""
        """No poll after this time (the end of the run)."""
        self.cursor = 0
        self.requests = 0
        """Polls simulated (sent over the network)."""
        self.idle_requests = 0
        """Polls counted instead of simulated: each an empty GET and its empty answer."""
        self.connections = connections
        """The poller's HTTP connections (set-up, keep-alive, connection-seconds); None: requests
        are sent as bare messages, with no connection model."""
        self.on_idle_ticks = on_idle_ticks
        """``on_idle_ticks(poller, a, b)`` counts the polls in ``[a, b)`` instead of simulating them
        and returns how many (the scenario's closed form); None: they are simulated."""
        self.busy: Connection | None = None
        """The connection carrying the poll whose answer is awaited."""
        self._outstanding = False
        network.attach(name, self._on_answer)
        self.process = self.env.process(self._run())

    def is_down(self, t: float) -> bool:
        i = bisect.bisect_right(self._down_starts, t) - 1
        return i >= 0 and t < self.down[i][1]

    def _ticks(self, a: float, b: float) -> int:
        """Ticks in [a, b)."""
        if b <= a:
            return 0
        return max(0, math.ceil((b - self.phase) / self.interval) - math.ceil((a - self.phase) / self.interval))

    def up_runs(self, a: float, b: float) -> list[tuple[float, int]]:
        """The ticks of ``[a, b)`` while the consumer is up, as runs ``(first tick, how many)``
        of consecutive ticks (an outage ends a run)."""
        runs, t = [], a
        i = max(0, bisect.bisect_right(self._down_starts, a) - 1)
        edges = []
        while i < len(self.down) and self.down[i][0] < b:
            edges.append(self.down[i])
            i += 1
        for s, e in edges + [(b, b)]:
            hi = min(s, b)
            n = self._ticks(t, hi)
            if n > 0:
                k = math.ceil((t - self.phase) / self.interval)
                runs.append((self.phase + k * self.interval, n))
            t = max(t, e)
            if t >= b:
                break
        return runs

    def _run(self):
        env, interval = self.env, self.interval
        k = math.ceil((env.now - self.phase) / interval)
        while True:
            t = self.phase + k * interval
            if t > self.until:
                return
            yield env.timeout(t - env.now)
            nxt = self.next_event_at()
            if self.on_idle_ticks is not None and not self._outstanding and self.cursor_is_current():
                if math.isinf(nxt) and math.isinf(self.until):
                    return  # nothing will ever come: stop rather than poll forever
                # ticks that end more than skip_margin before the next event cannot see it: count them
                k_to = math.ceil((min(nxt, self.until) - self.skip_margin - self.phase) / interval) - 1
                if k_to > k:
                    self.idle_requests += self.on_idle_ticks(self, t, self.phase + k_to * interval)
                    k = k_to
                    continue
            if self.is_down(t):
                self._outstanding = False  # the consumer is down: whatever it had asked is forgotten
            elif self.connections is None:
                self._send_get(None)
            else:
                self.env.process(self._get_over_http())
            k += 1

    def _send_get(self, conn: Connection | None) -> None:
        self.requests += 1
        self._outstanding = True
        tag = None if conn is None else conn.id
        self.network.send(self.name, self.server, (GET, (self.cursor, tag)), self.request_header_bytes)

    def _get_over_http(self):
        pool = self.connections
        if self.busy is not None:  # the previous poll's answer never came: that connection is given up
            pool.close(self.busy)
            self.busy = None
        conn = yield from pool.open_or_reuse(self.env.now + self.interval)
        if conn is None:
            return  # the set-up failed: this tick is lost, the next one tries again
        if self.is_down(self.env.now):
            pool.close(conn)
            return
        self.busy = conn
        self._send_get(conn)

    def cursor_is_current(self) -> bool:
        return self.cursor >= self.published_count()

    def _on_answer(self, msg: Message) -> None:
        if self.connections is not None:
            if self.connections.on_message(msg):
                return
            busy = self.busy
            if busy is not None and busy.id == msg.payload[1][2]:
                self.busy = None
                self.connections.release(busy)
        _kind, (cursor, payloads, _tag) = msg.payload
        self._outstanding = False
        if self.is_down(self.env.now) or cursor != self.cursor:
            return  # the consumer is down, or an older answer overtaken by a newer one
        self.cursor += len(payloads)
        if self.on_event is not None:
            for p in payloads:
                self.on_event(p)


class ParkableLongPollingClient(LongPollingClient):
    """A :class:`~sim.components.long_polling.LongPollingClient` that can stop re-polling for a
    while (``park``) and start again (``resume``), so that long idle stretches are counted, not
    simulated. A parked client still takes the answer of the poll it had out."""

    __slots__ = ()

    def park(self) -> None:
        if self.state == POLLING:
            self.state = "parked"

    def resume(self) -> None:
        if self.state == "parked":
            self.state = POLLING
            self._poll()
