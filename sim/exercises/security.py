"""Checks of notebook 02 (real-time security)."""

from __future__ import annotations

import base64

import numpy as np

from sim.components.security.limits import REJECTED, LimitReq
from sim.components.security.tokens import TokenIssuer
from sim.components.webhook import EPOCH
from sim.exercises import NOT_ANSWERED, call, close, exercise, not_yet, passed

AUDIENCE = "realtime-api"


def _jwt_cases(seed: int):
    import jwt

    iss = TokenIssuer("HS256", seed=seed)
    good = iss.issue("alice", "read:room-1", now=0.0, ttl=60)
    h, _, s = good.split(".")
    other = TokenIssuer("HS256", seed=seed + 1).issue("alice", "read:room-1", now=0.0, ttl=60)
    payload = base64.urlsafe_b64encode(b'{"sub":"mallory","aud":"realtime-api","exp":9999999999}').decode().rstrip("=")
    forged = f"{h}.{payload}.{s}"
    none_alg = jwt.encode({"sub": "m", "aud": AUDIENCE, "exp": EPOCH + 60}, None, algorithm="none")
    cases = [(good, EPOCH + 10, "accepted"), (good, EPOCH + 60, "expired"), (other, EPOCH + 10, "bad_signature"),
             (forged, EPOCH + 10, "bad_signature"), (none_alg, EPOCH + 10, "wrong_algorithm"),
             (iss.issue("alice", "read", 0.0, 60, audience="billing"), EPOCH + 10, "wrong_audience"),
             ("not.a-jwt", EPOCH, "malformed")]
    return iss.verification_key, cases


CASE_NAMES = ("a valid token", "a token at its exp", "another key's token", "a tampered payload",
              "alg none", "another audience", "a malformed token")


@exercise("02.1", "verify a JWT by hand", "my_verify, seed=SEED")
def verify_jwt(fn, seed=1):
    secret, cases = _jwt_cases(seed)
    got = [call(fn, tok, secret, now, AUDIENCE, name="my_verify") for tok, now, _ in cases]
    if all(g is None for g in got):
        raise not_yet(NOT_ANSWERED)
    wrong = [f"{name}: got {g!r}" for name, (_, _, want), g in zip(CASE_NAMES, cases, got) if g != want]
    if wrong:
        raise not_yet("; ".join(wrong))
    return passed("the same verdicts as PyJWT on valid, expired, forged, alg-none, wrong-audience and malformed tokens")


def _reference_smallest_burst(times, rate):
    burst = 0
    while True:
        lim = LimitReq(rate, burst=burst, nodelay=True)
        if all(lim.check("office", t)[0] != REJECTED for t in sorted(times)):
            return burst
        burst += 1


def _reference_last_delay(n, rate):
    lim = LimitReq(rate, burst=n)
    return max(lim.check("office", 0.0)[1] for _ in range(n))


@exercise("02.2", "size a limit_req burst", "my_smallest_burst, my_last_delay, seed=SEED")
def limit_req_burst(smallest, last_delay, seed=1):
    rng = np.random.default_rng(seed)
    cases = [([0.0] * 30, 5.0), (list(np.round(rng.uniform(0, 2, 40), 3)), 5.0), ([0.1 * k for k in range(20)], 10.0),
             (list(np.round(rng.exponential(0.05, 25).cumsum(), 3)), 2.0)]
    delay_cases = ((30, 5.0), (7, 2.0), (1, 1.0))
    got = [call(smallest, t, r, name="my_smallest_burst") for t, r in cases]
    delays = [call(last_delay, n, r, name="my_last_delay") for n, r in delay_cases]
    if all(g is None for g in got + delays):
        raise not_yet(NOT_ANSWERED)
    parts, ok = [], True
    want = [_reference_smallest_burst(t, r) for t, r in cases]
    if got == want:
        parts.append("bursts right")
    else:
        ok = False
        k = next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)
        parts.append(f"bursts not yet (case {k + 1}: {len(cases[k][0])} handshakes at {cases[k][1]:g} r/s, "
                     f"you say {got[k]!r}; check it with LimitReq)")
    wrong = [(n, r) for d, (n, r) in zip(delays, delay_cases) if not close(d, _reference_last_delay(n, r))]
    if not wrong:
        parts.append("delays right")
    else:
        ok = False
        parts.append(f"delays not yet (for n = {wrong[0][0]} at {wrong[0][1]:g} r/s)")
    if ok:
        return passed("; ".join(parts))
    raise not_yet("; ".join(parts))


