"""Reconnection and retry backoff: the textbook strategies and the real clients' own formulas.

A policy (``Backoff``) is shared by many clients; each client keeps a tiny :class:`BackoffState`.
Before every attempt of a reconnection episode the client asks
``policy.next_delay(state, now, since_attempt, u)``:

* ``state.attempt`` is how many attempts this episode has made so far (0 before the first
  reconnect attempt after a disconnection);
* ``since_attempt`` is the time since the client's previous connection attempt started (some
  clients, like gRPC and Firebase, count their delay from there, not from the failure);
* ``u`` draws uniform numbers in [0, 1);
* the answer is the wait in seconds, or ``None`` when the client gives up.

Before asking, the client may record why the previous attempt failed in ``state.failure``
(``"timeout"``, ``"refused"``, ``"lost"``...): the AWS SDKs charge a retry after a timeout more.

After a successful connection the client calls ``policy.connected(state)`` and, when the
connection ends, ``policy.disconnected(state, connected_for)``; each policy resets when its
client does (at once, or, like Firebase, only after a stable connection).

Textbook strategies (names as in "Exponential Backoff And Jitter", AWS Architecture Blog, 2015),
with ``v(k) = min(cap, base * multiplier ** (k + first_exponent))`` for the k-th attempt:
``none`` (0), ``constant`` (base), ``exponential`` (v), ``full_jitter`` (U(0, v)),
``equal_jitter`` (v/2 + U(0, v/2)), ``decorrelated_jitter`` (min(cap, U(base, 3 * previous))).
Real clients' presets come from ``data/backoff_presets.json``, each with its source.
"""

from __future__ import annotations

import math
from typing import Callable

from sim import data
from sim.core.errors import ParameterError

Uniform01 = Callable[[], float]

#: The textbook strategies, in the order the notebooks show them.
STRATEGIES = ("none", "constant", "exponential", "full_jitter", "equal_jitter", "decorrelated_jitter")


class BackoffState:
    """What one client remembers between attempts."""

    __slots__ = ("attempt", "value", "episode_start", "connected_at", "failure")

    def __init__(self) -> None:
        self.attempt = 0
        """Attempts made in the current reconnection episode."""
        self.value = math.nan
        """The policy's running delay (previous sleep, current backoff...), nan when fresh."""
        self.episode_start = math.nan
        """When the current episode began (the disconnection), for deadlines."""
        self.connected_at = math.nan
        self.failure = ""
        """Why the last attempt failed (``"timeout"``, ``"refused"``, ``"lost"``; empty if unknown)."""


