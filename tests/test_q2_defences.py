"""The defences of question 2 against their real systems' documented behaviour.

limit_req sequences are computed by hand from ngx_http_limit_req_module.c (excess in
milli-requests, millisecond clock): see the comments next to each expected list.
"""

import jwt
import pytest
from hypothesis import given, settings, strategies as st

from sim.components.security.limits import DELAYED, PASSED, REJECTED, LimitConn, LimitReq, limit_req, parse_rate
from sim.components.security.replay import ACCEPTED, BAD_SIGNATURE, REPLAYED, STALE, ReplayGuard, event_body, \
    sign_event
from sim.components.security.tokens import ACCEPTED as TOKEN_OK, TokenIssuer, TokenVerifier
from sim.components.security.waf import RateBasedRule
from sim.components.webhook import EPOCH
from sim.core import Context, ParameterError


def run(limit, times, key="1.2.3.4"):
    return [limit.check(key, t) for t in times]


# --- limit_req ---------------------------------------------------------------------------------
def test_rates_are_stored_in_milli_requests_per_second():
    assert parse_rate("1r/s") == 1000
    assert parse_rate("10r/s") == 10_000
    assert parse_rate("30r/m") == 500  # the documentation's "30r/m = 0.5 r/s"
    assert parse_rate("1r/m") == 16  # integer division: 1000 / 60
    assert parse_rate(2.5) == 2500
    for bad in ("0r/s", "10 r/h", "fast", -1, 0, float("nan")):
        with pytest.raises(ParameterError):
            parse_rate(bad)


def test_burst_zero_rejects_anything_sooner_than_one_over_the_rate():
    # 1r/s, burst 0: t=0 new key (excess 0); t=0.5: 0 - 500 + 1000 = 500 > 0 rejected (state kept);
    # t=1.0: 0 - 1000 + 1000 = 0 passes; t=1.999: 0 - 999 + 1000 = 1 > 0 rejected (millisecond clock);
    # t=2.0: passes.
    got = run(LimitReq("1r/s"), [0, 0.5, 1.0, 1.999, 2.0])
    assert [o for o, _ in got] == [PASSED, REJECTED, PASSED, REJECTED, PASSED]


def test_burst_delays_the_excess_then_rejects():
    # 1r/s burst=5, ten requests in the same millisecond: the first passes (new key), the next five
    # have excess 1000..5000 and wait excess * 1000 / rate ms = 1..5 s, the rest exceed 5000.
    lim = LimitReq("1r/s", burst=5)
    got = run(lim, [0.0] * 10)
    assert [o for o, _ in got] == [PASSED] + [DELAYED] * 5 + [REJECTED] * 4
    assert [d for _, d in got] == [0, 1, 2, 3, 4, 5, 0, 0, 0, 0]
    assert (lim.passed, lim.delayed, lim.rejected) == (1, 5, 4)


def test_nodelay_forwards_the_burst_at_once_and_slots_refill_at_the_rate():
    # same burst with nodelay: six pass at once (excess 0..5000), the rest are rejected; at t=1 s
    # excess = 5000 - 1000 + 1000 = 5000 passes; at t=1.5 s 5000 - 500 + 1000 = 5500 is rejected;
    # at t=4 s 5000 - 3000 + 1000 = 3000 passes.
    lim = LimitReq("1r/s", burst=5, nodelay=True)
    got = run(lim, [0.0] * 8 + [1.0, 1.5, 4.0])
    assert [o for o, _ in got] == [PASSED] * 6 + [REJECTED] * 2 + [PASSED, REJECTED, PASSED]
    assert all(d == 0 for _, d in got)


def test_delay_n_is_two_stage():
    # burst=5 delay=2: excess 1000 and 2000 pass undelayed, 3000..5000 wait (excess - 2000) ms * 1000 / rate
    got = run(LimitReq("1r/s", burst=5, delay=2), [0.0] * 7)
    assert [o for o, _ in got] == [PASSED, PASSED, PASSED, DELAYED, DELAYED, DELAYED, REJECTED]
    assert [d for _, d in got] == [0, 0, 0, 1, 2, 3, 0]


def test_rate_per_minute():
    # 30r/m = 500 milli-requests/s: t=0 passes, t=2: 0 - 1000 + 1000 = 0 passes, t=3: 500 > 0 rejected
    got = run(LimitReq("30r/m"), [0.0, 2.0, 3.0])
    assert [o for o, _ in got] == [PASSED, PASSED, REJECTED]


