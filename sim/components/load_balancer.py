"""A load balancer in front of stateful nodes, with the policies real proxies offer (course question 6A).

Policies (names as in :data:`POLICIES`; sources in ``data/load_balancers.json``):

* ``round_robin`` — NGINX's and HAProxy's default: healthy backends in turn.
* ``least_connections`` — NGINX ``least_conn`` / HAProxy ``leastconn``: fewest active
  connections, ties broken in round-robin order.
* ``random`` — Envoy's and HAProxy's ``random``: one uniform choice (the one-choice baseline of
  the balls-into-bins check).
* ``power_of_two`` — Envoy's least-request with equal weights: two random choices (with
  replacement, as Envoy draws), the one with fewer active connections wins.
* ``ip_hash`` — NGINX ``ip_hash``, with its own arithmetic: the key is the first three octets
  of the client's IPv4 address, so every client behind one NAT (one /24) lands on one backend.
  A backend that is *down* is skipped by re-hashing, so only its clients move; a backend added
  to the list changes the modulus, so most clients move. Tries are counted as
  ``ngx_http_upstream_get_ip_hash_peer`` counts them: 21 hashed picks, then round robin.
* ``consistent_hash`` — NGINX ``hash $key consistent`` with NGINX's own ring
  (``ngx_http_upstream_init_chash``): each backend owns ``virtual_nodes`` (160) points per unit
  of weight, point *j* = CRC32(host, NUL, port, point *j-1* as 4 little-endian bytes); the key's
  CRC32 picks the first point at or after it. A point owned by a down backend moves the lookup
  to the next point; after 21 points NGINX gives up and falls back to round robin.
* ``sticky_cookie`` — NGINX Plus ``sticky cookie`` / ingress-nginx cookie affinity: the first
  request is balanced by ``fallback`` (round robin), the cookie then pins the client to that
  backend until the backend is unhealthy or gone.
* ``modulo_hash`` — the naive baseline: ``hash(key) % number of healthy backends``.

The balancer only routes and counts: the scenario tells it when a connection it routed opens
(:meth:`LoadBalancer.opened`) and closes (:meth:`~LoadBalancer.closed`), like a proxy that
sees the connections it carries. Health checks: :meth:`LoadBalancer.fail` says a backend died;
the balancer keeps routing to it for ``health_check_delay`` seconds (the checks have not failed
yet), then marks it down.

Hashes are stable across processes (CRC32 and NGINX's arithmetic, BLAKE2b for the modulo
baseline), never Python's salted ``hash()``. Sources: nginx/nginx at commit
3f6f7824d4e2eb1ac37dec76683d525ac0ff521c, ``src/http/modules/ngx_http_upstream_ip_hash_module.c``
and ``ngx_http_upstream_hash_module.c`` (``data/load_balancers.json`` cites them). Per-client cost is a few microseconds, so 100,000 clients over 20 backends are cheap.

:class:`Sessions` says where each client's session state lives: in the memory of the node that
created it (lost when the client lands elsewhere or the node dies) unless an external
:class:`SessionStore` (e.g. Redis) holds it, at the price of one round trip to fetch it.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from bisect import bisect_left
from functools import cached_property
from typing import Callable, Iterable

import numpy as np
import simpy

from sim import data
from sim.core.context import Context
from sim.core.distributions import Distribution, Uniform
from sim.core.errors import ParameterError

POLICIES = ("round_robin", "least_connections", "random", "power_of_two", "ip_hash", "consistent_hash",
            "sticky_cookie", "modulo_hash")
"""Every policy, in the order the notebooks show them."""
KEYED = ("ip_hash", "consistent_hash", "sticky_cookie", "modulo_hash")
"""Policies that map a client to a backend by something it carries (address, key, cookie)."""


def presets() -> dict[str, dict]:
    """``data/load_balancers.json``: the real systems' numbers, each with its source."""
    return data.load("load_balancers")


