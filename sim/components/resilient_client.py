"""A client that reconnects by itself, following a backoff policy (course question 7A).

It is the :class:`~sim.components.client.Client` primitive plus a loop driven by callbacks
(no simpy process per client, so 100,000 of them stay cheap): when the connection is lost it
asks its :class:`~sim.components.backoff.Backoff` policy how long to wait, tries again, and
repeats until it is accepted or the policy gives up. A shared :class:`ReconnectTracker` counts
what a monitoring system would see: attempts per second, refusals, time to reconnect.
"""

from __future__ import annotations

import math
from typing import Callable

import simpy

from sim.components.backoff import Backoff, BackoffState
from sim.components.client import DISCONNECTED, Client
from sim.core.context import Context
from sim.core.network import Network


class ReconnectTracker:
    """What many resilient clients did, binned by second of simulated time."""

    __slots__ = ("attempts", "refused", "timeouts", "reconnect_times", "gave_up", "connected", "last_reconnect_at",
                 "bin_s")

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
        self.last_reconnect_at = math.nan

    def _count(self, table: dict[int, int], now: float) -> None:
        b = int(now // self.bin_s)
        table[b] = table.get(b, 0) + 1


class ResilientClient(Client):
    """A client that reconnects automatically with ``policy`` (see the module docstring)."""

    __slots__ = ("policy", "backoff", "tracker", "uniform", "last_attempt_at", "lost_at", "stopped")

    def __init__(self, ctx: Context, name: str, network: Network, server: str, policy: Backoff,
                 tracker: ReconnectTracker, uniform: Callable[[], float], **client_options) -> None:
        client_options.setdefault("connect_timeout", policy.connect_timeout)
        super().__init__(ctx, name, network, server, **client_options)
        self.policy = policy
        self.backoff: BackoffState = policy.new_state()
        self.tracker = tracker
        self.uniform = uniform
        """Draws U[0, 1) for the policy's jitter (a shared, seeded stream)."""
        self.last_attempt_at = 0.0
        self.lost_at = math.nan
        self.stopped = False
        """Set by :meth:`stop`: no more reconnection attempts."""

    # --- the loop -----------------------------------------------------------------------
    def start(self) -> None:
        """Connect now, and keep reconnecting after every loss."""
        self.lost_at = math.nan  # a first connection is not a reconnection
        self._attempt()

    def adopt_connection(self) -> None:
        super().adopt_connection()
        self.tracker.connected += 1
        self.policy.connected(self.backoff, self.env.now)

    def stop(self, code: int = 1000) -> None:
        """Close the connection and stop reconnecting (a pending retry is dropped)."""
        self.stopped = True
        if self.state != DISCONNECTED:
            was_connected = self.state == "connected"
            self.close(code)
            if was_connected:
                self.tracker.connected -= 1

    def _attempt(self, _event: simpy.Event | None = None) -> None:
        if self.stopped or self.state != DISCONNECTED:
            return
        now = self.env.now
        self.last_attempt_at = now
        self.tracker._count(self.tracker.attempts, now)
        self._handshake()

    def _outcome(self, outcome: str) -> None:
        tracker = self.tracker
        now = self.env.now
        if outcome == "accepted":
            tracker.connected += 1
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
