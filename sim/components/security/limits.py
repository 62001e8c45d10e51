"""NGINX ``limit_req`` and ``limit_conn``, with NGINX's own arithmetic.

Both are read from ``nginx/nginx`` ``src/http/modules/ngx_http_limit_{req,conn}_module.c``
(numbers and source in ``data/security.json``).

``limit_req`` is a *leaky bucket* kept per key (``$binary_remote_addr``: per client IP) in
**milli-requests** on a **millisecond clock**. For each request at ``now`` ms::

    ms     = now - last                      (a clock going backwards counts as 0)
    excess = max(0, excess - rate * ms // 1000 + 1000)
    excess > burst * 1000   ->  rejected (503); the key's state is NOT updated
    otherwise               ->  excess is stored (and last = now when ms != 0), and the
                                request waits (excess - delay * 1000) * 1000 // rate ms
                                when excess > delay * 1000, else passes at once

``rate`` is ``r/s * 1000`` (or ``r/m * 1000 // 60``); a key seen for the first time starts at
excess 0 and passes. ``burst`` defaults to 0: then any request sooner than ``1/rate`` after the
previous one is rejected. ``nodelay`` sets ``delay`` to "infinite": requests within the burst
pass at once, and the bucket still drains at ``rate``. ``delay=N`` (NGINX 1.15.7) lets the first
N excess requests through at once and delays the rest up to the burst.

``limit_conn`` counts the requests in progress per key (for a WebSocket: the upgraded
connection, for its whole life) and rejects when the count has reached the limit. NGINX counts
a connection only once its whole request header has been read, so a slow, unfinished handshake
(slowloris) is not counted; :class:`~sim.components.security.gateway.Gateway` models that.

Simplified: a zone never runs out of shared memory (NGINX evicts old keys, or answers 503,
when its ``10m`` zone is full).
"""

from __future__ import annotations

import math
import re
from typing import Hashable

from sim.core.errors import ParameterError

PASSED, DELAYED, REJECTED = "passed", "delayed", "rejected"
"""What ``limit_req`` does with one request (the values of ``$limit_req_status``, lower case)."""
NODELAY = (2**63 - 1) // 1000
"""``nodelay``: NGINX sets ``delay`` to ``NGX_MAX_INT_T_VALUE / 1000`` requests."""

_RATE = re.compile(r"^\s*(\d+)\s*r/([sm])\s*$")


def parse_rate(rate: str | float) -> int:
    """A ``limit_req_zone`` rate as NGINX stores it: milli-requests per second (an integer).

    ``"10r/s"`` -> 10000, ``"30r/m"`` -> 500; a number is requests per second (must be a whole
    number of milli-requests, as NGINX cannot express more precision).
    """
    if isinstance(rate, str):
        m = _RATE.match(rate)
        if not m or int(m.group(1)) <= 0:
            raise ParameterError("rate", f"must look like 10r/s or 30r/m with a whole number > 0, got {rate!r}")
        scale = 1 if m.group(2) == "s" else 60
        return int(m.group(1)) * 1000 // scale
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        raise ParameterError("rate", f"must be requests per second > 0 (or NGINX text such as 10r/s), got {rate!r}")
    milli = round(rate * 1000)
    if milli < 1:
        raise ParameterError("rate", f"must be at least 0.001 requests per second (1 r/m is 0.016), got {rate!r}")
    return milli


def _count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ParameterError(name, f"must be an integer >= 0, got {value!r}")
    return value


class _Node:
    __slots__ = ("excess", "last")

    def __init__(self, last: int) -> None:
        self.excess = 0
        """Milli-requests above the rate (1000 = one request waiting in the bucket)."""
        self.last = last
        """Millisecond of the last accounted request."""


