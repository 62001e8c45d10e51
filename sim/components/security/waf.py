"""An AWS WAF rate-based rule: count each key's requests over a look-back window, block the
keys above the limit, with the delays AWS documents (numbers and sources in ``data/security.json``).

* **evaluation window** (60, 120, 300 or 600 s; 300 by default): how far back each check looks,
  not how often WAF checks;
* **rate limit** (at least 10): requests per window per aggregation key (the client IP by
  default); above it, the rule's action (block) applies to the key's further requests;
* **approximate, delayed enforcement**: WAF "checks the rate frequently", estimates it, and "it's
  possible for requests to be coming in at too high a rate for up to several minutes before AWS
  WAF detects and rate limits them ... Usually, this delay is below 30 seconds"; the same delay
  applies when the rate falls back under the limit.

Model (an assumption, marked as such in the data file): every ``check_interval_s`` the rule
counts each key's requests in the last ``window_s`` exactly; its decision (block or unblock)
takes effect ``propagation_delay_s`` later. Blocked requests are still counted, as AWS counts
every request that matches the rule's scope.
"""

from __future__ import annotations

from collections import deque
from typing import Hashable

import simpy

from sim import data
from sim.core.errors import ParameterError


def presets() -> dict:
    """``data/security.json``'s WAF entries."""
    d = data.load("security")
    return {"aws": d["aws_waf_rate_based"], "model": d["waf_model"]}


class RateBasedRule:
    """One rate-based rule with aggregation on a key (the client IP), in simulated time."""

    def __init__(self, env: simpy.Environment, limit: int, *, window_s: float | None = None,
                 check_interval_s: float | None = None, propagation_delay_s: float | None = None) -> None:
        p = presets()
        aws, model = p["aws"], p["model"]
        window_s = aws["default_evaluation_window_s"] if window_s is None else window_s
        if window_s not in aws["evaluation_windows_s"]:
            allowed = ", ".join(str(w) for w in aws["evaluation_windows_s"])
            raise ParameterError("waf_window", f"must be one of {allowed} s (AWS WAF's evaluation windows), got {window_s!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < aws["minimum_limit"]:
            raise ParameterError("waf_limit", f"must be an integer >= {aws['minimum_limit']} (AWS WAF's lowest), got {limit!r}")
        self.env = env
        self.limit = limit
        self.window_s = float(window_s)
        self.check_interval_s = float(model["check_interval_s"] if check_interval_s is None else check_interval_s)
        self.propagation_delay_s = float(model["propagation_delay_s"] if propagation_delay_s is None
                                         else propagation_delay_s)
        if not self.check_interval_s > 0:
            raise ParameterError("waf_check_interval", f"must be seconds > 0, got {check_interval_s!r}")
        if not self.propagation_delay_s >= 0:
            raise ParameterError("waf_propagation_delay", f"must be seconds >= 0, got {propagation_delay_s!r}")
        self._seen: dict[Hashable, deque[float]] = {}
        self.blocked: set[Hashable] = set()
        """Keys whose requests the rule blocks right now."""
        self.requests = self.blocked_requests = 0
        self.block_events: list[tuple[float, Hashable, bool]] = []
        """``(time, key, blocked?)`` each time a decision took effect."""
        env.process(self._checker(env))

    def request(self, key: Hashable) -> bool:
        """Count one request of ``key`` now; True if it may pass, False if the rule blocks it."""
        self.requests += 1
        q = self._seen.get(key)
        if q is None:
            q = self._seen[key] = deque()
        q.append(self.env.now)
        if key in self.blocked:
            self.blocked_requests += 1
            return False
        return True

    def count(self, key: Hashable) -> int:
        """Requests of ``key`` in the window ending now (what a check sees)."""
        q = self._seen.get(key)
        if not q:
            return 0
        start = self.env.now - self.window_s
        while q and q[0] <= start:
            q.popleft()
        return len(q)

    def _checker(self, env: simpy.Environment):
        while True:
            yield env.timeout(self.check_interval_s)
            over = {k for k in list(self._seen) if self.count(k) > self.limit}
            for k in [k for k, q in self._seen.items() if not q]:
                del self._seen[k]
            to_block, to_unblock = over - self.blocked, self.blocked - over
            if to_block or to_unblock:
                decision = (sorted(to_block, key=str), sorted(to_unblock, key=str))
                if self.propagation_delay_s:
                    env.timeout(self.propagation_delay_s, decision).callbacks.append(self._apply)
                else:
                    self._apply_now(*decision)

    def _apply(self, event: simpy.Event) -> None:
        self._apply_now(*event.value)

    def _apply_now(self, block: list, unblock: list) -> None:
        now = self.env.now
        for k in block:
            if k not in self.blocked:
                self.blocked.add(k)
                self.block_events.append((now, k, True))
        for k in unblock:
            if k in self.blocked:
                self.blocked.discard(k)
                self.block_events.append((now, k, False))
