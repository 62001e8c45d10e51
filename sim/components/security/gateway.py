"""The front door of a WebSocket server: what NGINX, an AWS WAF and a CDN edge do to handshakes.

A :class:`Gateway` is plugged into a :class:`~sim.components.server.Server` as its ``gate``. The
client's handshake carries ``{"ip": ..., "token": ..., "slow": bool}`` (its
:attr:`~sim.components.client.Client.handshake_data`). In the order a request meets them:

1. **edge** (a CDN such as Cloudflare or CloudFront, ``edge=True``): it terminates TCP, TLS and
   the HTTP request itself, so a handshake that never finishes (slowloris, ``slow``) is held at
   the edge and never reaches the origin. The WebSocket itself is proxied: every upgraded
   connection still holds a slot at the origin.
2. **WAF rate-based rule** (:class:`~sim.components.security.waf.RateBasedRule`, per IP): a
   blocked IP's handshakes get 403. Connections already open are not cut: a WAF filters requests.
3. **slots** (``slots``: sockets the origin can hold, NGINX ``worker_connections``): open
   connections and handshakes still being read both take one; none left -> refused.
4. **handshake timeout** (``client_header_timeout``, 60 s in NGINX): an unfinished handshake
   holds its slot that long, then gets 408. NGINX counts a request for ``limit_req`` and
   ``limit_conn`` only once its header is complete, so slow handshakes escape both.
5. **limit_req** (per IP, :class:`~sim.components.security.limits.LimitReq`) on handshake
   attempts: 503, or a delay before the handshake goes on.
6. **authentication before the upgrade** (``verifier``): the bearer token must be a valid JWT,
   or 401. At the edge when there is one, else at the origin; either way before a slot is given.
7. **limit_conn** (per IP, :class:`~sim.components.security.limits.LimitConn`): 503 when the IP
   already holds that many connections. Released when the connection ends.
8. **idle timeout** (``idle_timeout``; NGINX closes a proxied WebSocket on which nothing is
   transmitted for ``proxy_read_timeout``, 60 s): a connection that sends no frame (no ping) for
   that long is reset.

Then the server's own limits (``max_connections``, ``admission_rate``) apply as before.
Refusal reasons are counted in the ``gateway_refusals_total{reason}`` counter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import simpy

from sim.components import frames
from sim.components.security.limits import REJECTED, LimitConn, LimitReq
from sim.components.security.tokens import ACCEPTED, TokenVerifier
from sim.components.security.waf import RateBasedRule
from sim.components.server import HOLD, Server
from sim.core.context import Context
from sim.core.errors import ParameterError

REASONS = ("edge_slow", "waf_403", "no_slot", "timeout_408", "limit_req_503", "auth_401", "limit_conn_503",
           "idle_reset")


@dataclass(frozen=True)
class GatewaySpec:
    """Which defences are on, and their settings (None: off)."""

    slots: int | None = None
    """Sockets the origin can hold at once (open connections plus handshakes being read)."""
    handshake_timeout: float = 60.0
    """Seconds an unfinished handshake may hold its slot (NGINX ``client_header_timeout``)."""
    idle_timeout: float | None = None
    """Reset a connection silent this long, in seconds (NGINX ``proxy_read_timeout``); None: never."""
    limit_conn: int | None = None
    """Connections per IP (NGINX ``limit_conn``)."""
    limit_req_rate: float | None = None
    """Handshakes per second per IP (NGINX ``limit_req_zone ... rate=``)."""
    limit_req_burst: int = 0
    limit_req_nodelay: bool = True
    waf_limit: int | None = None
    """Requests per evaluation window per IP (AWS WAF rate-based rule)."""
    waf_window: float = 300.0
    edge: bool = False
    """A CDN edge terminates handshakes in front of the origin."""
    require_token: bool = False
    """Authenticate (a valid JWT) before the upgrade."""

    def __post_init__(self) -> None:
        if self.slots is not None and (isinstance(self.slots, bool) or not isinstance(self.slots, int) or self.slots < 1):
            raise ParameterError("slots", f"must be an integer >= 1 or None, got {self.slots!r}")
        if not (isinstance(self.handshake_timeout, (int, float)) and self.handshake_timeout > 0):
            raise ParameterError("handshake_timeout", f"must be seconds > 0, got {self.handshake_timeout!r}")
        if self.idle_timeout is not None and not self.idle_timeout > 0:
            raise ParameterError("idle_timeout", f"must be seconds > 0 or None, got {self.idle_timeout!r}")


class Gateway:
    """See the module docstring; ``verifier`` is needed when ``spec.require_token``."""

    def __init__(self, ctx: Context, spec: GatewaySpec, *, verifier: TokenVerifier | None = None) -> None:
        if spec.require_token and verifier is None:
            raise ParameterError("verifier", "a TokenVerifier is needed when require_token is on")
        self.ctx = ctx
        self.env: simpy.Environment = ctx.env
        self.spec = spec
        self.verifier = verifier
        self.limit_req = (LimitReq(spec.limit_req_rate, spec.limit_req_burst, nodelay=spec.limit_req_nodelay)
                          if spec.limit_req_rate is not None else None)
        self.limit_conn = LimitConn(spec.limit_conn) if spec.limit_conn is not None else None
        self.waf = RateBasedRule(ctx.env, spec.waf_limit, window_s=spec.waf_window) if spec.waf_limit is not None else None
        self.ip_of: dict[str, str] = {}
        """IP each open (or being opened) connection came from, by client name."""
        self.counted: set[str] = set()
        """Clients that hold a limit_conn count right now."""
        self.pending = 0
        """Unfinished handshakes holding an origin slot."""
        self.last_seen: dict[str, float] = {}
        family = ctx.metrics.counter("gateway_refusals_total", "Handshakes refused by the gateway", ("reason",))
        self._refusals = {r: family.labels(reason=r) for r in REASONS}
        self._open = 0

    # --- the gate protocol (called by the server) ------------------------------------------
    def admit(self, server: Server, client: str, data: Any) -> Any:
        spec = self.spec
        data = data or {}
        ip = data.get("ip", client)
        slow = data.get("slow", False)
        if spec.edge and slow:
            # the edge reads the handshake; the origin never sees it (the edge's own capacity is
            # not modelled: a CDN's is far larger than one origin's)
            self._refusals["edge_slow"].inc()
            self._later(spec.handshake_timeout, server, client, "timeout_408", count=False)
            return HOLD
        if self.waf is not None and not self.waf.request(ip):
            return self._refuse("waf_403")
        if spec.slots is not None and self._open + self.pending >= spec.slots:
            return self._refuse("no_slot")
        if slow:
            self.pending += 1
            self._later(spec.handshake_timeout, server, client, "timeout_408", count=True)
            return HOLD
        delay = 0.0
        if self.limit_req is not None:
            outcome, delay = self.limit_req.check(ip, self.env.now)
            if outcome == REJECTED:
                return self._refuse("limit_req_503")
        if spec.require_token:
            reason, _claims = self.verifier.check(data.get("token"), self.env.now)
            if reason != ACCEPTED:
                return self._refuse("auth_401")
        if self.limit_conn is not None:
            if not self.limit_conn.acquire(ip):
                return self._refuse("limit_conn_503")
            self.counted.add(client)
        self.ip_of[client] = ip
        if delay > 0:  # limit_req without nodelay: the handshake waits, then goes on
            timer = self.env.timeout(delay, (server, client))
            timer.callbacks.append(lambda e: e.value[0].resume_handshake(e.value[1]))
            return HOLD
        return None

    def opened(self, server: Server, client: str) -> None:
        self._open += 1
        if self.spec.idle_timeout is not None:
            self.last_seen[client] = self.env.now
            self._arm_idle(server, client, self.env.now + self.spec.idle_timeout)

    def refused(self, server: Server, client: str, result: str) -> None:
        self._release(client)

    def closed(self, server: Server, client: str) -> None:
        self._open -= 1
        self.last_seen.pop(client, None)
        self._release(client)

    def activity(self, server: Server, client: str) -> None:
        if self.spec.idle_timeout is not None:
            self.last_seen[client] = self.env.now

    # --- helpers -----------------------------------------------------------------------------
    @property
    def open_connections(self) -> int:
        return self._open

    def _refuse(self, reason: str) -> str:
        self._refusals[reason].inc()
        return reason

    def _release(self, client: str) -> None:
        if client in self.counted:
            self.counted.discard(client)
            self.limit_conn.release(self.ip_of[client])
        self.ip_of.pop(client, None)

    def _later(self, delay: float, server: Server, client: str, reason: str, count: bool) -> None:
        def expire(_event: simpy.Event) -> None:
            if count:
                self.pending -= 1
                self._refusals[reason].inc()
            if server.up:
                server.refuse_handshake(client, reason)

        self.env.timeout(delay).callbacks.append(expire)

    def _arm_idle(self, server: Server, client: str, at: float) -> None:
        timer = self.env.timeout(max(0.0, at - self.env.now), (server, client, server.connections.get(client)))
        timer.callbacks.append(self._idle_check)

    def _idle_check(self, event: simpy.Event) -> None:
        server, client, opened_at = event.value
        if server.connections.get(client) != opened_at or opened_at is None:
            return  # closed, or replaced by a newer connection since
        last = self.last_seen.get(client, opened_at)
        due = last + self.spec.idle_timeout
        if due > self.env.now + 1e-9:
            self._arm_idle(server, client, due)
            return
        self._refusals["idle_reset"].inc()
        server.network.send(server.name, client, (frames.RESET, None), frames.FRAME_HEADER_BYTES)
        server.drop(client)
