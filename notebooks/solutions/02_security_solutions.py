"""Solutions to the exercises of ``notebooks/02_security.ipynb``.

Plain functions, so that tests can call them; each docstring says what it returns.
Run this file to print the answers: ``python notebooks/solutions/02_security_solutions.py``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from sim.components.security.limits import REJECTED, LimitReq


# --- Exercise 1: verify a JWT by hand -------------------------------------------------------------
def b64url_decode(part: str) -> bytes:
    """Base64url without padding (RFC 7515 §2) -> bytes; raises ValueError when it is not base64url."""
    if not isinstance(part, str) or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                                        for c in part):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verify_hs256(token: str, secret: bytes, now: float, audience: str) -> str:
    """``"accepted"`` or the first reason among malformed, wrong_algorithm, bad_signature,
    wrong_audience, expired, for an HS256 JWT at Unix time ``now``."""
    try:
        head_b64, payload_b64, sig_b64 = token.split(".")
        header = json.loads(b64url_decode(head_b64))
        payload = json.loads(b64url_decode(payload_b64))
        signature = b64url_decode(sig_b64)
    except (ValueError, AttributeError):
        return "malformed"
    if not isinstance(header, dict) or not isinstance(payload, dict):
        return "malformed"
    if header.get("alg") != "HS256":  # never trust the token to choose the algorithm
        return "wrong_algorithm"
    expected = hmac.new(secret, f"{head_b64}.{payload_b64}".encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        return "bad_signature"
    aud = payload.get("aud")
    if not (aud == audience or (isinstance(aud, list) and audience in aud)):
        return "wrong_audience"
    exp = payload.get("exp")
    if not isinstance(exp, (int, float)) or now >= exp:  # RFC 7519 4.1.4: not accepted on or after exp
        return "expired"
    return "accepted"


# --- Exercise 2: size a limit_req burst -----------------------------------------------------------
def smallest_burst(times: list[float], rate: float) -> int:
    """The smallest ``burst`` (with ``nodelay``) for which ``limit_req rate=rate`` refuses none of
    the handshakes at ``times`` from one address.

    By hand: with nodelay the bucket level after request k is
    ``e_k = max(0, e_{k-1} - rate * gap_ms // 1000 + 1000)`` (e_0 = 0 for the first request), and
    a request is refused when its level exceeds ``burst * 1000``; refused requests do not add to
    the level, so with no refusal the levels are fixed by the times alone, and the smallest burst
    is ``ceil(max_k e_k / 1000)``.
    """
    ordered = sorted(times)
    milli = round(rate * 1000)
    level, last, peak = 0, None, 0
    for t in ordered:
        now = int(t * 1000 + 1e-9)
        if last is not None:
            ms = max(0, now - last)
            level = max(0, level - milli * ms // 1000 + 1000)
            if ms:
                last = now
        else:
            last = now
        peak = max(peak, level)
    return -(-peak // 1000)


def smallest_burst_by_search(times: list[float], rate: float) -> int:
    """The same answer found by trying bursts 0, 1, 2, ... with the simulator's ``LimitReq``."""
    burst = 0
    while True:
        lim = LimitReq(rate, burst=burst, nodelay=True)
        if all(lim.check("office", t)[0] != REJECTED for t in sorted(times)):
            return burst
        burst += 1


def last_delay(n: int, rate: float) -> float:
    """Without ``nodelay`` and with a burst large enough, ``n`` handshakes in the same millisecond:
    the k-th (k = 0 first) has excess ``k * 1000`` and waits ``k * 1000 * 1000 // rate_milli`` ms, so
    the last waits ``(n - 1) / rate`` seconds (to the millisecond)."""
    milli = round(rate * 1000)
    return ((n - 1) * 1000 * 1000 // milli) / 1000


# --- What the notebook's answer cells hold, by exercise (python -m sim grade's tests use it) ----------
def answers(exercise: str, seed: int = 1) -> dict:
    """The names the notebook's answer cells define for ``exercise`` (``"02.1"``), solved."""
    return {"02.1": {"my_verify": verify_hs256},
            "02.2": {"my_smallest_burst": smallest_burst, "my_last_delay": last_delay}}[exercise]


if __name__ == "__main__":
    print("smallest burst, 30 handshakes at once, 5 r/s:", smallest_burst([0.0] * 30, 5.0))
    print("last delay, 30 handshakes at once, 5 r/s, no nodelay:", last_delay(30, 5.0), "s")
