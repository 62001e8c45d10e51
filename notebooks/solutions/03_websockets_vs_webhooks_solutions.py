"""Solutions to the exercises of ``notebooks/03_websockets_vs_webhooks.ipynb``.

Plain functions, so that tests can call them; each docstring says what it returns.
Run this file to print the answers: ``python notebooks/solutions/03_websockets_vs_webhooks_solutions.py``.
"""

from __future__ import annotations

import hashlib
import hmac

import sim
from sim.core import Constant


# --- Exercise 1: verify a Stripe-style signature ----------------------------------------------
def verify_signature(secret: bytes, header: str, body: bytes, now: float, tolerance: float = 300.0) -> bool:
    """True if ``header`` (``t=<unix ts>,v1=<hex>[,v1=...]``) signs the raw ``body`` with
    HMAC-SHA256 over ``"{t}.{body}"`` and ``t`` is not older than ``tolerance`` s at ``now``.
    Any ``v1`` may match (secret rotation); comparisons are constant-time; never raises."""
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        return False
    expected = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        return False
    return timestamp >= now - tolerance


# --- Exercise 2: the crossover rate -----------------------------------------------------------
#: The set-up of exercise 2: no outages, a constant latency, the default HTTPS set-up on a new connection per POST.
CROSSOVER = dict(events=200, outage_every=None, latency=Constant(0.05), http_keep_alive=None)  # a new connection per POST


def post_connection_seconds(seed: int = 1) -> float:
    """Connection-seconds one webhook POST holds at the provider (set-up, request, handler, answer),
    measured by the simulator at 1 event per second."""
    row = sim.run("push-vs-webhook", seed=seed, transport="webhook", event_rates=(1.0,), **CROSSOVER).summary.iloc[0]
    return float(row.connection_seconds_per_event)


def crossover_rate(seed: int = 1) -> float:
    """Events per second above which one persistent connection (held all the time: 1 / rate
    connection-seconds per event) holds less than one POST per event: 1 / (seconds per POST)."""
    return 1.0 / post_connection_seconds(seed)


# --- What the notebook's answer cells hold, by exercise (python -m sim grade's tests use it) ----------
def answers(exercise: str, seed: int = 1) -> dict:
    """The names the notebook's answer cells define for ``exercise`` (``"03.1"``), solved."""
    return {"03.1": lambda: {"my_verify": verify_signature},
            "03.2": lambda: {"my_crossover": crossover_rate(seed)}}[exercise]()


if __name__ == "__main__":
    print(f"Exercise 2: a POST holds {post_connection_seconds():.3f} s; crossover at {crossover_rate():.2f} events/s")