_IP_HASH = presets()["nginx_ip_hash"]
_IP_START, _IP_MUL, _IP_MOD = _IP_HASH["initial_hash"], _IP_HASH["multiplier"], _IP_HASH["modulus"]
_IP_PICKS: int = _IP_HASH["max_tries"] + 1
"""Hashed picks before round robin: ``tries`` starts at 0 and NGINX gives up once ``++tries > 20``, so 21."""
_CHASH = presets()["nginx_hash_consistent"]
DEFAULT_VIRTUAL_NODES: int = _CHASH["points_per_weight"]
"""Ring points per unit of weight: NGINX's 160."""
_CHASH_PICKS: int = _CHASH["max_tries"] + 1
"""Ring points looked at before round robin (``hp->tries > 20`` in ``ngx_http_upstream_get_chash_peer``)."""


def stable_hash(text: str) -> int:
    """A 64-bit hash of ``text`` that is the same in every process (unlike ``hash()``)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def _host_and_port(server: str) -> tuple[bytes, bytes]:
    """How ``ngx_http_upstream_init_chash`` splits a server's name: ``unix:PATH`` is all host; a
    trailing ``:DIGITS`` is the port; anything else is all host, with an empty port."""
    if server[:5].lower() == "unix:":
        return server[5:].encode(), b""
    head, sep, tail = server.rpartition(":")
    if sep and tail.isdigit() and tail.isascii():
        return head.encode(), tail.encode()
    if sep and not tail:  # "host:" -- NGINX stops at the colon with an empty port
        return head.encode(), b""
    return server.encode(), b""


def nginx_chash_points(server: str, points: int = 160) -> list[int]:
    """The ring points NGINX gives ``server`` (``points`` = 160 x weight): CRC32 of host, NUL,
    port and the previous point as 4 little-endian bytes (0 before the first), chained."""
    host, port = _host_and_port(server)
    base = zlib.crc32(host + b"\0" + port)  # zlib.crc32(data, crc) continues a running CRC
    out, prev = [], 0
    for _ in range(points):
        prev = zlib.crc32(prev.to_bytes(4, "little"), base)
        out.append(prev)
    return out


def ip_text(ip: int) -> str:
    """Dotted form of an IPv4 address given as a 32-bit integer."""
    return ".".join(str((ip >> s) & 255) for s in (24, 16, 8, 0))


class ClientKey:
    """What a balancer sees of one client: its key (user id, header or cookie value) and source IPv4."""

    __slots__ = ("name", "key_hash", "key_crc32", "octets", "ip_hash")

    def __init__(self, name: str, ip: int) -> None:
        self.name = name
        self.key_hash = stable_hash(name)
        """Hash of the client's key, for ``modulo_hash``."""
        self.key_crc32 = zlib.crc32(name.encode("utf-8"))
        """CRC32 of the client's key: where ``hash $key consistent`` looks it up (``ngx_crc32_long``)."""
        self.octets = ((ip >> 24) & 255, (ip >> 16) & 255, (ip >> 8) & 255)
        """The first three octets: all NGINX's ip_hash looks at."""
        h = _IP_START
        for octet in self.octets:
            h = (h * _IP_MUL + octet) % _IP_MOD
        self.ip_hash = h
        """NGINX's ip_hash value after its first pass over the octets."""


class ClientKeys:
    """Many clients at once, as arrays indexed by client number: what :class:`ClientKey` holds for
    one client, for :meth:`LoadBalancer.route_batch` and :meth:`LoadBalancer.owners` (a million
    ``ClientKey`` objects would cost seconds and hundreds of megabytes). Client ``i`` is named
    ``f"{prefix}{i}"``; the key hashes are computed on first use (only some policies need them)."""

    def __init__(self, prefix: str, ips: np.ndarray) -> None:
        self.prefix = prefix
        self.ips = np.asarray(ips, dtype=np.int64)
        self.octets = ((self.ips >> 24) & 255, (self.ips >> 16) & 255, (self.ips >> 8) & 255)
        h = np.full(len(self.ips), _IP_START, dtype=np.int64)
        for octet in self.octets:  # ClientKey.ip_hash, on every client at once
            h = (h * _IP_MUL + octet) % _IP_MOD
        self.ip_hash = h

    def __len__(self) -> int:
        return len(self.ips)

    def name(self, i: int) -> str:
        return f"{self.prefix}{i}"

    def key(self, i: int) -> ClientKey:
        """Client ``i`` as one :class:`ClientKey` (same hashes)."""
        return ClientKey(self.name(i), int(self.ips[i]))

    @cached_property
    def key_hash(self) -> np.ndarray:
        """:attr:`ClientKey.key_hash` of every client (uint64)."""
        p = self.prefix
        return np.fromiter((stable_hash(f"{p}{i}") for i in range(len(self))), dtype=np.uint64, count=len(self))

    @cached_property
    def key_crc32(self) -> np.ndarray:
        """:attr:`ClientKey.key_crc32` of every client."""
        p, crc = self.prefix, zlib.crc32
        return np.fromiter((crc(f"{p}{i}".encode()) for i in range(len(self))), dtype=np.int64, count=len(self))