def test_keys_have_their_own_buckets():
    lim = LimitReq("1r/s")
    assert lim.check("a", 0.0)[0] == PASSED
    assert lim.check("b", 0.0)[0] == PASSED
    assert lim.check("a", 0.1)[0] == REJECTED


def test_several_limits_reject_without_updating_any_zone():
    per_ip = LimitReq("1r/s", burst=1, nodelay=True)
    per_server = LimitReq("2r/s", burst=0)
    # t=0: both new -> pass; t=0.001: per_ip excess 999 <= 1000 ok, per_server 2000*1//1000 = 2 ->
    # 0 - 2 + 1000 = 998 > 0 -> rejected, and per_ip must not have kept its 999
    assert limit_req([(per_ip, "ip"), (per_server, "srv")], 0.0)[0] == PASSED
    assert limit_req([(per_ip, "ip"), (per_server, "srv")], 0.001)[0] == REJECTED
    assert per_ip.nodes["ip"].excess == 0 and per_ip.nodes["ip"].last == 0
    # t=0.5: per_server 0 - 1000 + 1000 = 0 ok; per_ip 0 - 500 + 1000 = 500 within its burst
    assert limit_req([(per_ip, "ip"), (per_server, "srv")], 0.5)[0] == PASSED
    assert per_ip.nodes["ip"].excess == 500


def test_describe_reads_like_nginx_conf():
    assert LimitReq("10r/s", burst=20, nodelay=True).describe() == "limit_req rate=10r/s burst=20 nodelay"
    assert LimitReq("30r/m", burst=5, delay=2).describe() == "limit_req rate=30r/m burst=5 delay=2"
    with pytest.raises(ParameterError):
        LimitReq("1r/s", burst=5, nodelay=True, delay=2)


@settings(max_examples=200, deadline=None)
@given(rate=st.integers(1, 50), burst=st.integers(0, 20), nodelay=st.booleans(),
       gaps=st.lists(st.integers(0, 3000), min_size=1, max_size=60))
