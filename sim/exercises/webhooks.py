"""Checks of notebook 03 (WebSockets vs webhooks)."""

from __future__ import annotations

import sim
from sim.components.webhook import EPOCH, OK, derive_secret, sign, verify
from sim.core import Constant
from sim.exercises import NOT_ANSWERED, call, exercise, is_number, not_yet, passed

#: Exercise 2's set-up: no outages, a constant latency, the default HTTPS set-up on a new connection per POST.
EX2 = dict(events=200, outage_every=None, latency=Constant(0.05), http_keep_alive=None)


@exercise("03.1", "verify a signature", "my_verify, seed=SEED")
def verify_signature(fn, seed=1):
    key = derive_secret(seed)
    body = b'{"id":"evt_7","type":"push"}'
    good = sign(key, EPOCH, body)
    other_key = sign(derive_secret(seed + 1), EPOCH, body)
    cases = [("a valid header", good, body, EPOCH + 5), ("a stale header", good, body, EPOCH + 301),
             ("a tampered body", good, body + b"!", EPOCH),
             ("a rotated secret (two v1)", good + "," + other_key.split(",")[1], body, EPOCH),
             ("another key", other_key, body, EPOCH), ("a malformed header", "t=oops", body, EPOCH),
             ("an empty header", "", body, EPOCH)]
    answers = [call(fn, key, h, b, now, name="my_verify") for _, h, b, now in cases]
    if all(a is None for a in answers):
        raise not_yet(NOT_ANSWERED)
    for (name, h, b, now), a in zip(cases, answers):
        if a is not (verify(key, h, b, now) == OK):
            raise not_yet(f"{name}: got {a!r} (the answer is True or False)")
    return passed("valid, stale, tampered, rotated, wrong-key and malformed headers all handled")


def connection_seconds_per_event(transport: str, rate: float, seed: int) -> float:
    return float(sim.run("push-vs-webhook", seed=seed, transport=transport, event_rates=(rate,),
                         **EX2).summary.connection_seconds_per_event.iloc[0])


@exercise("03.2", "the crossover rate", "my_crossover, seed=SEED")
def crossover(rate, seed=1):
    if rate is None:
        raise not_yet(NOT_ANSWERED)
    if not is_number(rate):
        raise not_yet(f"expected a number of events per second, got {rate!r}")
    rate = float(rate)
    if not rate > 0:
        raise not_yet(f"a rate must be > 0, got {rate}")
    below = connection_seconds_per_event("websocket", rate / 2, seed) > connection_seconds_per_event("webhook", rate / 2, seed)
    above = connection_seconds_per_event("websocket", rate * 2, seed) < connection_seconds_per_event("webhook", rate * 2, seed)
    text = (f"at {rate / 2:.3g}/s the webhook is {'cheaper' if below else 'NOT cheaper'}, "
            f"at {rate * 2:.3g}/s the WebSocket is {'cheaper' if above else 'NOT cheaper'}")
    if below and above:
        return passed(text)
    raise not_yet(text)