class LimitReq:
    """One ``limit_req zone=... [burst=N] [nodelay | delay=N]`` with its zone's rate.

    ``check(key, now)`` answers ``(PASSED | DELAYED | REJECTED, delay in seconds)`` for one
    request of ``key`` at simulated time ``now`` (seconds) and updates the key's bucket as NGINX
    does. Each instance has its own zone (keys are not shared between instances).
    """

    __slots__ = ("rate", "burst", "delay", "nodes", "passed", "delayed", "rejected")

    def __init__(self, rate: str | float, burst: int = 0, *, nodelay: bool = False, delay: int = 0) -> None:
        self.rate = parse_rate(rate)
        """Milli-requests per second (``ctx->rate``)."""
        _count(burst, "burst")
        _count(delay, "delay")
        if nodelay and delay:
            raise ParameterError("delay", "nodelay and delay=N cannot be used together (NGINX keeps the last one)")
        self.burst = burst * 1000
        """Milli-requests (``limit->burst = burst * 1000``)."""
        self.delay = (NODELAY if nodelay else delay) * 1000
        """Milli-requests let through without delay (``limit->delay``)."""
        self.nodes: dict[Hashable, _Node] = {}
        self.passed = self.delayed = self.rejected = 0
        """Requests by outcome."""

    @property
    def nodelay(self) -> bool:
        return self.delay == NODELAY * 1000

    def describe(self) -> str:
        """The directive as it would be written in nginx.conf."""
        rate = f"{self.rate // 1000}r/s" if self.rate % 1000 == 0 else f"{self.rate * 60 // 1000}r/m"
        parts = [f"rate={rate}"]
        if self.burst:
            parts.append(f"burst={self.burst // 1000}")
        if self.nodelay:
            parts.append("nodelay")
        elif self.delay:
            parts.append(f"delay={self.delay // 1000}")
        return "limit_req " + " ".join(parts)

    # --- the two halves of NGINX's handler ---------------------------------------------------
    def _excess(self, key: Hashable, now_ms: int) -> tuple[_Node | None, int, int]:
        """``(node, new excess, ms)`` without changing anything (``ngx_http_limit_req_lookup``)."""
        node = self.nodes.get(key)
        if node is None:
            return None, 0, 0
        ms = now_ms - node.last
        if ms < -60000:
            ms = 1
        elif ms < 0:
            ms = 0
        excess = node.excess - self.rate * ms // 1000 + 1000
        return node, max(0, excess), ms

    def _commit(self, key: Hashable, node: _Node | None, excess: int, ms: int, now_ms: int) -> int:
        """Store the new state; returns the delay in ms (``ngx_http_limit_req_account``)."""
        if node is None:
            self.nodes[key] = _Node(now_ms)
            return 0
        node.excess = excess
        if ms:
            node.last = now_ms
        if excess <= self.delay:
            return 0
        return (excess - self.delay) * 1000 // self.rate

    def check(self, key: Hashable, now: float) -> tuple[str, float]:
        """One request of ``key`` at ``now`` seconds; see the class docstring."""
        outcome, delay = limit_req([(self, key)], now)
        return outcome, delay


def now_msec(now: float) -> int:
    """NGINX's millisecond clock (``ngx_current_msec``) at simulated time ``now`` seconds."""
    return int(math.floor(now * 1000 + 1e-9))


def limit_req(limits: list[tuple[LimitReq, Hashable]], now: float) -> tuple[str, float]:
    """Several ``limit_req`` directives on one request, as NGINX applies them: if any zone would
    exceed its burst the request is rejected and **no** zone is updated; otherwise every zone is
    updated and the request waits for the longest of their delays. Returns
    ``(PASSED | DELAYED | REJECTED, delay in seconds)``."""
    now_ms = now_msec(now)
    looked = []
    for lim, key in limits:
        node, excess, ms = lim._excess(key, now_ms)
        if excess > lim.burst:
            lim.rejected += 1  # the zone that refused; NGINX leaves every zone as it was
            return REJECTED, 0.0
        looked.append((lim, key, node, excess, ms))
    delay_ms = 0
    for lim, key, node, excess, ms in looked:
        delay_ms = max(delay_ms, lim._commit(key, node, excess, ms, now_ms))
    outcome = DELAYED if delay_ms else PASSED
    for lim, _ in limits:
        if outcome == PASSED:
            lim.passed += 1
        else:
            lim.delayed += 1
    return outcome, delay_ms / 1000.0


class LimitConn:
    """``limit_conn zone N``: at most ``limit`` connections in progress per key.

    :meth:`acquire` when a request's header is complete (True: counted; False: 503) and
    :meth:`release` when that request (the upgraded WebSocket) ends.
    """

    __slots__ = ("limit", "counts", "rejected", "accepted")

    def __init__(self, limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ParameterError("limit_conn", f"must be an integer >= 1, got {limit!r}")
        self.limit = limit
        self.counts: dict[Hashable, int] = {}
        """Connections counted per key right now (keys at 0 are removed, as NGINX frees the node)."""
        self.accepted = self.rejected = 0

    def acquire(self, key: Hashable) -> bool:
        n = self.counts.get(key, 0)
        if n >= self.limit:
            self.rejected += 1
            return False
        self.counts[key] = n + 1
        self.accepted += 1
        return True

    def release(self, key: Hashable) -> None:
        n = self.counts.get(key, 0)
        if n <= 0:
            raise RuntimeError(f"limit_conn: release of {key!r} that holds no connection")
        if n == 1:
            del self.counts[key]
        else:
            self.counts[key] = n - 1
