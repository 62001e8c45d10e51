"""Signed client events with a replay window: HMAC + timestamp + nonce.

The signature is the Stripe scheme already used for webhooks (:func:`sim.components.webhook.sign`
and :func:`~sim.components.webhook.verify`: HMAC-SHA256 over ``"{t}.{raw body}"``, constant-time
comparison, several ``v1`` accepted during a key rotation). A signature alone proves *who* made
the bytes and that they were not changed, not that they are new: a copy sent again is still
validly signed. Two checks close that gap:

* the **timestamp** must be within ``tolerance`` seconds of the receiver's clock (Stripe: 300 s,
  and only old timestamps are refused; here future ones too, so that a pre-dated copy cannot
  outlive the nonce cache);
* the **nonce** (the event id, inside the signed body) must not have been seen within the window.
  The cache keeps each nonce until its timestamp leaves the window, so it holds at most the
  events of ``2 * tolerance`` seconds, and anything older is refused as stale, not as a replay.
"""

from __future__ import annotations

import heapq
import json

from sim.components import webhook
from sim.components.webhook import EPOCH
from sim.core.errors import ParameterError

ACCEPTED, BAD_SIGNATURE, STALE, REPLAYED = "accepted", "bad_signature", "stale", "replayed"
OUTCOMES = (ACCEPTED, BAD_SIGNATURE, STALE, REPLAYED)


def event_body(nonce: str, sender: str, channel: str, data) -> bytes:
    """The raw bytes that are signed: canonical JSON (sorted keys, no spaces)."""
    return json.dumps({"id": nonce, "sender": sender, "channel": channel, "data": data},
                      sort_keys=True, separators=(",", ":")).encode()


def sign_event(secret: bytes, now: float, body: bytes) -> str:
    """The signature header for ``body`` sent at simulated time ``now``."""
    return webhook.sign(secret, EPOCH + int(now), body)


class ReplayGuard:
    """Verifies signed events at simulated time ``now``; see the module docstring."""

    def __init__(self, secret: bytes, tolerance: float = webhook.DEFAULT_TOLERANCE, *, use_nonces: bool = True) -> None:
        if not (isinstance(tolerance, (int, float)) and tolerance >= 0):
            raise ParameterError("tolerance", f"must be seconds >= 0, got {tolerance!r}")
        self.secret = secret
        self.tolerance = float(tolerance)
        self.use_nonces = use_nonces
        """False: signature and timestamp only (what a webhook receiver without dedupe checks)."""
        self._seen: set[str] = set()
        self._expiry: list[tuple[float, str]] = []
        self.outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)

    def check(self, header: str, body: bytes, now: float) -> str:
        """One of :data:`OUTCOMES` for this event, received at simulated ``now``."""
        outcome = self._check(header, body, now)
        self.outcomes[outcome] += 1
        return outcome

    def _check(self, header: str, body: bytes, now: float) -> str:
        unix_now = EPOCH + now
        self._purge(unix_now)
        status = webhook.verify(self.secret, header, body, unix_now, self.tolerance)
        if status == webhook.BAD_SIGNATURE:
            return BAD_SIGNATURE
        if status == webhook.STALE:
            return STALE
        t = _timestamp(header)
        if t > unix_now + self.tolerance:
            return STALE
        if not self.use_nonces:
            return ACCEPTED
        try:
            nonce = str(json.loads(body)["id"])
        except (ValueError, KeyError, TypeError):
            return BAD_SIGNATURE  # signed, but not an event this receiver understands
        if nonce in self._seen:
            return REPLAYED
        self._seen.add(nonce)
        heapq.heappush(self._expiry, (t + self.tolerance, nonce))
        return ACCEPTED

    def _purge(self, unix_now: float) -> None:
        # a nonce may go once its timestamp is out of the window: a copy would be refused as stale
        while self._expiry and self._expiry[0][0] < unix_now:
            _, nonce = heapq.heappop(self._expiry)
            self._seen.discard(nonce)

    @property
    def cached_nonces(self) -> int:
        return len(self._seen)


def _timestamp(header: str) -> int:
    for item in header.split(","):
        key, _, value = item.partition("=")
        if key == "t":
            return int(value)
    raise ValueError("no timestamp")  # verify() has already refused such a header
