"""A client that reconnects by itself, following a backoff policy (course question 7A).

It is the :class:`~sim.components.client.Client` primitive plus a loop driven by callbacks
(no simpy process per client, so 100,000 of them stay cheap): when the connection is lost it
asks its :class:`~sim.components.backoff.Backoff` policy how long to wait, tries again, and
repeats until it is accepted or the policy gives up. A shared :class:`ReconnectTracker` counts
what a monitoring system would see: attempts per second, refusals, time to reconnect.

This is the project's one connection stack: every scenario whose clients reconnect uses it.
Where each attempt goes is the **router**'s business (see :class:`Router`): by default one
fixed server; pass ``router=`` a :class:`~sim.components.load_balancer.LoadBalancer` (or a
Kubernetes Service, or anything with the same ``route``) and the client asks it before every
attempt, so each new connection may land on another node.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Protocol

import simpy

from sim.components.backoff import Backoff, BackoffState
from sim.components.client import DISCONNECTED, Client
from sim.core.context import Context
from sim.core.metrics import Count, Metrics
from sim.core.network import Network


#: Bucket bounds of ``reconnect_duration_seconds`` (a reconnection takes from a round trip to minutes).
RECONNECT_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class ReconnectTracker:
    """What many resilient clients did, as a monitoring system sees it.

    The counts are series of a metrics registry (:class:`~sim.core.metrics.Metrics`), labelled
    ``clients=<name>``: ``reconnect_attempts_total``, ``reconnect_refused_total``,
    ``reconnect_timeouts_total``, ``reconnect_no_endpoint_total``, ``reconnect_gave_up_total``,
    ``reconnect_connections_lost_total``, the gauge ``reconnect_clients_connected`` and the
    histogram ``reconnect_duration_seconds`` (which keeps every duration). Pass the run's registry (``ctx.metrics``) so they are exposed
    with the rest of the run; without one, the first client's environment gets a registry of the
    tracker's own. The tracker adds what a counter has no room for: attempts and refusals binned
    by second of simulated time, and the time of the last reconnection. Its attributes read the
    registry back, so a scenario's summary and a scrape see the same numbers.

    Two trackers in one registry need two names; :meth:`shared` gives the registry's one tracker
    of a name.
    """

    __slots__ = ("name", "bin_s", "attempts", "refused", "last_reconnect_at", "metrics", "_attempts", "_refused",
                 "_attempts_cell", "_refused_cell", "_timeouts", "_no_endpoint", "_gave_up", "_lost", "_lost_by",
                 "_connected", "_durations")

    def __init__(self, metrics: Metrics | None = None, bin_s: float = 1.0, *, clients: str = "clients") -> None:
        self.name = clients
        """The ``clients`` label of this tracker's series."""
        self.bin_s = bin_s
        """Width of the time bins of ``attempts``, in seconds."""
        self.attempts: dict[int, int] = {}
        """Connection attempts started, per time bin (bin index = floor(t / bin_s))."""
        self.refused: dict[int, int] = {}
        """Attempts refused by the server (rate limit, full, process down), per bin of the attempt's start."""
        self.last_reconnect_at = math.nan
        self.metrics: Metrics | None = None
        """The registry holding the counts (None until bound)."""
        if metrics is not None:
            self.bind(metrics)

    @classmethod
    def shared(cls, metrics: Metrics, clients: str = "clients") -> "ReconnectTracker":
        """The tracker called ``clients`` in ``metrics``, created on first use."""
        tracker = metrics.probes.get(f"reconnect_tracker:{clients}")
        return tracker if tracker is not None else cls(metrics, clients=clients)

    def bind(self, metrics: Metrics) -> None:
        """Count in ``metrics`` from now on (once; a second tracker of the same name is refused)."""
        if self.metrics is metrics:
            return
        key = f"reconnect_tracker:{self.name}"
        if self.metrics is not None or key in metrics.probes:
            raise ValueError(f"a ReconnectTracker counts in one registry, and a registry has one tracker called "
                             f"{self.name!r}: give the other one another clients= name")
        metrics.probes[key] = self
        self.metrics = metrics
        labels, by = {"clients": self.name}, ("clients",)

        def counter(name: str, help_text: str):
            return metrics.counter(name, help_text, by).labels(**labels)

        self._attempts = counter("reconnect_attempts_total", "Connection attempts started")
        self._refused = counter("reconnect_refused_total",
                                "Attempts refused (rate limit, full, process down, no endpoint)")
        self._attempts_cell, self._refused_cell = self._attempts.cell, self._refused.cell
        self._timeouts = counter("reconnect_timeouts_total", "Attempts without an answer within the connect timeout")
        self._no_endpoint = counter("reconnect_no_endpoint_total", "Attempts for which the router had no endpoint")
        self._gave_up = counter("reconnect_gave_up_total", "Clients whose backoff policy gave up")
        self._lost = metrics.counter("reconnect_connections_lost_total", "Established connections lost, by how the "
                                     "client noticed (clean close frame, reset, timeout) and close code",
                                     ("clients", "how", "code"))
        self._lost_by: dict[tuple[str, int], Any] = {}
        self._connected = metrics.gauge("reconnect_clients_connected", "Clients connected", by).labels(**labels)
        self._durations = metrics.histogram("reconnect_duration_seconds", "From noticing a loss to connected again",
                                            by, buckets=RECONNECT_BUCKETS).labels(**labels)

    def attach(self, env: simpy.Environment) -> None:
        """Called by each client that reports here: an unbound tracker gets a registry of its own."""
        if self.metrics is None:
            self.bind(Metrics(env))

    # --- what clients report (the hot path of a storm: keep it short) ------------------------
    def attempt(self, now: float) -> None:
        """An attempt starts at ``now``."""
        table, b = self.attempts, int(now // self.bin_s)
        table[b] = table.get(b, 0) + 1
        self._attempts_cell._value += 1.0

    def refusal(self, started_at: float) -> None:
        """The attempt started at ``started_at`` was refused (binned by its start, like attempts, so
        a bin's attempts - refused is what got in)."""
        table, b = self.refused, int(started_at // self.bin_s)
        table[b] = table.get(b, 0) + 1
        self._refused_cell._value += 1.0

    def no_endpoint_at(self, now: float) -> None:
        """An attempt at ``now`` found no endpoint: it starts and is refused at once."""
        self.attempt(now)
        self._no_endpoint.inc()
        self.refusal(now)

    def timed_out(self) -> None:
        self._timeouts.inc()

    def opened(self, now: float, lost_at: float) -> None:
        """A connection opened at ``now``; ``lost_at`` is when the previous one was lost (nan for a
        first connection, which is no reconnection)."""
        self._connected.inc()
        if lost_at == lost_at:
            self._durations.observe(now - lost_at)
            self.last_reconnect_at = now

    def adopted(self, clients: int = 1) -> None:
        """``clients`` more clients are connected from the start (first connections, no
        reconnection; e.g. a storm's clients of the servers that stay up, never built)."""
        self._connected.inc(clients)

    def closed(self) -> None:
        """A connection was closed by its client."""
        self._connected.dec()

    def lost(self, how: str, code: int) -> None:
        """An established connection was lost (the client will try to reconnect): ``how`` the
        client noticed (``clean``, ``reset``, ``timeout``) and the close code."""
        self._connected.dec()
        series = self._lost_by.get((how, code))
        if series is None:
            series = self._lost_by[how, code] = self._lost.labels(clients=self.name, how=how, code=code)
        series.inc()

    def losses_by(self, how: str | None = None, code: int | None = None) -> int:
        """Established connections lost (not those the clients closed), of one ``how`` and/or ``code``."""
        return sum(int(series.value) for (h, c), series in self._lost_by.items()
                   if (how is None or h == how) and (code is None or c == code)) if self.metrics is not None else 0

    @property
    def losses(self) -> int:
        """Established connections lost (not those the clients closed themselves)."""
        return self.losses_by()

    def gave_up_one(self) -> None:
        self._gave_up.inc()

    # --- what they did, read back from the registry ---------------------------------------
    timeouts = Count("_timeouts", "Attempts that got no answer within the connect timeout.")
    gave_up = Count("_gave_up", "Clients whose policy gave up.")
    no_endpoint = Count("_no_endpoint", "Attempts that found no endpoint (the router answered None); also refused.")
    connected = Count("_connected", "Clients connected right now.")

    @property
    def reconnect_times(self) -> list[float]:
        """For each reconnection: seconds from noticing the loss to being connected again."""
        return self._durations.observations if self.metrics is not None else []


class Router(Protocol):
    """Where a :class:`ResilientClient`'s next connection goes (a LoadBalancer has all three).

    ``route(key)`` returns an endpoint, whose ``name`` is the server's network name, or None
    when there is none (the attempt fails at once, like a proxy's 503, and the client backs
    off). ``opened(endpoint)`` and ``closed(endpoint)`` are told when a connection through that
    endpoint opens and ends (for least-connections counts); a router may leave them out.
    """

    def route(self, key: Any) -> Any: ...


class FixedServer:
    """The simplest router: every attempt goes to the server called ``name``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def route(self, key: Any) -> "FixedServer":
        return self


def _no_jitter() -> float:
    raise RuntimeError("this client's backoff policy draws jitter: pass uniform= a U[0, 1) stream")


class ResilientClient(Client):
    """A client that reconnects automatically with ``policy`` (see the module docstring).

    ``server`` is the fixed server to connect to, or ``router`` a :class:`Router` asked before
    every attempt with ``key`` (default: the client's name; a LoadBalancer wants a
    :class:`~sim.components.load_balancer.ClientKey`). ``tracker`` (optional) counts attempts,
    refusals and reconnection times; ``uniform`` draws U[0, 1) for the policy's jitter.
    """

    __slots__ = ("policy", "backoff", "tracker", "uniform", "last_attempt_at", "lost_at", "stopped", "router", "key",
                 "endpoint")

    def __init__(self, ctx: Context, name: str, network: Network, server: str | None, policy: Backoff,
                 tracker: ReconnectTracker | None = None, uniform: Callable[[], float] = _no_jitter, *,
                 router: Router | None = None, key: Any = None, **client_options) -> None:
        if (server is None) == (router is None):
            raise ValueError(f"{name}: give a fixed server or a router, not both or neither")
        client_options.setdefault("connect_timeout", policy.connect_timeout)
        super().__init__(ctx, name, network, server or "", **client_options)
        self.policy = policy
        self.backoff: BackoffState = policy.new_state()
        self.tracker = tracker if tracker is not None else ReconnectTracker.shared(ctx.metrics)
        self.tracker.attach(ctx.env)
        self.uniform = uniform
        """Draws U[0, 1) for the policy's jitter (a shared, seeded stream)."""
        self.last_attempt_at = 0.0
        self.lost_at = math.nan
        self.stopped = False
        """Set by :meth:`stop`: no more reconnection attempts."""
        self.router = router
        """Asked for an endpoint before every attempt (None: always ``server``)."""
        self.key = key if key is not None else name
        """What the router routes on."""
        self.endpoint: Any = None
        """The router's endpoint of the current (or last) connection."""

    # --- the loop -----------------------------------------------------------------------
    def start(self, endpoint: Any = None) -> None:
        """Connect now (to ``endpoint`` if given, else where the router says), and keep
        reconnecting after every loss."""
        self.lost_at = math.nan  # a first connection is not a reconnection
        self._attempt(endpoint)

    def place(self, endpoint: Any) -> None:
        """Point the client at ``endpoint`` (from its router) without connecting, e.g. before
        :meth:`adopt_connection` in a scenario that starts in steady state."""
        self.endpoint = endpoint
        self.server = endpoint.name

    def adopt_connection(self) -> None:
        super().adopt_connection()
        self.tracker.opened(self.env.now, math.nan)
        self._router_says("opened")
        self.policy.connected(self.backoff, self.env.now)

    def stop(self, code: int = 1000) -> None:
        """Close the connection and stop reconnecting (a pending retry is dropped)."""
        self.stopped = True
        if self.state != DISCONNECTED:
            was_connected = self.state == "connected"
            self.close(code)
            if was_connected:
                self.tracker.closed()
                self._router_says("closed")

    def resume(self) -> None:
        """Reconnect after :meth:`stop`, waiting the policy's delay first as after a loss."""
        if not self.stopped:
            return
        self.stopped = False
        self.lost_at = self.env.now
        self._schedule_retry()

    def abandon(self) -> None:
        """The client's process died: no close frame, no more attempts (the server finds out itself)."""
        self.stopped = True

    def _router_says(self, what: str) -> None:
        if self.router is not None and self.endpoint is not None:
            hook = getattr(self.router, what, None)
            if hook is not None:
                hook(self.endpoint)

    def _attempt(self, endpoint: Any = None) -> None:
        """Try to connect: to ``endpoint`` if given, else where the router says (a retry timer
        calls it with None). The first step of a storm's every attempt, so written out in one place."""
        if self.stopped or self.state != DISCONNECTED:
            return
        now = self.env.now
        if endpoint is not None:
            self.place(endpoint)
        elif self.router is not None:
            endpoint = self.router.route(self.key)
            if endpoint is None:  # nowhere to go: fails at once (a proxy's 503), back off and ask again
                self.last_attempt_at = now
                self.tracker.no_endpoint_at(now)
                self._schedule_retry()
                return
            self.place(endpoint)
        self.last_attempt_at = now
        self.tracker.attempt(now)
        self._handshake()

    def _outcome(self, outcome: str) -> None:
        now = self.env.now
        if outcome == "accepted":
            self.tracker.opened(now, self.lost_at)  # a reconnection unless lost_at is nan
            self._router_says("opened")
            self.policy.connected(self.backoff, now)
            return
        if outcome == "refused":
            self.tracker.refusal(self.last_attempt_at)
        elif outcome == "timeout":
            self.tracker.timed_out()
        if outcome != "closed" and not self.stopped:
            self.backoff.failure = outcome  # some policies charge a retry by its cause (AWS: timeouts)
            self._schedule_retry()

    def _lost(self, how: str, code: int) -> None:
        super()._lost(how, code)
        now = self.env.now
        self.tracker.lost(how, code)
        self._router_says("closed")
        self.lost_at = now
        self.policy.disconnected(self.backoff, now - self.connected_at)
        self.backoff.failure = "lost"
        self._schedule_retry()

    def _schedule_retry(self) -> None:
        now = self.env.now
        delay = self.policy.next_delay(self.backoff, now, now - self.last_attempt_at, self.uniform)
        if delay is None:
            self.tracker.gave_up_one()
            return
        if delay <= 0:
            self._attempt()
        else:
            self.env.call_later(delay, self._attempt)