def test_limit_req_never_refuses_a_client_within_its_quota(rate, burst, nodelay, gaps):
    """A client that never sends sooner than 1/rate after its previous request is never delayed or
    rejected; and over any run, the accepted requests never exceed burst + 1 + rate * elapsed."""
    lim = LimitReq(f"{rate}r/s", burst=burst, nodelay=nodelay)
    period_ms = -(-1000 // rate)  # ceil: at least one full drain between requests
    t, outcomes = 0, []
    for g in gaps:
        outcomes.append(lim.check("polite", t / 1000)[0])
        t += period_ms + g
    assert set(outcomes) == {PASSED}
    # a greedy client sending as fast as the clock allows
    greedy = LimitReq(f"{rate}r/s", burst=burst, nodelay=nodelay)
    times = [sum(gaps[: i + 1]) % 5000 for i in range(len(gaps))]
    times.sort()
    accepted = sum(greedy.check("greedy", ms / 1000)[0] != REJECTED for ms in times)
    elapsed = (times[-1] - times[0]) / 1000
    assert accepted <= burst + 1 + rate * elapsed + 1e-9


# --- limit_conn --------------------------------------------------------------------------------
def test_limit_conn_counts_per_key_and_frees_on_release():
    lc = LimitConn(2)
    assert [lc.acquire("nat") for _ in range(3)] == [True, True, False]
    assert lc.acquire("other")
    lc.release("nat")
    assert lc.acquire("nat")
    assert lc.counts == {"nat": 2, "other": 1}
    lc.release("other")
    assert "other" not in lc.counts  # NGINX frees the node at 0
    with pytest.raises(RuntimeError):
        lc.release("other")


# --- AWS WAF rate-based rule -------------------------------------------------------------------
def test_waf_settings_are_the_documented_ones():
    ctx = Context(1)
    with pytest.raises(ParameterError):
        RateBasedRule(ctx.env, 100, window_s=30)  # windows are 60, 120, 300, 600
    with pytest.raises(ParameterError):
        RateBasedRule(ctx.env, 5)  # lowest limit is 10
    assert RateBasedRule(ctx.env, 100).window_s == 300  # the default window


def test_waf_blocks_late_and_unblocks_late():
    ctx = Context(1)
    env = ctx.env
    rule = RateBasedRule(env, 100, window_s=60, check_interval_s=10, propagation_delay_s=10)
    passed = []

    def flood(env):  # 20 requests/s for 40 s, then silence
        while env.now < 40:
            passed.append((env.now, rule.request("attacker")))
            yield env.timeout(0.05)

    env.process(flood(env))
    env.run(until=200)
    blocks = [(t, b) for t, _, b in rule.block_events]
    # the count passes 100 after 5 s; the check at t=10 sees it and the block takes effect at t=20
    assert blocks[0] == (pytest.approx(20.0), True)
    assert all(ok for t, ok in passed if t < 20) and not any(ok for t, ok in passed if t >= 20)
    # the flood stops at 40; the window still holds > 100 requests until about 40 + 60 - 5 = 95;
    # the next check after that (t=100) unblocks, effective at 110
    assert blocks[1] == (pytest.approx(110.0), False)
    assert rule.blocked_requests == sum(not ok for _, ok in passed)


# --- JWT ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["HS256", "RS256"])
def issuer(request):
    return TokenIssuer(request.param, seed=7)


def verifier_for(issuer, **kw):
    return TokenVerifier(issuer.verification_key, issuer.algorithm, **kw)


def test_a_valid_token_is_accepted_with_its_claims(issuer):
    token = issuer.issue("alice", ["read:room-1", "write:room-1"], now=100.0, ttl=900)
    reason, claims = verifier_for(issuer).check(token, 200.0)
    assert reason == TOKEN_OK
    assert claims.sub == "alice" and claims.allows("read:room-1") and not claims.allows("admin")
    assert claims.exp == 100.0 + 900
    raw = jwt.decode(token, options={"verify_signature": False})
    assert set(raw) >= {"sub", "scope", "exp", "iat", "aud", "iss"} and raw["scope"] == "read:room-1 write:room-1"
    assert raw["iat"] == EPOCH + 100


def test_expiry_is_exclusive_and_leeway_extends_it(issuer):
    token = issuer.issue("alice", "read", now=0.0, ttl=60)
    v = verifier_for(issuer)
    assert v.check(token, 59.999)[0] == TOKEN_OK
    assert v.check(token, 60.0)[0] == "expired"  # RFC 7519: not accepted on or after exp
    assert verifier_for(issuer, leeway=30).check(token, 89.0)[0] == TOKEN_OK
    assert verifier_for(issuer, leeway=30).check(token, 90.0)[0] == "expired"


def test_wrong_signature_audience_and_algorithm_are_refused(issuer):
    token = issuer.issue("alice", "read", now=0.0, ttl=60)
    v = verifier_for(issuer)
    head, body, sig = token.split(".")
    forged_body = jwt.utils.base64url_encode(b'{"sub":"mallory"}').decode()
    assert v.check(f"{head}.{forged_body}.{sig}", 1.0)[0] == "bad_signature"
    other = TokenIssuer(issuer.algorithm, seed=8) if issuer.algorithm == "HS256" else TokenIssuer("HS256", seed=8)
    assert v.check(other.issue("alice", "read", 0.0, 60), 1.0)[0] in ("bad_signature", "wrong_algorithm")
    assert v.check(issuer.issue("alice", "read", 0.0, 60, audience="another-api"), 1.0)[0] == "wrong_audience"
    unsigned = jwt.encode({"sub": "mallory", "scope": "admin", "aud": "realtime-api", "iat": EPOCH, "exp": EPOCH + 99},
                          None, algorithm="none")
    assert v.check(unsigned, 1.0)[0] == "wrong_algorithm"
    assert v.check("not-a-jwt", 1.0)[0] == "malformed"
    assert v.check(None, 1.0)[0] == "malformed"


def test_rs256_verifier_is_not_fooled_by_hs256_signed_with_the_public_key():
    from cryptography.hazmat.primitives import serialization

    rs = TokenIssuer("RS256", seed=1)
    pem = rs.verification_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    payload = {"sub": "mallory", "scope": "admin", "aud": "realtime-api", "iss": rs.issuer, "iat": EPOCH, "exp": EPOCH + 99}
    import hmac, hashlib, json
    head = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}')
    body = jwt.utils.base64url_encode(json.dumps(payload).encode())
    sig = jwt.utils.base64url_encode(hmac.new(pem, head + b"." + body, hashlib.sha256).digest())
    confused = (head + b"." + body + b"." + sig).decode()
    assert TokenVerifier(rs.verification_key, "RS256").check(confused, 1.0)[0] == "wrong_algorithm"