def _positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise ParameterError(name, f"must be a number of seconds {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)


class Backoff:
    """Base class; see the module docstring for the protocol."""

    name = "backoff"
    connect_timeout = 10.0
    """Seconds an attempt waits for an answer before it counts as failed."""
    reset_after = 0.0
    """Seconds a connection must last before the backoff resets (0: reset on connect)."""
    __slots__ = ()

    def new_state(self) -> BackoffState:
        return BackoffState()

    def next_delay(self, st: BackoffState, now: float, since_attempt: float, u: Uniform01) -> float | None:
        if st.attempt == 0:
            st.episode_start = now
        delay = self._delay(st, now, since_attempt, u)
        if delay is not None:
            st.attempt += 1
        return delay

    def _delay(self, st: BackoffState, now: float, since_attempt: float, u: Uniform01) -> float | None:
        raise NotImplementedError

    def connected(self, st: BackoffState, now: float) -> None:
        st.connected_at = now
        if self.reset_after == 0:
            self._reset(st)

    def disconnected(self, st: BackoffState, connected_for: float) -> None:
        if self.reset_after > 0 and connected_for > self.reset_after:
            self._reset(st)
        st.attempt = 0  # a new episode starts (its running delay may persist, as in Firebase)

    def _reset(self, st: BackoffState) -> None:
        st.attempt = 0
        st.value = math.nan

    def describe(self) -> str:
        return self.name


class Textbook(Backoff):
    """The strategies of the AWS Architecture Blog post (see the module docstring)."""

    __slots__ = ("name", "base", "multiplier", "cap", "first_exponent", "max_attempts", "connect_timeout",
                 "_capped_from", "_ceilings", "_cap_from")

    def __init__(self, name: str, base: float = 1.0, multiplier: float = 2.0, cap: float = 60.0, *,
                 first_exponent: int = 0, max_attempts: int | None = None, connect_timeout: float = 10.0) -> None:
        if name not in STRATEGIES:
            raise ParameterError("strategy", f"must be one of {', '.join(STRATEGIES)}, got {name!r}")
        self.name = name
        self.base = _positive("backoff_base", base, allow_zero=name == "none")
        if isinstance(multiplier, bool) or not (isinstance(multiplier, (int, float)) and 1 <= multiplier < math.inf):
            raise ParameterError("backoff_multiplier", f"must be a number >= 1, got {multiplier!r}")
        self.multiplier = float(multiplier)
        self.cap = _positive("backoff_cap", cap)
        if self.cap < self.base:
            raise ParameterError("backoff_cap", f"must be >= backoff_base ({base} s), got {cap!r}")
        if isinstance(first_exponent, bool) or not isinstance(first_exponent, int) or first_exponent < 0:
            raise ParameterError("first_exponent", f"must be an integer >= 0, got {first_exponent!r}")
        self.first_exponent = first_exponent
        if max_attempts is not None and (isinstance(max_attempts, bool) or not isinstance(max_attempts, int)
                                         or max_attempts < 1):
            raise ParameterError("max_attempts", f"must be an integer >= 1 or none, got {max_attempts!r}")
        self.max_attempts = max_attempts
        self.connect_timeout = _positive("connect_timeout", connect_timeout)
        # past this exponent the power is not needed (and could overflow): v is the cap
        self._capped_from = (math.log(self.cap / self.base) / math.log(self.multiplier) + 1
                             if self.multiplier > 1 and self.base > 0 else math.inf)
        # v(k) looked up rather than computed, once per retry of every client of a storm: the
        # values below the cap, then v(_cap_from) for every k from there on (the cap, or base when
        # the multiplier is 1)
        self._cap_from = (0 if math.isinf(self._capped_from)
                          else max(0, math.floor(self._capped_from) - first_exponent + 1))
        self._ceilings = tuple(self.ceiling(k) for k in range(self._cap_from + 1))

    def ceiling(self, k: int) -> float:
        """v(k) = min(cap, base * multiplier ** (k + first_exponent))."""
        exponent = k + self.first_exponent
        if exponent > self._capped_from:
            return self.cap
        return min(self.cap, self.base * self.multiplier**exponent)

    def _delay(self, st, now, since_attempt, u):
        k = st.attempt
        if self.max_attempts is not None and k >= self.max_attempts:
            return None
        name = self.name
        if name == "none":
            return 0.0
        if name == "constant":
            return self.base
        if name == "decorrelated_jitter":
            previous = self.base if math.isnan(st.value) else st.value
            sleep = min(self.cap, self.base + u() * (3 * previous - self.base))
            st.value = sleep
            return sleep
        v = self._ceilings[k if k < self._cap_from else self._cap_from]
        if name == "exponential":
            return v
        if name == "full_jitter":
            return u() * v
        return v / 2 + u() * (v / 2)  # equal_jitter

    def describe(self) -> str:
        return f"{self.name} (base {self.base:g} s, x{self.multiplier:g}, cap {self.cap:g} s)"


class Grpc(Backoff):
    """gRPC connection backoff (doc/connection-backoff.md): delays counted from the attempt's start."""

    __slots__ = ("name", "initial", "multiplier", "maximum", "jitter", "connect_timeout")

    def __init__(self, initial_s: float, multiplier: float, max_s: float, jitter: float, min_connect_timeout_s: float,
                 name: str = "grpc", **_: object) -> None:
        self.name, self.initial, self.multiplier, self.maximum, self.jitter = name, initial_s, multiplier, max_s, jitter
        self.connect_timeout = min_connect_timeout_s

    def _delay(self, st, now, since_attempt, u):
        if st.attempt == 0:
            return 0.0  # ConnectWithBackoff tries at once
        if st.attempt == 1:
            st.value = self.initial
            deadline = self.initial  # the first backoff has no jitter
        else:
            st.value = min(st.value * self.multiplier, self.maximum)
            deadline = st.value + (2 * u() - 1) * self.jitter * st.value
        return max(0.0, deadline - since_attempt)


class SocketIO(Backoff):
    """socket.io-client's backo2: one random number for size and sign; cap after jitter; whole ms."""

    __slots__ = ("name", "initial", "multiplier", "maximum", "randomization", "connect_timeout")

    def __init__(self, initial_s: float, multiplier: float, max_s: float, randomization: float,
                 connect_timeout_s: float, name: str = "socketio", **_: object) -> None:
        self.name, self.initial, self.multiplier, self.maximum = name, initial_s, multiplier, max_s
        self.randomization, self.connect_timeout = randomization, connect_timeout_s

    def _delay(self, st, now, since_attempt, u):
        ms = self.initial * 1000 * self.multiplier ** min(st.attempt, 64)
        r = u()
        deviation = math.floor(r * self.randomization * ms)
        ms = ms - deviation if (math.floor(r * 10) & 1) == 0 else ms + deviation
        return int(min(ms, self.maximum * 1000)) / 1000


class RetryQuota:
    """botocore's ``RetryQuota`` (retries/quota.py): a token bucket shared by every call of one SDK client."""

    __slots__ = ("capacity", "available")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        """Largest (and initial) number of tokens, 500 in botocore."""
        self.available = capacity
        """Tokens left now."""

    def acquire(self, amount: int) -> bool:
        if amount > self.available:
            return False
        self.available -= amount
        return True

    def release(self, amount: int) -> None:
        self.available = min(self.capacity, self.available + amount)


class AwsStandard(Backoff):
    """AWS SDKs' standard retry mode: full jitter on 2^(attempt-1) s, 3 attempts, a 500-token quota.

    One policy object stands for one botocore client: its :class:`RetryQuota` is shared by every
    call (every state) that uses the policy, as ``register_retry_handler`` creates one quota per
    client. A retry acquires ``retry_cost`` tokens, or ``timeout_retry_cost`` when the attempt
    timed out (``state.failure == "timeout"``); a call that succeeds releases what its last retry
    acquired, or ``no_retry_increment`` if it needed no retry; a call that fails releases nothing.
    """

    __slots__ = ("name", "base", "maximum", "max_attempts", "retry_cost", "timeout_retry_cost", "no_retry_increment",
                 "quota")

    def __init__(self, base_s: float, max_s: float, max_attempts: int, quota_tokens: int, retry_cost: int,
                 timeout_retry_cost: int, no_retry_increment: int, name: str = "aws_standard", **_: object) -> None:
        self.name, self.base, self.maximum, self.max_attempts = name, base_s, max_s, max_attempts
        self.retry_cost, self.timeout_retry_cost = retry_cost, timeout_retry_cost
        self.no_retry_increment = no_retry_increment
        self.quota = RetryQuota(quota_tokens)
        """The client's one retry quota, shared by all its calls."""

    def _delay(self, st, now, since_attempt, u):
        k = st.attempt
        if k == 0:
            st.value = math.nan  # a new call: nothing acquired yet
            return 0.0  # the first attempt of a call is not a retry
        if k >= self.max_attempts:
            return None
        cost = self.timeout_retry_cost if st.failure == "timeout" else self.retry_cost
        if not self.quota.acquire(cost):
            return None  # retry quota exhausted
        st.value = cost  # botocore keeps the amount of the last acquisition in the request context
        return u() * min(self.base * 2 ** (k - 1), self.maximum)

    def connected(self, st, now):
        st.connected_at = now
        self.quota.release(self.no_retry_increment if math.isnan(st.value) else int(st.value))
        st.value = math.nan
        st.attempt = 0


class GoogleApiCore(Backoff):
    """google-api-core Retry: uniform(0, max_delay) with max_delay growing to a maximum, until a deadline.

    The deadline is counted from the call's start (the episode's first attempt); after a failure
    the next sleep is drawn first, and the call gives up if that sleep would end past the deadline.
    """

    __slots__ = ("name", "initial", "multiplier", "maximum", "deadline")

    def __init__(self, initial_s: float, multiplier: float, max_s: float, deadline_s: float,
                 name: str = "google_api_core", **_: object) -> None:
        self.name, self.initial, self.multiplier, self.maximum, self.deadline = (
            name, initial_s, multiplier, max_s, deadline_s)

    def _delay(self, st, now, since_attempt, u):
        if st.attempt == 0:
            st.value = min(self.initial, self.maximum)
            return 0.0
        delay = u() * st.value
        st.value = min(st.value * self.multiplier, self.maximum)
        # _retry_error_helper: give up when the next sleep would end past the deadline, before sleeping
        if now + delay > st.episode_start + self.deadline:
            return None
        return delay


class FirebaseRtdb(Backoff):
    """Firebase RTDB JS: random() * max(0, reconnectDelay - time since last attempt), reset after 30 s up."""

    __slots__ = ("name", "initial", "multiplier", "maximum", "reset_after")

    def __init__(self, initial_s: float, multiplier: float, max_s: float, reset_after_s: float,
                 name: str = "firebase_rtdb", **_: object) -> None:
        self.name, self.initial, self.multiplier, self.maximum = name, initial_s, multiplier, max_s
        self.reset_after = reset_after_s

    def _delay(self, st, now, since_attempt, u):
        current = self.initial if math.isnan(st.value) else st.value
        delay = u() * max(0.0, current - since_attempt)
        st.value = min(self.maximum, current * self.multiplier)
        return delay


class Table(Backoff):
    """A fixed list of delays (Phoenix, SignalR), then a constant or giving up."""

    __slots__ = ("name", "delays", "after")

    def __init__(self, delays_s: list[float], after_table_s: float | None, name: str = "table", **_: object) -> None:
        self.name, self.delays, self.after = name, tuple(delays_s), after_table_s

    def _delay(self, st, now, since_attempt, u):
        k = st.attempt
        return self.delays[k] if k < len(self.delays) else self.after


class AblyState(BackoffState):
    """Ably's per-connection memory: whether the episode began by losing an established connection."""

    __slots__ = ("lost_connection", "last_auto_reconnect")

    def __init__(self) -> None:
        super().__init__()
        self.lost_connection = False
        self.last_auto_reconnect = math.nan


class Ably(Backoff):
    """ably-js ConnectionManager.notifyState: immediate retry after losing a connection, then
    getRetryTime(15 s, n) while disconnected, then a flat 30 s once suspended (after 120 s).

    * losing an *established* connection retries at once (``retryImmediately``), but not sooner
      than 1 s after the previous immediate retry; that retry is ``disconnectedRetryCount`` 1;
    * each later failure while disconnected waits ``getRetryTime(15 s, count)``
      = 15 s x min((count + 2) / 3, 2) x (1 - 0.2 random);
    * ``connectionStateTtl`` (120 s) after the episode's first connect the suspend timer fires: the
      pending retry is cancelled and the connection is suspended; in that state every retry waits
      exactly ``suspendedRetryTimeout`` (30 s: no coefficient and no jitter).
    """

    __slots__ = ("name", "disconnected_retry", "suspended_retry", "ttl", "connect_timeout")

    def __init__(self, disconnected_retry_s: float, suspended_retry_s: float, connection_state_ttl_s: float,
                 connect_timeout_s: float, name: str = "ably", **_: object) -> None:
        self.name, self.disconnected_retry, self.suspended_retry = name, disconnected_retry_s, suspended_retry_s
        self.ttl, self.connect_timeout = connection_state_ttl_s, connect_timeout_s

    def new_state(self) -> AblyState:
        return AblyState()

    def disconnected(self, st, connected_for):
        super().disconnected(st, connected_for)
        st.lost_connection = True

    def _delay(self, st, now, since_attempt, u):
        suspend_at = st.episode_start + self.ttl
        if now >= suspend_at:
            if now - since_attempt < suspend_at:
                # the timer fired during this attempt: suspended since suspend_at, retry 30 s after it
                return max(0.0, suspend_at + self.suspended_retry - now)
            return self.suspended_retry  # suspended: startRetryTimer(suspendedRetryTimeout), flat
        if st.attempt == 0 and getattr(st, "lost_connection", False):
            st.lost_connection = False
            # retryImmediately, unless the last automatic reconnect was under a second ago
            since = now - st.last_auto_reconnect + 0.001
            delay = 1.0 - since if since < 1.0 else 0.0
            st.last_auto_reconnect = now + delay
            return delay
        n = st.attempt + 1  # disconnectedRetryCount (the immediate retry, if any, was count 1)
        delay = self.disconnected_retry * min((n + 2) / 3, 2) * (1 - 0.2 * u())
        if now + delay > suspend_at:
            # the suspend timer fires first, cancels this retry and starts the suspended one
            return suspend_at - now + self.suspended_retry
        return delay


_FORMULAS: dict[str, type[Backoff]] = {
    "grpc": Grpc, "socketio": SocketIO, "aws_standard": AwsStandard, "google_api_core": GoogleApiCore,
    "firebase_rtdb": FirebaseRtdb, "table": Table, "ably": Ably,
}


def presets() -> dict[str, dict]:
    """Real clients' presets from ``data/backoff_presets.json`` (name -> values, notes and source)."""
    return data.load("backoff_presets")


PRESETS: tuple[str, ...] = tuple(presets())
"""Names of the real-client presets."""


def make_backoff(name: str, *, base: float = 1.0, multiplier: float = 2.0, cap: float = 60.0,
                 first_exponent: int = 0, max_attempts: int | None = None) -> Backoff:
    """A textbook strategy (``STRATEGIES``, tuned by the keywords) or a real client's preset (``PRESETS``)."""
    if name in STRATEGIES:
        return Textbook(name, base, multiplier, cap, first_exponent=first_exponent, max_attempts=max_attempts)
    table = presets()
    if name in table:
        values = {k: v for k, v in table[name].items() if k not in ("formula", "notes", "source")}
        return _FORMULAS[table[name]["formula"]](name=name, **values)
    raise ParameterError("strategy", f"must be one of {', '.join(STRATEGIES + PRESETS)}, got {name!r}")