OPEN, CLOSE, REOPEN = 0, 1, 2
"""Event kinds of :meth:`LoadBalancer.route_batch`: a first connection, a close, a reconnect."""


class Backend:
    """One node behind the balancer."""

    __slots__ = ("name", "healthy", "alive", "active", "index")

    def __init__(self, name: str) -> None:
        self.name = name
        self.healthy = True
        """In rotation: the balancer routes to it (false once health checks fail or it is marked down)."""
        self.alive = True
        """Actually able to accept connections (false from :meth:`LoadBalancer.fail` on)."""
        self.active = 0
        """Connections routed to it and still open."""
        self.index = -1
        """Position in the configured list (-1 once removed)."""

    def __repr__(self) -> str:
        return f"<Backend {self.name} active={self.active}{'' if self.healthy else ' down'}>"


class LoadBalancer:
    """Routes clients to backends with ``policy`` (see the module docstring)."""

    def __init__(self, ctx: Context, policy: str, backends: Iterable[str] = (), *, name: str = "lb",
                 health_check_delay: float = 10.0, virtual_nodes: int = DEFAULT_VIRTUAL_NODES,
                 fallback: str = "round_robin") -> None:
        if policy not in POLICIES:
            raise ParameterError("policy", f"must be one of {', '.join(POLICIES)}, got {policy!r}")
        if fallback not in ("round_robin", "least_connections", "random", "power_of_two"):
            raise ParameterError("fallback", f"must be a policy without a key, got {fallback!r}")
        if isinstance(health_check_delay, bool) or not isinstance(health_check_delay, (int, float)) \
                or not 0 <= health_check_delay < math.inf:
            raise ParameterError("health_check_delay", f"must be a number of seconds >= 0, got {health_check_delay!r}")
        if isinstance(virtual_nodes, bool) or not isinstance(virtual_nodes, int) or virtual_nodes < 1:
            raise ParameterError("virtual_nodes", f"must be an integer >= 1, got {virtual_nodes!r}")
        self.ctx = ctx
        self.env: simpy.Environment = ctx.env
        self.name = name
        self.policy = policy
        self.fallback = fallback
        self.health_check_delay = float(health_check_delay)
        self.virtual_nodes = virtual_nodes
        self.backends: list[Backend] = []
        """Configured backends, in order (healthy or not)."""
        self._by_name: dict[str, Backend] = {}
        self._healthy: list[Backend] = []
        self._rr = 0
        self._ring_points: list[int] = []
        self._ring_owners: list[Backend] = []
        self._cookies: dict[ClientKey, Backend] = {}
        self._point_cache: dict[str, list[int]] = {}
        self._cookie_array: np.ndarray | None = None
        self._cookie_keys: ClientKeys | None = None
        self._uniform = Uniform(0.0, 1.0).bind(ctx.rng(f"{name}.choice"))
        """U[0, 1) draws of the random policies, one at a time (``sample``) or a block (``samples``)."""
        self.routed = 0
        """Routing decisions made."""
        self.no_backend = 0
        """Requests that found no healthy backend."""
        pick = {"round_robin": self._round_robin, "least_connections": self._least_connections,
                "random": self._random, "power_of_two": self._power_of_two, "ip_hash": self._ip_hash,
                "consistent_hash": self._consistent_hash, "sticky_cookie": self._sticky,
                "modulo_hash": self._modulo}
        self._pick: Callable[[ClientKey], Backend | None] = pick[policy]
        self._fallback_pick: Callable[[ClientKey], Backend | None] = pick[fallback]
        for b in backends:  # one refresh for the lot: adding one by one would be quadratic
            self._configure(b)
        self._refresh()

    # --- membership ---------------------------------------------------------------------
    def add(self, name: str) -> Backend:
        """Configure a new backend, healthy at once (add it when it is ready)."""
        backend = self._configure(name)
        self._refresh()
        return backend

    def _configure(self, name: str) -> Backend:
        if name in self._by_name:
            raise ValueError(f"backend {name!r} is already configured")
        backend = self._by_name[name] = Backend(name)
        backend.index = len(self.backends)
        self.backends.append(backend)
        return backend

    def remove(self, name: str) -> Backend:
        """Take a backend out of the configuration (e.g. a Kubernetes endpoint removed)."""
        backend = self._by_name.pop(name)
        self.backends.remove(backend)
        backend.healthy = False
        backend.index = -1
        for i, b in enumerate(self.backends):
            b.index = i
        self._refresh()
        return backend

    def mark_down(self, name: str) -> None:
        """Keep a backend configured but out of rotation (NGINX ``down``, or a failed health check)."""
        backend = self._by_name[name]
        if backend.healthy:
            backend.healthy = False
            self._refresh()

    def mark_up(self, name: str) -> None:
        backend = self._by_name[name]
        if not backend.healthy:
            backend.healthy = backend.alive = True
            self._refresh()

    def fail(self, name: str) -> None:
        """The backend died: connections to it fail now; health checks mark it down ``health_check_delay`` s later."""
        backend = self._by_name[name]
        backend.alive = False

        def detect(_event: simpy.Event) -> None:
            if not backend.alive and backend.index >= 0:
                self.mark_down(name)

        if self.health_check_delay == 0:
            detect(None)  # type: ignore[arg-type]
        else:
            self.env.timeout(self.health_check_delay).callbacks.append(detect)

    def backend(self, name: str) -> Backend:
        return self._by_name[name]

    def _refresh(self) -> None:
        self._healthy = [b for b in self.backends if b.healthy]
        if self.policy == "consistent_hash":
            points = []
            for b in self.backends:  # down backends keep their points: lookups skip them
                points.extend((h, b.index) for h in self._points_of(b.name))
            points.sort()
            ring, owners = [], []
            for h, i in points:  # NGINX keeps one point per hash value (ties: which one is unspecified)
                if not ring or ring[-1] != h:
                    ring.append(h)
                    owners.append(self.backends[i])
            self._ring_points, self._ring_owners = ring, owners

    def _points_of(self, name: str) -> list[int]:
        cached = self._point_cache.get(name)
        if cached is None:
            cached = self._point_cache[name] = nginx_chash_points(name, self.virtual_nodes)
        return cached

    @property
    def healthy(self) -> list[Backend]:
        """Backends in rotation, in configured order."""
        return list(self._healthy)

    # --- routing --------------------------------------------------------------------------
    def route(self, client: ClientKey) -> Backend | None:
        """The backend for ``client``'s next connection (None when no backend is healthy)."""
        self.routed += 1
        if not self._healthy:
            self.no_backend += 1
            return None
        return self._pick(client)

    def owner(self, client: ClientKey) -> Backend | None:
        """Where a keyed policy maps ``client`` now, without changing any state; None for policies
        without a key (round robin, least connections, random choices) and for an unpinned cookie."""
        if self.policy not in KEYED or not self._healthy:
            return None
        if self.policy == "sticky_cookie":
            pinned = self._cookies.get(client)
            return pinned if pinned is not None and pinned.healthy else None
        if self.policy == "ip_hash":
            return self._ip_hash_peer(client)  # None: NGINX would fall back to round robin
        if self.policy == "consistent_hash":
            return self._chash_peer(client)
        return self._pick(client)

    def owners(self, keys: ClientKeys) -> np.ndarray:
        """:meth:`owner` of every client at once: each one's backend index (``Backend.index``), -1 for None."""
        n_keys = len(keys)
        none = np.full(n_keys, -1, dtype=np.int64)
        if self.policy not in KEYED or not self._healthy:
            return none
        healthy = np.array([b.healthy for b in self.backends])
        if self.policy == "sticky_cookie":
            pinned = self._cookie_array if self._cookie_array is not None and self._cookie_keys is keys else none
            return np.where((pinned >= 0) & healthy[np.maximum(pinned, 0)], pinned, -1)
        if self.policy == "modulo_hash":
            index = np.array([b.index for b in self._healthy], dtype=np.int64)
            return index[keys.key_hash % np.uint64(len(index))]
        if self.policy == "ip_hash":
            n = len(self.backends)
            if n < 2:
                return none
            out, pending = none.copy(), np.ones(n_keys, dtype=bool)
            h = keys.ip_hash.copy()
            a, b, c = keys.octets
            for _ in range(_IP_PICKS):  # as _ip_hash_peer, on every client still looking
                peer = h % n
                found = pending & healthy[peer]
                out[found] = peer[found]
                pending &= ~found
                if not pending.any():
                    break
                h = (((h * _IP_MUL + a) % _IP_MOD * _IP_MUL + b) % _IP_MOD * _IP_MUL + c) % _IP_MOD
            return out
        # consistent_hash, as _chash_peer
        if len(self.backends) < 2:
            return none
        points = np.array(self._ring_points, dtype=np.int64)
        owner_index = np.array([b.index for b in self._ring_owners], dtype=np.int64)
        first = np.searchsorted(points, keys.key_crc32, side="left")
        out, pending = none.copy(), np.ones(n_keys, dtype=bool)
        for k in range(_CHASH_PICKS):
            b = owner_index[(first + k) % len(points)]
            found = pending & healthy[b]
            out[found] = b[found]
            pending &= ~found
            if not pending.any():
                break
        return out

    def route_batch(self, keys: ClientKeys, kinds: np.ndarray, clients: np.ndarray) -> np.ndarray:
        """Replay many connection events at once, in order, with nothing else happening in between
        (membership and health fixed): ``kinds[e]`` is :data:`OPEN` or :data:`REOPEN` (route
        ``clients[e]`` and count the connection open) or :data:`CLOSE` (its connection closes; it
        must have been opened in this batch). Returns each event's backend index; the balancer
        ends in the state the same :meth:`route`/:meth:`opened`/:meth:`closed` calls leave it in
        (the sticky cookies of this batch are kept for :meth:`owners`, not for :meth:`route`: a
        ``sticky_cookie`` balancer takes one batch, before any :meth:`route`)."""
        kinds = np.asarray(kinds)
        clients = np.asarray(clients, dtype=np.int64)
        healthy = self._healthy
        n = len(healthy)
        routing = kinds != CLOSE
        n_routes = int(routing.sum())
        self.routed += n_routes
        if not n:
            raise ValueError("route_batch needs a healthy backend")
        hidx = np.array([b.index for b in healthy], dtype=np.int64)
        policy = self.policy
        if policy == "sticky_cookie" and (self._cookies or self._cookie_array is not None):
            raise ValueError("route_batch: a sticky_cookie balancer takes one batch, before any route()")
        if policy in ("least_connections", "power_of_two") or (policy == "sticky_cookie" and self.fallback != "round_robin"):
            out = self._route_in_turn(keys, kinds, clients, hidx)
        else:
            routed_clients = clients[routing]
            if policy == "round_robin":
                picks = hidx[(self._rr + np.arange(n_routes)) % n]
                if n_routes:
                    self._rr = int((self._rr + n_routes - 1) % n) + 1
            elif policy == "random":
                picks = hidx[(self._uniform.samples(n_routes) * n).astype(np.int64)]
            elif policy == "modulo_hash":
                picks = hidx[keys.key_hash[routed_clients] % np.uint64(n)]
            elif policy == "sticky_cookie":  # the first route of a client is the fallback's, then its cookie
                _, first_at = np.unique(routed_clients, return_index=True)
                first = np.zeros(n_routes, dtype=bool)
                first[first_at] = True
                pinned = np.full(len(keys), -1, dtype=np.int64)
                pinned[routed_clients[first]] = self._round_robin_many(hidx, int(first.sum()))
                picks = pinned[routed_clients]
                self._cookie_array, self._cookie_keys = pinned, keys
            else:  # ip_hash, consistent_hash: the hashed pick, round robin where NGINX falls back
                picks = self.owners(keys)[routed_clients]
                fallback = picks < 0
                picks[fallback] = self._round_robin_many(hidx, int(fallback.sum()))
            out = np.empty(len(kinds), dtype=np.int64)
            out[routing] = picks
            # a close goes to the backend of the client's latest route before it
            order = np.argsort(clients, kind="stable")
            last = np.where(routing[order], np.arange(len(kinds)), -1)
            last = np.maximum.accumulate(last)  # per client: sorted runs start with that client's first event
            closes = ~routing[order]
            starts = np.r_[True, clients[order][1:] != clients[order][:-1]]
            run_start = np.maximum.accumulate(np.where(starts, np.arange(len(kinds)), 0))
            if (closes & (last < run_start)).any():
                raise ValueError("route_batch: a close for a client not opened in this batch")
            out[order[closes]] = out[order[last[closes]]]
            delta = np.bincount(out, weights=np.where(routing, 1, -1), minlength=len(self.backends))
            for b in healthy:
                b.active += int(delta[b.index])
        return out

    def _round_robin_many(self, hidx: np.ndarray, k: int) -> np.ndarray:
        """The next ``k`` round-robin picks (backend indices)."""
        n = len(hidx)
        picks = hidx[(self._rr % n + np.arange(k)) % n]
        if k:
            self._rr = int((self._rr % n + k - 1) % n) + 1
        return picks

    def _route_in_turn(self, keys: ClientKeys, kinds: np.ndarray, clients: np.ndarray, hidx: np.ndarray) -> np.ndarray:
        """route_batch one event at a time: for the policies whose pick depends on the loads."""
        healthy = self._healthy
        n = len(healthy)
        act = [b.active for b in healthy]
        where = [-1] * len(keys)
        objects: dict[int, ClientKey] = {}  # one ClientKey per client, so that its cookie finds it again
        out: list[int] = []
        append = out.append
        policy = self.policy
        if policy == "power_of_two":
            draws = iter(self._uniform.samples(2 * int((kinds != CLOSE).sum())).tolist())
        for kind, c in zip(kinds.tolist(), clients.tolist()):
            if kind == CLOSE:
                i = where[c]
                if i < 0:
                    raise ValueError("route_batch: a close for a client not opened in this batch")
                where[c] = -1
                act[i] -= 1
            else:
                if policy == "least_connections":
                    fewest = min(act)
                    start = self._rr % n
                    try:
                        i = act.index(fewest, start)
                    except ValueError:
                        i = act.index(fewest)
                    self._rr = i + 1
                elif policy == "power_of_two":
                    i = int(next(draws) * n)
                    j = int(next(draws) * n)
                    if act[j] < act[i]:
                        i = j
                else:  # sticky_cookie with another fallback, or cookies from before: the scalar path
                    key = objects.get(c)
                    if key is None:
                        key = objects[c] = keys.key(c)
                    for b, a in zip(healthy, act):  # the fallback may read the loads
                        b.active = a
                    b = self._pick(key)
                    i = healthy.index(b)
                act[i] += 1
                where[c] = i
            append(i)
        for b, a in zip(healthy, act):
            b.active = a
        if policy == "sticky_cookie":  # the cookies set, for owners()
            pinned = np.full(len(keys), -1, dtype=np.int64)
            for c, key in objects.items():
                pinned[c] = self._cookies[key].index
            self._cookie_array, self._cookie_keys = pinned, keys
            self._cookies.clear()  # keyed by objects nobody else holds
        return hidx[np.array(out, dtype=np.int64)]

    def opened(self, backend: Backend) -> None:
        """A connection routed to ``backend`` is open."""
        backend.active += 1

    def closed(self, backend: Backend) -> None:
        backend.active -= 1

    def _round_robin(self, client: ClientKey) -> Backend:
        healthy = self._healthy
        i = self._rr % len(healthy)
        self._rr = i + 1
        return healthy[i]

    def _least_connections(self, client: ClientKey) -> Backend:
        healthy = self._healthy
        loads = [b.active for b in healthy]
        fewest = min(loads)
        start = self._rr % len(healthy)
        try:  # the first least-loaded backend from the round-robin pointer on: ties go in turn, as in NGINX
            i = loads.index(fewest, start)
        except ValueError:
            i = loads.index(fewest)
        self._rr = i + 1
        return healthy[i]

    def _random(self, client: ClientKey) -> Backend:
        healthy = self._healthy
        return healthy[int(self._uniform.sample() * len(healthy))]

    def _power_of_two(self, client: ClientKey) -> Backend:
        healthy = self._healthy
        n = len(healthy)
        a = healthy[int(self._uniform.sample() * n)]
        b = healthy[int(self._uniform.sample() * n)]
        return b if b.active < a.active else a

    def _ip_hash_peer(self, client: ClientKey) -> Backend | None:
        """The hashed pick of ``ngx_http_upstream_get_ip_hash_peer``, or None where it falls back."""
        backends = self.backends
        n = len(backends)
        if n < 2:  # "peers->number < 2": straight to round robin
            return None
        h = client.ip_hash
        a, b, c = client.octets
        for _ in range(_IP_PICKS):
            peer = backends[h % n]  # total_weight counts down backends too (all weights 1 here)
            if peer.healthy:
                return peer
            h = (((h * _IP_MUL + a) % _IP_MOD * _IP_MUL + b) % _IP_MOD * _IP_MUL + c) % _IP_MOD
        return None

    def _ip_hash(self, client: ClientKey) -> Backend:
        peer = self._ip_hash_peer(client)
        return peer if peer is not None else self._round_robin(client)

    def _chash_peer(self, client: ClientKey) -> Backend | None:
        """The pick of ``ngx_http_upstream_get_chash_peer``, or None where it falls back."""
        points, owners = self._ring_points, self._ring_owners
        n = len(points)
        if len(self.backends) < 2:  # "peers->single": round robin
            return None
        i = bisect_left(points, client.key_crc32)  # first point >= the key's CRC32 (may be n: wraps)
        for k in range(_CHASH_PICKS):
            b = owners[(i + k) % n]
            if b.healthy:
                return b
        return None

    def _consistent_hash(self, client: ClientKey) -> Backend:
        peer = self._chash_peer(client)
        return peer if peer is not None else self._round_robin(client)

    def _modulo(self, client: ClientKey) -> Backend:
        healthy = self._healthy
        return healthy[client.key_hash % len(healthy)]

    def _sticky(self, client: ClientKey) -> Backend | None:
        pinned = self._cookies.get(client)
        if pinned is not None and pinned.healthy:
            return pinned
        chosen = self._fallback_pick(client)
        if chosen is not None:
            self._cookies[client] = chosen
        return chosen


