"""The solutions of notebook 02 (security) give the right answers."""

import jwt
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sim.components.security.limits import LimitReq
from sim.components.security.tokens import ACCEPTED, TokenIssuer, TokenVerifier
from sim.components.webhook import EPOCH

SEED = 20261124


@pytest.fixture(scope="module")
def q2(load_solutions):
    return load_solutions("02_security_solutions")


# --- exercise 1 ----------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(ttl=st.integers(1, 600), age=st.integers(0, 1200), tamper=st.sampled_from(["none", "sig", "body", "key", "aud"]))
def test_hand_verification_agrees_with_pyjwt(q2, ttl, age, tamper):
    iss = TokenIssuer("HS256", seed=SEED)
    token = iss.issue("alice", "read", now=0.0, ttl=ttl, audience="billing" if tamper == "aud" else None)
    if tamper == "key":
        token = TokenIssuer("HS256", seed=SEED + 1).issue("alice", "read", now=0.0, ttl=ttl)
    elif tamper == "sig":
        h, p, s = token.split(".")
        token = f"{h}.{p}.{s[::-1]}"
    elif tamper == "body":
        h, p, s = token.split(".")
        forged = jwt.utils.base64url_encode(b'{"sub":"mallory"}').decode()
        token = f"{h}.{forged}.{s}"
    mine = q2.verify_hs256(token, iss.verification_key, EPOCH + age, "realtime-api")
    theirs, _ = TokenVerifier(iss.verification_key, "HS256").check(token, float(age))
    assert (mine == "accepted") == (theirs == ACCEPTED)
    if theirs != ACCEPTED:
        assert mine in ("malformed", "bad_signature", "wrong_audience", "expired", "wrong_algorithm")


def test_hand_verification_refuses_alg_none_and_garbage(q2):
    unsigned = jwt.encode({"sub": "m", "aud": "realtime-api", "exp": EPOCH + 60}, None, algorithm="none")
    assert q2.verify_hs256(unsigned, b"k", EPOCH, "realtime-api") == "wrong_algorithm"
    assert q2.verify_hs256("a.b", b"k", EPOCH, "realtime-api") == "malformed"
    assert q2.verify_hs256("!!.??.**", b"k", EPOCH, "realtime-api") == "malformed"


# --- exercise 2 ----------------------------------------------------------------------------------
@settings(max_examples=80, deadline=None)
@given(rate=st.sampled_from([0.5, 1.0, 2.0, 5.0, 10.0]),
       gaps=st.lists(st.integers(0, 800), min_size=1, max_size=40))
def test_the_burst_formula_equals_the_search_with_limit_req(q2, rate, gaps):
    times = list(np.cumsum(gaps) / 1000.0)
    assert q2.smallest_burst(times, rate) == q2.smallest_burst_by_search(times, rate)


def test_same_instant_needs_n_minus_one(q2):
    assert q2.smallest_burst([0.0] * 30, 5.0) == 29


@pytest.mark.parametrize("n,rate", [(30, 5.0), (7, 2.0), (1, 1.0), (12, 3.0)])
def test_last_delay_is_what_limit_req_answers(q2, n, rate):
    lim = LimitReq(rate, burst=n)
    delays = [lim.check("office", 0.0)[1] for _ in range(n)]
    assert q2.last_delay(n, rate) == pytest.approx(max(delays))
    assert q2.last_delay(n, rate) == pytest.approx((n - 1) / rate, abs=1e-3)
