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
from sim.core.network import Network


class ReconnectTracker:
    """What many resilient clients did, binned by second of simulated time."""

    __slots__ = ("attempts", "refused", "timeouts", "reconnect_times", "gave_up", "connected", "last_reconnect_at",
                 "bin_s", "no_endpoint")

    def __init__(self, bin_s: float = 1.0) -> None:
        self.bin_s = bin_s
        """Width of the time bins of ``attempts``, in seconds."""
        self.attempts: dict[int, int] = {}
        """Connection attempts started, per time bin (bin index = floor(t / bin_s))."""
        self.refused: dict[int, int] = {}
        """Attempts refused by the server (rate limit, full, process down), per bin of the attempt's start."""
        self.timeouts = 0
        """Attempts that got no answer within the connect timeout."""
        self.reconnect_times: list[float] = []
        """For each reconnection: seconds from noticing the loss to being connected again."""
        self.gave_up = 0
        """Clients whose policy gave up."""
        self.connected = 0
        """Clients connected right now."""
        self.no_endpoint = 0
        """Attempts that found no endpoint (the router answered None); also counted as refused."""
        self.last_reconnect_at = math.nan

    def _count(self, table: dict[int, int], now: float) -> None:
        b = int(now // self.bin_s)
        table[b] = table.get(b, 0) + 1


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
        self.tracker = tracker if tracker is not None else ReconnectTracker()
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
        if endpoint is None:
            self._attempt()
        elif not self.stopped and self.state == DISCONNECTED:
            self.place(endpoint)
            self._try()

    def place(self, endpoint: Any) -> None:
        """Point the client at ``endpoint`` (from its router) without connecting, e.g. before
        :meth:`adopt_connection` in a scenario that starts in steady state."""
        self.endpoint = endpoint
        self.server = endpoint.name

    def adopt_connection(self) -> None:
        super().adopt_connection()
        self.tracker.connected += 1
        self._router_says("opened")
        self.policy.connected(self.backoff, self.env.now)

    def stop(self, code: int = 1000) -> None:
        """Close the connection and stop reconnecting (a pending retry is dropped)."""
        self.stopped = True
        if self.state != DISCONNECTED:
            was_connected = self.state == "connected"
            self.close(code)
            if was_connected:
                self.tracker.connected -= 1
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

    def _attempt(self, _event: simpy.Event | None = None) -> None:
        if self.stopped or self.state != DISCONNECTED:
            return
        if self.router is not None:
            endpoint = self.router.route(self.key)
            if endpoint is None:  # nowhere to go: fails at once (a proxy's 503), back off and ask again
                now = self.env.now
                tracker = self.tracker
                self.last_attempt_at = now
                tracker._count(tracker.attempts, now)
                tracker.no_endpoint += 1
                tracker._count(tracker.refused, now)
                self._schedule_retry()
                return
            self.place(endpoint)
        self._try()

    def _try(self) -> None:
        now = self.env.now
        self.last_attempt_at = now
        self.tracker._count(self.tracker.attempts, now)
        self._handshake()

    def _outcome(self, outcome: str) -> None:
        tracker = self.tracker
        now = self.env.now
        if outcome == "accepted":
            tracker.connected += 1
            self._router_says("opened")
            if self.lost_at == self.lost_at:  # not nan: this ends a reconnection episode
                tracker.reconnect_times.append(now - self.lost_at)
                tracker.last_reconnect_at = now
            self.policy.connected(self.backoff, now)
            return
        if outcome == "refused":
            # binned by the attempt's start, like `attempts`, so a bin's attempts - refused is what got in
            tracker._count(tracker.refused, self.last_attempt_at)
        elif outcome == "timeout":
            tracker.timeouts += 1
        if outcome != "closed" and not self.stopped:
            self.backoff.failure = outcome  # some policies charge a retry by its cause (AWS: timeouts)
            self._schedule_retry()

    def _lost(self, how: str, code: int) -> None:
        super()._lost(how, code)
        now = self.env.now
        self.tracker.connected -= 1
        self._router_says("closed")
        self.lost_at = now
        self.policy.disconnected(self.backoff, now - self.connected_at)
        self.backoff.failure = "lost"
        self._schedule_retry()

    def _schedule_retry(self) -> None:
        now = self.env.now
        delay = self.policy.next_delay(self.backoff, now, now - self.last_attempt_at, self.uniform)
        if delay is None:
            self.tracker.gave_up += 1
            return
        if delay <= 0:
            self._attempt()
        else:
            self.env.timeout(delay).callbacks.append(self._attempt)
