"""Who is on each connection, and for how long that stays true (course question 2B).

« Chaque connexion temps réel doit être liée à une identité authentifiée » — and identities
change while connections stay open. The pieces:

* :class:`PermissionStore` — the truth: which scopes each user holds right now (a role revoked
  at ``t`` is gone from here at ``t``);
* :class:`IdentityProvider` — issues real JWTs (:class:`~sim.components.security.tokens.TokenIssuer`)
  with the scopes the store holds *when the token is issued*; a token issued before a revocation
  still carries the revoked scope until it expires;
* :class:`SessionAuthority` — the server side, plugged in as the server's ``gate``: it verifies
  the token of each handshake and keeps the connection's claims, then applies one of
  :data:`POLICIES` to decide whether a message may still go to that connection:

  - ``connect_only``: the claims read at the handshake, for the connection's whole life;
  - ``token_expiry``: the connection must present a fresh token before its token expires
    (re-authentication over the socket); the fresh token carries the scopes of that moment;
    a connection whose token expires without a refresh is closed (1008, policy violation);
  - ``per_message``: every delivery asks the store (one check per message per recipient);
  - ``push``: the store pushes each change to the servers, which downgrade (or close) the
    affected connections ``push_delay`` seconds later.

  With ``per_message`` and ``push`` the handshake also asks the store, so a token issued before
  a revocation cannot bring the scope back on a reconnection; ``connect_only`` and
  ``token_expiry`` trust the (stateless) token alone.

Counts (``checks``) are what each policy costs: token verifications, store lookups and pushed
changes handled.
"""

from __future__ import annotations

from typing import Any

import simpy

from sim.components.security.tokens import ACCEPTED, Claims, TokenIssuer, TokenVerifier
from sim.components.server import Server
from sim.core.context import Context
from sim.core.errors import ParameterError

POLICIES = ("connect_only", "token_expiry", "per_message", "push")
POLICY_VIOLATION = 1008
"""RFC 6455 close code: the endpoint received a message that violates its policy."""
AUTH = "auth"
"""Data frame ``(AUTH, token)``: a client re-authenticates on its open connection."""


class PermissionStore:
    """Scopes per user, right now (a database or the identity provider's view)."""

    def __init__(self) -> None:
        self.scopes: dict[str, set[str]] = {}
        self.lookups = 0
        self.subscribers: list = []
        """Called as ``f(user, scope)`` on each revocation (the push channel)."""

    def grant(self, user: str, *scopes: str) -> None:
        self.scopes.setdefault(user, set()).update(scopes)

    def revoke(self, user: str, scope: str) -> None:
        self.scopes.get(user, set()).discard(scope)
        for f in self.subscribers:
            f(user, scope)

    def allows(self, user: str, scope: str) -> bool:
        """A lookup (counted): does ``user`` hold ``scope`` now?"""
        self.lookups += 1
        return scope in self.scopes.get(user, ())

    def current(self, user: str) -> tuple[str, ...]:
        return tuple(sorted(self.scopes.get(user, ())))


class IdentityProvider:
    """Issues tokens with the store's scopes of the moment, valid ``ttl`` seconds."""

    def __init__(self, issuer: TokenIssuer, store: PermissionStore, ttl: float) -> None:
        if not ttl > 0:
            raise ParameterError("token_ttl", f"must be seconds > 0, got {ttl!r}")
        self.issuer = issuer
        self.store = store
        self.ttl = ttl

    def token_for(self, user: str, now: float) -> str:
        return self.issuer.issue(user, self.store.current(user), now, self.ttl)