class SessionStore:
    """An external session store (e.g. Redis): every node can fetch any session, one round trip each."""

    __slots__ = ("latency", "fetches", "_bound", "_sample")

    def __init__(self, ctx: Context, latency: Distribution, *, name: str = "session-store") -> None:
        if not isinstance(latency, Distribution):
            raise ParameterError("store_latency", f"must be a distribution, got {latency!r}")
        self.latency = latency
        self._bound = latency.bind(ctx.rng(f"{name}.latency"))
        self._sample = self._bound.sampler()
        self.fetches = 0

    def fetch(self) -> float:
        """Fetch one session; returns the round trip, in seconds."""
        self.fetches += 1
        return float(self._sample())

    def fetch_many(self, n: int) -> np.ndarray:
        """``n`` fetches in a row: the round trips :meth:`fetch` would return, in order."""
        self.fetches += n
        return self._bound.samples(n)


class Sessions:
    """Where each client's session state lives (see the module docstring).

    A session lives in the memory of the node that created or last fetched it. A client that
    reconnects to that node (still running) finds it; elsewhere it is ``fetched`` from the
    store when there is one, else ``lost`` and started afresh on the new node.
    """

    OUTCOMES = ("created", "kept", "fetched", "lost")

    def __init__(self, store: SessionStore | None = None) -> None:
        self.store = store
        self._where: dict[object, str] = {}
        self._alive: set[str] = set()
        self.counts = dict.fromkeys(self.OUTCOMES, 0)
        """How each :meth:`resume` ended."""

    def node_up(self, node: str) -> None:
        self._alive.add(node)

    def node_down(self, node: str) -> None:
        """The node's process is gone, and the sessions in its memory with it."""
        self._alive.discard(node)

    def resume(self, client: object, node: str) -> tuple[str, float]:
        """``client`` connected to ``node``: (outcome, seconds spent fetching the session)."""
        where = self._where.get(client)
        self._where[client] = node
        if where is None:
            outcome, delay = "created", 0.0
        elif where == node and node in self._alive:
            outcome, delay = "kept", 0.0
        elif self.store is not None:
            outcome, delay = "fetched", self.store.fetch()
        else:
            outcome, delay = "lost", 0.0
        self.counts[outcome] += 1
        return outcome, delay

    def resume_batch(self, clients: np.ndarray, nodes: np.ndarray, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`resume` for many connections in order, nodes fixed meanwhile: client numbers
        ``clients[e]`` connected to ``names[nodes[e]]``. Returns each one's outcome (an index into
        :data:`OUTCOMES`) and fetch time."""
        clients = np.asarray(clients, dtype=np.int64)
        nodes = np.asarray(nodes, dtype=np.int64)
        if self._where:  # earlier sessions: the per-connection rule, one at a time
            pairs = [self.resume(c, names[i]) for c, i in zip(clients.tolist(), nodes.tolist())]
            return (np.array([self.OUTCOMES.index(o) for o, _ in pairs], dtype=np.int64),
                    np.array([d for _, d in pairs], dtype=float))
        created, kept, fetched, lost = range(4)
        order = np.argsort(clients, kind="stable")  # each client's connections together, in order
        c, node = clients[order], nodes[order]
        first = np.r_[True, c[1:] != c[:-1]] if len(c) else np.zeros(0, dtype=bool)
        previous = np.r_[-1, node[:-1]] if len(c) else node
        alive = np.array([name in self._alive for name in names], dtype=bool)
        elsewhere = fetched if self.store is not None else lost
        sorted_outcome = np.where(first, created, np.where((previous == node) & alive[node], kept, elsewhere))
        outcome = np.empty_like(sorted_outcome)
        outcome[order] = sorted_outcome
        delays = np.zeros(len(clients))
        is_fetch = outcome == fetched
        if is_fetch.any():
            delays[is_fetch] = self.store.fetch_many(int(is_fetch.sum()))  # type: ignore[union-attr]
        for k, count in enumerate(np.bincount(outcome, minlength=4).tolist()):
            self.counts[self.OUTCOMES[k]] += count
        last = np.r_[c[1:] != c[:-1], True] if len(c) else first
        self._where.update(zip(c[last].tolist(), [names[i] for i in node[last].tolist()]))
        return outcome, delays

    def holder(self, client: object) -> str | None:
        """The node whose memory holds ``client``'s session (None if it has none)."""
        return self._where.get(client)


def max_load_theory(n: int) -> tuple[float, float]:
    """Balls into bins, n balls into n bins: the classic orders of the maximum load, (one random
    choice ≈ ln n / ln ln n, two choices ≈ ln ln n / ln 2) — leading terms only (Azar, Broder,
    Karlin & Upfal 1994; Mitzenmacher 1996), so compare shapes, not exact values."""
    if n < 3:
        return math.nan, math.nan
    ln = math.log(n)
    return ln / math.log(ln), math.log(ln) / math.log(2)
