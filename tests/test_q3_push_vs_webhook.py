"""Question 3: webhook signatures and retries, the WebSocket channel, polling, and the
``push-vs-webhook`` scenario. Exactly-once effect under random outages (property), the retry
horizon, losses without a buffer, determinism, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

import sim
from sim.cli import main as cli_main
from sim.components.webhook import (
    BAD_SIGNATURE, EPOCH, OK, STALE, WebhookEvent, WebhookProvider, WebhookReceiver, WebhookSender, derive_secret,
    sign, verify,
)
from sim.core.context import Context
from sim.core.distributions import Constant, Exponential, Uniform
from sim.core.errors import ParameterError
from sim.core.network import LinkSpec, Network
from sim.scenarios.q3_push_vs_webhook import CLOSE_CODES, TRANSPORTS, PushVsWebhookParams, simulate

HYPO = settings(derandomize=True, deadline=None, max_examples=15, database=None)
SECRET = derive_secret(7)
BODY = b'{"id":"evt_1","type":"payment_intent.succeeded"}'


# ================================================================== signatures =====
def test_a_valid_signature_is_accepted_and_a_tampered_body_rejected() -> None:
    header = sign(SECRET, EPOCH + 100, BODY)
    assert verify(SECRET, header, BODY, EPOCH + 100) == OK
    assert verify(SECRET, header, BODY.replace(b"succeeded", b"failed"), EPOCH + 100) == BAD_SIGNATURE
    assert verify(derive_secret(8), header, BODY, EPOCH + 100) == BAD_SIGNATURE
    # the timestamp is signed too: changing it breaks the signature
    forged = header.replace(f"t={EPOCH + 100}", f"t={EPOCH + 900}")
    assert verify(SECRET, forged, BODY, EPOCH + 900) == BAD_SIGNATURE


def test_a_stale_timestamp_is_rejected_at_the_tolerance() -> None:
    header = sign(SECRET, EPOCH, BODY)
    assert verify(SECRET, header, BODY, EPOCH + 300, tolerance=300) == OK
    assert verify(SECRET, header, BODY, EPOCH + 300.5, tolerance=300) == STALE


@pytest.mark.parametrize("header", ["", "t=abc,v1=00", "v1=00", "t=1", "garbage", "t=1,v1="])
def test_malformed_headers_are_rejected_without_raising(header: str) -> None:
    assert verify(SECRET, header, BODY, EPOCH) == BAD_SIGNATURE


def test_any_v1_may_match_during_a_secret_rotation() -> None:
    old = sign(derive_secret(1), EPOCH, BODY).split(",")[1]
    header = sign(SECRET, EPOCH, BODY) + "," + old
    assert verify(SECRET, header, BODY, EPOCH) == OK
    assert verify(derive_secret(1), header, BODY, EPOCH) == OK


MAC = sign(SECRET, EPOCH, BODY).split("v1=")[1]


@pytest.mark.parametrize("header, status", [
    (f"t={EPOCH},t={EPOCH + 999},v1={MAC}", OK),             # the first t wins (Stripe takes [0])
    (f"t={EPOCH + 999},t={EPOCH},v1={MAC}", BAD_SIGNATURE),
    (f"t={EPOCH},v1={MAC}=extra", OK),                       # split("=", 2): the text after a second '=' is dropped
    (f"t={EPOCH}=1,v1={MAC}", OK),
    (f"t={EPOCH},v1={MAC},v1", BAD_SIGNATURE),               # an item v1 without '=': Stripe's parser raises
    (f"t,t={EPOCH},v1={MAC}", BAD_SIGNATURE),                # so does a t without '='
    (f"t={EPOCH},v1={MAC},v0", OK),                          # other items without a value are ignored
    (f"t={EPOCH},v0=xyz,v1={MAC},foo=bar", OK),
    (f"t=+{EPOCH},v1={MAC}", OK),                            # int(): the signed payload uses the parsed number
    (f"t={EPOCH}, v1={MAC}", BAD_SIGNATURE),                 # keys are not stripped: ' v1' is not v1
    (f"T={EPOCH},v1={MAC}", BAD_SIGNATURE),
])
def test_the_signature_header_is_parsed_as_stripe_python_does(header: str, status: int) -> None:
    """stripe-python _webhook.py WebhookSignature._get_timestamp_and_signatures and verify_header."""
    assert verify(SECRET, header, BODY, EPOCH + 10) == status


def test_a_zero_or_absent_tolerance_checks_no_age_as_stripe_does() -> None:
    header = sign(SECRET, EPOCH, BODY)
    assert verify(SECRET, header, BODY, EPOCH + 10**6, tolerance=0) == OK     # `if tolerance and ...`
    assert verify(SECRET, header, BODY, EPOCH + 10**6, tolerance=None) == OK
    assert verify(SECRET, header, BODY, EPOCH + 10**6, tolerance=300) == STALE
    assert verify(SECRET, header, BODY, EPOCH - 10**6, tolerance=300) == OK    # only old timestamps are refused


def test_the_secret_comes_from_the_seed() -> None:
    assert derive_secret(3) == derive_secret(3) != derive_secret(4)
    assert len(derive_secret(3)) == 32


def test_receiver_rejects_a_replay_and_applies_a_duplicate_once() -> None:
    ctx = Context(0)
    applied = []
    rx = WebhookReceiver(ctx, "rx", None, SECRET, apply=applied.append)
    header = sign(SECRET, EPOCH, BODY)
    assert rx.handle("evt_1", header, BODY) == OK
    assert rx.handle("evt_1", header, BODY) == OK          # a replay inside the window: acknowledged, not applied
    ctx.run(until=301)
    assert rx.handle("evt_1", header, BODY) == STALE       # the same request later: rejected
    assert rx.handle("evt_1", header, BODY + b" ") == BAD_SIGNATURE
    assert applied == ["evt_1"] and rx.duplicates == 1 and rx.rejected == {BAD_SIGNATURE: 1, STALE: 1}


# ================================================================= provider presets =====
def test_provider_presets_follow_their_documented_horizons() -> None:
    shopify = WebhookProvider.preset("shopify")
    assert len(shopify.delays_s) == 8 and sum(shopify.delays_s) == pytest.approx(4 * 3600)
    assert (shopify.timeout_s, shopify.connect_timeout_s) == (5.0, 1.0)
    github = WebhookProvider.preset("github")
    assert github.delays_s == () and github.timeout_s == 10.0
    stripe = WebhookProvider.preset("stripe")
    assert stripe.attempt_offsets()[-1] <= 3 * 86400 < stripe.attempt_offsets()[-1] + 2 * stripe.delays_s[-1]
    assert all(b == 2 * a for a, b in zip(stripe.delays_s, stripe.delays_s[1:]))
    with pytest.raises(ParameterError) as err:
        WebhookProvider.preset("paypal")
    assert err.value.parameter == "provider"


# ============================================================= sender and receiver =====
class Wire:
    """A provider and a consumer on one link; ``outages`` are partitions (the consumer is unreachable)."""

    def __init__(self, provider: WebhookProvider, outages=(), processing=Constant(0.05), loss: float = 0.0,
                 seed: int = 0) -> None:
        self.ctx = ctx = Context(seed)
        self.net = Network(ctx, LinkSpec(latency=Uniform(0.01, 0.05), loss=loss, fifo=True))
        for s, e in outages:
            self.net.partition(["rx"], ["tx"], start=s, heal=e)
        self.applied: list[str] = []
        self.done: list[WebhookEvent] = []
        self.rx = WebhookReceiver(ctx, "rx", self.net, SECRET, apply=self.applied.append, processing=processing)
        self.tx = WebhookSender(ctx, "tx", self.net, "rx", provider, SECRET, on_done=self.done.append)

    def send_at(self, times) -> list[WebhookEvent]:
        events = []
        for i, t in enumerate(times):
            ev = WebhookEvent(f"evt_{i}", i, b'{"seq":%d}' % i, 100, t)
            events.append(ev)
            self.ctx.env.timeout(t).callbacks.append(lambda _e, ev=ev: self.tx.deliver(ev))
        return events


@HYPO
@given(n=st.integers(1, 15),
       outages=st.lists(st.tuples(st.floats(0, 600), st.floats(1, 3000)), max_size=4),
       slow=st.floats(0, 0.4), loss=st.sampled_from([0.0, 0.05]), seed=st.integers(0, 2**16))
def test_dedupe_applies_each_event_exactly_once_within_the_retry_horizon(n, outages, slow, loss, seed) -> None:
    shopify = WebhookProvider.preset("shopify")
    # outages (shorter in total than the 4 h horizon, with room for a last retry) and slow answers
    cuts, t = [], 0.0
    for start, length in outages:
        t += start
        cuts.append((t, t + length))
        t += length
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0, 600, n))
    slow_handler = Exponential(1 / 0.05) if slow < 0.2 else Uniform(0.0, 8.0)  # Uniform(0, 8) outlasts the 5 s timeout
    w = Wire(shopify, cuts, processing=slow_handler, loss=loss, seed=seed)
    w.send_at(times)
    w.ctx.run()
    assert len(w.done) == n                                 # every event resolved: none silently dropped
    assert len(w.applied) == len(set(w.applied))            # never twice: duplicates are absorbed
    delivered = {ev.id for ev in w.done if not math.isnan(ev.delivered_at)}
    given_up = {ev.id for ev in w.done if not math.isnan(ev.gave_up_at)}
    assert delivered.isdisjoint(given_up) and len(delivered) + len(given_up) == n
    assert delivered <= set(w.applied)                      # a 2xx means applied
    assert set(w.applied) | given_up == {f"evt_{i}" for i in range(n)}   # the rest is counted as given up
    if loss == 0 and slow < 0.2:                            # a 4 h horizon outlasts < 3.5 h of cuts
        # (a handler drawn from Uniform(0, 8) outlasts the 5 s timeout 3 times in 8: nine such
        # attempts in a row give the event up within the horizon, as Shopify would)
        assert w.tx.gave_up == 0 and set(w.applied) == delivered
    assert w.rx.received == w.rx.applied + w.rx.duplicates  # nothing rejected: the signatures are fresh


def test_events_outside_the_horizon_are_given_up_and_counted() -> None:
    shopify = WebhookProvider.preset("shopify")
    w = Wire(shopify, outages=[(0.0, 5 * 3600)])            # down longer than the 4 h horizon
    events = w.send_at([10.0, 20.0])
    w.ctx.run()
    assert w.tx.gave_up == 2 and w.applied == [] and len(w.done) == 2
    assert all(ev.attempts == 9 for ev in events)          # 1 + 8 retries
    assert all(4 * 3600 <= ev.gave_up_at - ev.created_at <= 4 * 3600 + 9 * shopify.timeout_s for ev in events)


def test_github_does_not_redeliver() -> None:
    w = Wire(WebhookProvider.preset("github"), outages=[(0.0, 60.0)])
    events = w.send_at([1.0, 100.0])
    w.ctx.run()
    assert [ev.attempts for ev in events] == [1, 1]
    assert w.tx.gave_up == 1 and w.applied == ["evt_1"]
    assert events[0].gave_up_at == pytest.approx(1.0 + 10.0)   # waited the whole 10 s timeout


def test_a_slow_handler_makes_the_provider_send_again() -> None:
    w = Wire(WebhookProvider.preset("shopify"), processing=Constant(6.0))  # longer than Shopify's 5 s
    w.send_at([0.0])
    w.ctx.run()
    assert w.applied == ["evt_0"] and w.rx.duplicates == 8 and w.tx.gave_up == 1, w.rx.received


def test_keep_alive_skips_the_connection_set_up() -> None:
    def run(keep_alive):
        ctx = Context(1)
        net = Network(ctx, LinkSpec(latency=Constant(0.05)))
        WebhookReceiver(ctx, "rx", net, SECRET)
        tx = WebhookSender(ctx, "tx", net, "rx", WebhookProvider.preset("stripe"), SECRET, keep_alive=keep_alive)
        evs = [WebhookEvent(f"e{i}", i, b"x", 10, i * 1.0) for i in range(5)]
        for ev in evs:
            ctx.env.timeout(ev.created_at).callbacks.append(lambda _e, ev=ev: tx.deliver(ev))
        ctx.run()
        tx.finish()
        return tx, [ev.delivered_at - ev.created_at for ev in evs]

    cold, cold_lat = run(None)
    warm, warm_lat = run(5.0)
    assert cold.connections == 5 and warm.connections == 1
    assert cold_lat == pytest.approx([0.3] * 5)             # 2 set-up round trips + the POST, 0.1 s each
    assert warm_lat == pytest.approx([0.3] + [0.1] * 4)


# ================================================================== the scenario =====
FAST = dict(event_rates=(0.05,), events=60, outage_every=Constant(400.0), outage_duration=Constant(300.0))


def test_a_websocket_message_sent_while_disconnected_is_buffered_or_counted_lost() -> None:
    p = PushVsWebhookParams(**FAST)
    row = simulate(p, "websocket", 0.05, seed=3)
    assert row["lost"] > 0 and row["lost"] == row["events"] - row["delivered"]
    assert row["not_sent"] <= row["lost"]                   # the rest went into a dead, undetected connection
    assert row["closed_1006"] >= 1
    buffered = simulate(p.replace(ws_buffer=1000), "websocket", 0.05, seed=3)
    assert buffered["lost"] == 0 and buffered["after_outage"] > 0
    small = simulate(p.replace(ws_buffer=2), "websocket", 0.05, seed=3)
    assert 0 < small["lost"] < row["lost"]                  # a small buffer replays only the last events


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_accounting_and_outage_effects(transport: str) -> None:
    p = PushVsWebhookParams(**FAST)
    row = simulate(p, transport, 0.05, seed=5)
    assert row["delivered"] + row["lost"] == row["events"]
    assert row["outages"] >= 1 and row["downtime_s"] > 0
    if transport != "websocket":
        assert row["after_outage"] > 0                      # pull and retries deliver late rather than never
        assert row["after_outage_delay_max_s"] >= 0.5 * 300
    if transport == "webhook":
        assert row["lost"] == row["given_up"] == 0          # Stripe retries for 3 days
        github = simulate(p.replace(provider="github"), transport, 0.05, seed=5)
        assert github["lost"] == github["given_up"] > 0 and github["after_outage"] == 0


def test_short_polling_latency_is_half_the_interval_on_average() -> None:
    p = PushVsWebhookParams(event_rates=(0.01,), events=400, outage_every=None, poll_interval=20.0,
                            latency=Constant(0.05))
    row = simulate(p, "short-polling", 0.01, seed=2)
    assert row["lost"] == 0 and row["duplicates"] == 0
    # one poll every 20 s over the horizon (no outages): requests per event = 1 / (rate * interval), within the
    # Poisson spread of the horizon (400 events: relative sd 5 %, 99.9 % bound ~ 17 %)
    assert row["requests_per_event"] == pytest.approx(1 / (0.01 * 20.0), rel=0.17)
    # a Poisson arrival waits Uniform(0, 20) for the next tick: mean 10 s; 99.9 % interval of the p50 of 400 draws
    lo, hi = stats.binom.interval(0.999, 400, 0.5)
    assert 20 * lo / 400 - 1 <= row["latency_p50_s"] - 0.1 <= 20 * hi / 400 + 1


def test_determinism() -> None:
    a = sim.run("push-vs-webhook", seed=4, events=50, event_rates=(1 / 3600, 1.0)).summary
    b = sim.run("push-vs-webhook", seed=4, events=50, event_rates=(1 / 3600, 1.0)).summary
    assert a.equals(b)
    c = sim.run("push-vs-webhook", seed=5, events=50, event_rates=(1 / 3600, 1.0)).summary
    assert not a.equals(c)


def test_default_summary_columns() -> None:
    s = sim.run("push-vs-webhook", seed=1, events=30).summary
    for col in ("transport", "event_rate_per_s", "latency_p50_s", "latency_p99_s", "requests_per_event",
                "connection_seconds", "lost", "duplicates"):
        assert col in s.columns
    assert set(s.transport) == set(TRANSPORTS) and len(s) == 4 * 5


@pytest.mark.parametrize("field, value", [("events", 0), ("event_rates", (0.0,)), ("loss", 1.0), ("provider", "paypal"),
                                          ("idle_timeout", 10.0), ("heartbeat_interval", -1.0), ("ws_buffer", -1),
                                          ("transport", "pigeon"), ("outage_every", Constant(0.0))])
def test_bad_parameters_name_the_field(field, value) -> None:
    with pytest.raises(ParameterError) as err:
        PushVsWebhookParams(**{field: value})
    assert err.value.parameter == field


def test_cli(capsys) -> None:
    assert cli_main(["describe", "push-vs-webhook"]) in (0, None)
    assert cli_main(["run", "push-vs-webhook", "--set", "events=-3"]) == 2
    assert "events" in capsys.readouterr().err


def test_close_codes_are_documented() -> None:
    assert set(CLOSE_CODES) == {1000, 1001, 1006, 1011, 1012, 1013}


# ============================================= one cost model, one keep-alive (issue 16) =====
from sim.components.http import HttpConnections, MeteredNetwork, WireCost, preset_value  # noqa: E402
from sim.core.stats import mean_ci  # noqa: E402
from sim.scenarios.q3_push_vs_webhook import _Run  # noqa: E402

QUIET = dict(outage_every=None, latency=Constant(0.05), events=30)


def test_every_message_pays_tcp_ip_headers_per_segment() -> None:
    ctx = Context(0)
    net = MeteredNetwork(ctx, LinkSpec(latency=Constant(0.01)), cost=WireCost(packet_overhead_bytes=52, mss_bytes=1448))
    for size in (0, 6, 1448, 1449, 3000):
        net.send("a", "b", None, size)
    assert net.bytes_sent == 0 + 6 + 1448 + 1449 + 3000
    assert net.packet_bytes == 52 * (1 + 1 + 1 + 2 + 3)       # at least one segment, ceil(size / MSS) each
    assert net.wire_bytes == net.bytes_sent + net.packet_bytes


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_transport_pays_the_same_per_segment_overhead(transport: str) -> None:
    """WebSocket frames and pings pay TCP/IP headers as HTTP requests do (it was 6 B per ping, no headers)."""
    p = PushVsWebhookParams(**QUIET)
    bare = _Run(p.replace(packet_overhead_bytes=0), transport, 1 / 600, seed=2)
    bare.execute()
    full = _Run(p, transport, 1 / 600, seed=2)
    full.execute()
    assert bare.net.packet_bytes == 0 and full.net.packet_bytes >= 52 * full.net.sent
    if transport == "websocket":  # pings counted (not simulated) pay the same: ping + pong, 2 x (6 + 52) B each
        assert full.idle.wire_bytes == pytest.approx(bare.idle.wire_bytes * (6 + 52) / 6)
        assert full.idle.wire_bytes > 0


def test_the_keep_alive_default_is_nginx_keepalive_timeout_from_the_preset() -> None:
    assert PushVsWebhookParams().http_keep_alive == preset_value("keep_alive_s") == 75.0
    from sim.components.http import presets
    assert "keepalive_timeout" in presets()["keep_alive_s"]["source"]
    assert WireCost.preset() == PushVsWebhookParams().wire_cost()
    with pytest.raises(ParameterError) as err:
        PushVsWebhookParams(http_keep_alive=0.0)
    assert err.value.parameter == "http_keep_alive"


def _per_request(transport: str, keep_alive, **kw) -> tuple[dict, _Run]:
    p = PushVsWebhookParams(**{**QUIET, "http_keep_alive": keep_alive, "idle": "simulated", **kw})
    run = _Run(p, transport, kw.pop("rate", 1 / 120), seed=1)
    return run.execute(), run


@pytest.mark.parametrize("transport", ["webhook", "short-polling", "long-polling"])
def test_one_keep_alive_parameter_for_every_http_transport(transport: str) -> None:
    """Without keep-alive every request opens (and pays for) its own TCP + TLS connection; with a
    keep-alive longer than the pause between requests one connection carries them all."""
    cold, cold_run = _per_request(transport, None)
    warm, warm_run = _per_request(transport, 20000.0)
    pool = {"webhook": lambda r: r.sender.pool, "short-polling": lambda r: r.poll_pool,
            "long-polling": lambda r: r.lp_clients[-1].connections}[transport]
    requests = cold["requests_per_event"] * cold["delivered"]
    assert pool(cold_run).opened == pytest.approx(requests, abs=1)   # one connection per request
    # kept alive: a second connection only for requests at the same time (two webhooks in 0.3 s)
    assert 1 <= pool(warm_run).opened <= max(1, pool(cold_run).opened // 5)
    cost = WireCost.preset()
    extra_requests = requests - warm["requests_per_event"] * warm["delivered"]  # empty polls: a slower cycle has fewer
    assert cold["bytes_per_event"] - warm["bytes_per_event"] == pytest.approx(
        ((pool(cold_run).opened - pool(warm_run).opened) * cost.setup_wire_bytes()
         + extra_requests * cost.exchange_wire_bytes()) / cold["delivered"],
        abs=cost.setup_wire_bytes() / cold["delivered"])  # a set-up may be under way when the window closes
    if transport == "long-polling":  # each re-poll waits for its set-up: 2 more round trips for some events
        assert cold["latency_max_s"] > warm["latency_max_s"] + 0.15


def test_short_polls_on_a_kept_alive_connection_hold_it_all_the_time() -> None:
    """60 s polls on a 75 s keep-alive (the defaults) never let the connection go idle long enough to close."""
    row, run = _per_request("short-polling", 75.0)
    assert run.poll_pool.opened == 1
    window = row["horizon_s"] - 5.0
    assert row["connection_seconds"] == pytest.approx(window, rel=0.01)
    cold, _ = _per_request("short-polling", None)    # a new connection per poll: 3 round trips each
    assert cold["connection_seconds"] / (cold["requests_per_event"] * cold["delivered"]) == pytest.approx(0.3, rel=0.01)


# ============================================= dead WebSocket detection (issue 16) =====
@pytest.mark.parametrize("idle", ["counted", "simulated"])
def test_the_server_notices_a_dead_websocket_only_after_its_idle_timeout(idle: str) -> None:
    """Frames sent between the consumer's death and the server's idle timeout go into a dead
    connection: lost, though sent (and paid for). A server that noticed at once would send none."""
    one_outage = dict(event_rates=(1.0,), events=400, latency=Constant(0.05), outage_every=Constant(100.0),
                      outage_duration=Constant(1000.0), idle=idle)
    p = PushVsWebhookParams(**one_outage)
    run = _Run(p, "websocket", 1.0, seed=4)
    row = run.execute()
    start = run.outages[0][0]
    into_dead = row["lost"] - row["not_sent"]
    created = run.created
    earliest = np.count_nonzero((created >= start) & (created < start + p.idle_timeout - p.heartbeat_interval))
    latest = np.count_nonzero((created >= start) & (created < start + p.idle_timeout + 0.2))
    assert 0 < earliest <= into_dead <= latest
    assert row["closed_1006"] >= 1
    # detection sooner (idle timeout = ping period): fewer frames into the dead connection, fewer bytes
    quick = _Run(p.replace(idle_timeout=p.heartbeat_interval), "websocket", 1.0, seed=4).execute()
    assert quick["lost"] - quick["not_sent"] < into_dead
    assert quick["bytes_per_event"] * quick["delivered"] < row["bytes_per_event"] * row["delivered"]


# ============================================= shortcuts vs full simulation (issue 16) =====
AGREE = dict(events=40, event_rates=(1 / 3600, 0.01), outage_every=Constant(4000.0), outage_duration=Constant(600.0))
COST_COLUMNS = ("delivered", "lost", "requests_per_event", "bytes_per_event", "connection_seconds", "after_outage",
                "latency_p50_s")


@pytest.mark.parametrize("transport", ["websocket", "short-polling", "long-polling"])
def test_counted_idle_time_agrees_with_simulating_it_exactly_at_constant_latency(transport: str) -> None:
    rows = {mode: simulate(PushVsWebhookParams(**AGREE, latency=Constant(0.05), idle=mode), transport, rate, seed=3)
            for mode in ("counted", "simulated") for rate in [1 / 3600]}
    counted, simulated = rows["counted"], rows["simulated"]
    for col in COST_COLUMNS:
        # connection-seconds: the counted ones use the mean round trip, the simulated ones each message's
        assert counted[col] == pytest.approx(simulated[col], rel=1e-5, abs=1e-9), col
    if transport != "websocket":
        assert counted["requests_per_event"] > 10    # the shortcut did count many idle requests


@pytest.mark.parametrize("transport", ["websocket", "short-polling", "long-polling"])
def test_counted_idle_time_agrees_with_simulating_it_over_seeds(transport: str) -> None:
    """With a random latency the two differ by fractions of a round trip: the mean difference over
    seeds must be indistinguishable from 0 (its 99 % interval holds 0) or negligible (< 0.5 %)."""
    p = PushVsWebhookParams(**AGREE)
    pairs = [(simulate(p, transport, 0.01, seed), simulate(p.replace(idle="simulated"), transport, 0.01, seed))
             for seed in range(1, 9)]
    for col in ("bytes_per_event", "requests_per_event", "connection_seconds", "lost"):
        diffs = [a[col] - b[col] for a, b in pairs]
        mean, low, high = mean_ci(diffs, 0.99)
        scale = np.mean([b[col] for _, b in pairs])
        assert not any(diffs) or low <= 0 <= high or abs(mean) < 0.005 * scale, (col, diffs)


def test_simulating_idle_time_at_low_rates_is_refused_with_the_estimate() -> None:
    """10,000 events at one a day with every ping simulated would run for an hour: refused, naming
    events; the same counted, or simulated over a short horizon, is fine."""
    from sim.core.params import WorkError
    p = PushVsWebhookParams(idle="simulated", events=10_000)
    with pytest.raises(WorkError) as err:
        p.check_work()
    assert err.value.parameter == "events"
    p.replace(idle="counted").check_work()
    PushVsWebhookParams(**AGREE, idle="simulated").check_work()   # the agreement tests' runs
    assert p.estimated_seconds()[0] > 10 * p.replace(idle="counted").estimated_seconds()[0]
    assert cli_main(["run", "push-vs-webhook", "--set", "idle=simulated", "--set", "events=10000"]) == 2