@settings(max_examples=60, deadline=None)
@given(ttl=st.integers(1, 3600), age=st.floats(0, 7200, allow_nan=False), tamper=st.sampled_from(
    ["none", "signature", "audience", "payload"]))
def test_an_expired_or_wrongly_signed_token_is_always_refused(ttl, age, tamper):
    iss = TokenIssuer("HS256", seed=3)
    v = TokenVerifier(iss.verification_key, "HS256")
    token = iss.issue("u", "read", now=10.0, ttl=ttl, audience="other" if tamper == "audience" else None)
    if tamper == "signature":
        token = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    elif tamper == "payload":
        h, p, s = token.split(".")
        token = f"{h}.{jwt.utils.base64url_encode(b'{}').decode()}.{s}"
    reason, claims = v.check(token, 10.0 + age)
    if tamper != "none" or 10 + age >= 10 + ttl:
        assert reason != TOKEN_OK and claims is None
    else:
        assert reason == TOKEN_OK


# --- HMAC + replay window ----------------------------------------------------------------------
SECRET = b"k" * 32


def signed(nonce, now, data="hello", sender="alice"):
    body = event_body(nonce, sender, "room-1", data)
    return sign_event(SECRET, now, body), body


def test_replay_inside_the_window_is_refused_as_a_replay_and_outside_as_stale():
    guard = ReplayGuard(SECRET, tolerance=300)
    header, body = signed("e1", 1000.0)
    assert guard.check(header, body, 1000.0) == ACCEPTED
    assert guard.check(header, body, 1001.0) == REPLAYED
    assert guard.check(header, body, 1300.0) == REPLAYED  # t = now - tolerance: still in the window
    assert guard.check(header, body, 1301.0) == STALE
    assert guard.cached_nonces == 0  # purged once it could only be stale


def test_tampered_and_future_events_are_refused():
    guard = ReplayGuard(SECRET, tolerance=300)
    header, body = signed("e2", 10.0)
    assert guard.check(header, body.replace(b"hello", b"HELLO"), 10.0) == BAD_SIGNATURE
    assert guard.check(header.replace("v1=", "v1=00"), body, 10.0) == BAD_SIGNATURE
    h2, b2 = signed("e3", 400.0)
    assert guard.check(h2, b2, 99.0) == STALE  # more than the tolerance in the future
    assert guard.check(h2, b2, 100.0) == ACCEPTED


def test_without_nonces_a_signed_copy_inside_the_window_is_accepted():
    guard = ReplayGuard(SECRET, tolerance=300, use_nonces=False)
    header, body = signed("e1", 0.0)
    assert [guard.check(header, body, t) for t in (0.0, 5.0, 301.0)] == [ACCEPTED, ACCEPTED, STALE]


@settings(max_examples=80, deadline=None)
@given(tolerance=st.integers(1, 600), events=st.lists(
    st.tuples(st.integers(0, 50), st.floats(0, 2000, allow_nan=False), st.floats(0, 1500, allow_nan=False),
              st.booleans()), min_size=1, max_size=40))
def test_a_signed_event_is_accepted_at_most_once_and_tampering_never_passes(tolerance, events):
    guard = ReplayGuard(SECRET, tolerance=tolerance)
    accepted = []
    now = 0.0
    for nonce, sent_at, delay, tamper in sorted(events, key=lambda e: e[1] + e[2]):
        now = max(now, sent_at + delay)
        header, body = signed(f"n{nonce}", sent_at)
        if tamper:
            body = body.replace(b"hello", b"hellO")
        outcome = guard.check(header, body, now)
        if tamper:
            assert outcome == BAD_SIGNATURE
        if outcome == ACCEPTED:
            assert now - tolerance <= int(sent_at) <= now + tolerance  # inside the window
            accepted.append((nonce, int(sent_at), now))
    # a signed message (nonce and timestamp) is accepted at most once ...
    assert len({(n, t) for n, t, _ in accepted}) == len(accepted)
    # ... and a nonce is accepted again only once its first use has left the window
    first: dict = {}
    for n, t, at in accepted:
        if n in first:
            assert at > first[n] + tolerance
        first[n] = t