class SessionAuthority:
    """The server's record of who is on each connection; a gate (see :data:`sim.components.server.HOLD`)."""

    def __init__(self, ctx: Context, verifier: TokenVerifier, store: PermissionStore, policy: str, *,
                 push_delay: float = 0.5, push_action: str = "downgrade") -> None:
        if policy not in POLICIES:
            raise ParameterError("policy", f"must be one of {', '.join(POLICIES)}, got {policy!r}")
        if push_action not in ("downgrade", "disconnect"):
            raise ParameterError("push_action", f"must be downgrade or disconnect, got {push_action!r}")
        if not push_delay >= 0:
            raise ParameterError("push_delay", f"must be seconds >= 0, got {push_delay!r}")
        self.ctx, self.env = ctx, ctx.env
        self.verifier = verifier
        self.store = store
        self.policy = policy
        self.push_delay = float(push_delay)
        self.push_action = push_action
        self.sessions: dict[str, Claims] = {}
        """Claims of each open connection, by client name."""
        self._pending: dict[str, Claims] = {}
        self.pushes_handled = 0
        self.servers: list[Server] = []
        if policy == "push":
            store.subscribers.append(self._on_revoke)

    # --- gate protocol -----------------------------------------------------------------------
    def admit(self, server: Server, client: str, data: Any) -> Any:
        if server not in self.servers:
            self.servers.append(server)
        token = (data or {}).get("token")
        reason, claims = self.verifier.check(token, self.env.now)
        if reason != ACCEPTED:
            return "auth_401"
        if self.policy in ("per_message", "push"):
            # a server that has the store at hand asks it at the handshake too: a token issued
            # before a revocation must not bring the revoked scope back on a reconnection
            held = {sc for sc in claims.scopes if self.store.allows(claims.sub, sc)}
            claims = Claims(claims.sub, frozenset(held), claims.exp, claims.iat)
        self._pending[client] = claims
        return None

    def opened(self, server: Server, client: str) -> None:
        claims = self._pending.pop(client)
        self.sessions[client] = claims
        if self.policy == "token_expiry":
            self._arm_expiry(server, client, claims)

    def refused(self, server: Server, client: str, result: str) -> None:
        self._pending.pop(client, None)

    def closed(self, server: Server, client: str) -> None:
        self.sessions.pop(client, None)

    def activity(self, server: Server, client: str) -> None:
        pass

    # --- during the session --------------------------------------------------------------------
    def reauthenticate(self, server: Server, client: str, token: str) -> bool:
        """A fresh token on an open connection (``token_expiry``); False (and closed 1008) if refused."""
        if client not in self.sessions:
            return False
        reason, claims = self.verifier.check(token, self.env.now)
        if reason != ACCEPTED or claims.sub != self.sessions[client].sub:
            server.close(client, POLICY_VIOLATION)
            return False
        self.sessions[client] = claims
        if self.policy == "token_expiry":
            self._arm_expiry(server, client, claims)
        return True

    def may_receive(self, client: str, scope: str) -> bool:
        """May the connection ``client`` still get a message that needs ``scope``?"""
        claims = self.sessions.get(client)
        if claims is None:
            return False
        if self.policy == "per_message":
            return self.store.allows(claims.sub, scope)
        return scope in claims.scopes

    @property
    def checks(self) -> int:
        """Authorisation work done: token verifications, store lookups and pushed changes handled."""
        return self.verifier.checks + self.store.lookups + self.pushes_handled

    def _arm_expiry(self, server: Server, client: str, claims: Claims) -> None:
        timer = self.env.timeout(max(0.0, claims.exp - self.env.now), (server, client, claims))
        timer.callbacks.append(self._expired)

    def _expired(self, event: simpy.Event) -> None:
        server, client, claims = event.value
        if self.sessions.get(client) is claims:  # not refreshed since: the token ran out
            server.close(client, POLICY_VIOLATION)

    def _on_revoke(self, user: str, scope: str) -> None:
        def apply(_event: simpy.Event) -> None:
            for client, claims in list(self.sessions.items()):
                if claims.sub != user or scope not in claims.scopes:
                    continue
                self.pushes_handled += 1
                if self.push_action == "disconnect":
                    for server in self.servers:
                        server.close(client, POLICY_VIOLATION)
                    self.sessions.pop(client, None)
                else:
                    self.sessions[client] = Claims(claims.sub, claims.scopes - {scope}, claims.exp, claims.iat)

        self.env.timeout(self.push_delay).callbacks.append(apply)
