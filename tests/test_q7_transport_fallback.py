"""Long polling (component, on a hand-checked schedule) and ``transport-fallback`` (scenario).

Definitions checked here: ``requests_per_message`` counts HTTP requests after the handshake (polls
and POSTs), so it is 0 for WebSocket, whose cost per message is ``frames_per_message`` (data frames
plus each client's one subscribe frame).
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import sim
from sim.components import frames
from sim.components.long_polling import (
    CLOSED_STATE, POLL, POST, LongPollingClient, LongPollingServer, LongPollingSpec, mean_latency,
    polls_per_message,
)
from sim.core import Constant, Context, LinkSpec, Network, ParameterError
from sim.scenarios.q7_resilience.transport_fallback import TransportFallbackParams

SEED = 20261124
D = 0.0625  # one-way latency, exact in binary so hand-computed times compare exactly
RTT = 2 * D
SPEC = LongPollingSpec(hold_timeout=1.0, request_header_bytes=700, response_header_bytes=300, open_body_bytes=100)


def at(ctx: Context, t: float, fn) -> None:
    ctx.env.timeout(t - ctx.now).callbacks.append(lambda _e: fn())


def pair(spec: LongPollingSpec = SPEC):
    ctx = Context(0)
    net = Network(ctx, LinkSpec(latency=Constant(D)))
    posted: list[tuple[float, object]] = []
    server = LongPollingServer(ctx, "s", net, spec, on_post=lambda _s, _c, data: posted.append((ctx.now, data)))
    got: list[tuple[float, object]] = []
    client = LongPollingClient(ctx, "c", net, "s", spec, on_message=lambda _c, data: got.append((ctx.now, data)))
    return ctx, net, server, client, got, posted


# ===================================================================== component ======
def test_hold_gap_batching_and_timeout_by_hand():
    ctx, net, server, client, got, _ = pair()
    client.open()  # OPENED back at 0.125; first poll held at the server from 0.1875
    at(ctx, 1.0, lambda: server.publish("c", "held", 10))       # a poll is held: leaves at once
    at(ctx, 1.1, lambda: server.publish("c", "gap", 10))        # re-poll in flight until 1.125: waits
    at(ctx, 2.0, lambda: server.publish("c", "b1", 10))
    at(ctx, 2.01, lambda: server.publish("c", "b2", 10))        # b2 and b3 share one answer
    at(ctx, 2.02, lambda: server.publish("c", "b3", 10))
    ctx.run(until=4.5)
    assert got == [(1.0 + D, "held"), (1.125 + D, "gap"), (2.0 + D, "b1"), (2.125 + D, "b2"), (2.125 + D, "b3")]
    # the fifth poll is held from 2.25 and answered empty by its timeout at 3.25 (back at 3.3125),
    # the sixth is held from 3.375 until 4.375, and the seventh, sent at 4.4375, is still on the wire
    answers = ctx.metrics["long_polling_answers_total"]
    assert answers.labels(server="s", reason="data").value == 4
    assert answers.labels(server="s", reason="timeout").value == 2
    assert client.polls == 7 and server.requests(POLL) == 6 and client.received == 5
    batch = ctx.metrics["long_polling_batch_messages"].labels(server="s")
    assert batch.count == 6 and batch.sum == 5
    # every request carries its headers, every answer its own and the payloads it batches
    requests, answered = 1 + 7, 1 + 6
    assert net.bytes_sent == requests * 700 + answered * 300 + 100 + 5 * 10
    assert server.queued == 0 and server.answered_messages == 5


def test_post_is_its_own_request_and_answered_at_once():
    ctx, net, server, client, _, posted = pair()
    assert not client.send("too early")  # no session yet
    client.open()
    at(ctx, 0.5, lambda: client.send("up", 20))
    ctx.run(until=0.75)
    assert posted == [(0.5 + D, "up")]
    assert client.posts == 1 and server.requests(POST) == 1
    assert ctx.metrics["long_polling_requests_total"].labels(server="s", kind=POST).value == 1


def test_close_session_hands_back_the_queue_and_stops_the_client():
    ctx, net, server, client, got, _ = pair()
    client.open()
    ctx.run(until=1.0)  # a poll is held
    assert server.close_session("c") == []
    ctx.run(until=1.2)
    assert client.state == CLOSED_STATE
    assert not server.publish("c", "late")  # a closed session takes nothing
    # a session with queued messages: they come back to the caller, nothing is lost
    ctx2, _, server2, client2, _, _ = pair()
    client2.open()
    at(ctx2, 0.1, lambda: server2.publish("c", "m1", 1))  # session opened at 0.0625, no poll held yet
    ctx2.run(until=0.15)
    assert server2.close_session("c") == [("m1", 1)]
    ctx2.run(until=1.0)
    assert client2.state == CLOSED_STATE and client2.received == 0


@pytest.mark.parametrize("field, value", [("hold_timeout", 0.0), ("hold_timeout", math.inf),
                                          ("request_header_bytes", -1), ("response_header_bytes", 1.5)])
def test_spec_validation_names_the_field(field, value):
    with pytest.raises(ParameterError) as err:
        LongPollingSpec(**{field: value})
    assert err.value.parameter == field


def test_theory_limits():
    # low rate: one poll per message plus the empty answers of hold timeouts
    assert polls_per_message(1e-4, 0.001, 25.0) == pytest.approx(1 / (1 - math.exp(-1e-4 * 25)), rel=1e-4)
    # high rate: one answer per round trip carries rate * rtt messages
    assert polls_per_message(1e3, 0.1, 25.0) == pytest.approx(1 / 100)
    for rate in (0.01, 0.3, 3.0, 30.0):
        assert polls_per_message(rate, 0.1, 25.0) >= 1 / (1 + rate * 0.1)
    # low rate: polls cycle every rtt + T (the timeouts), and a share rtt / (rtt + T) of messages
    # arrive in a re-poll gap
    assert mean_latency(1e-6, 0.05, 25.0) == pytest.approx(0.05 + 0.1 * 0.1 / (2 * 25.1), rel=1e-4)
    assert mean_latency(1e6, 0.05, 25.0) == pytest.approx(0.05 + 0.05)  # half a round trip of gap on average


# ====================================================================== scenario ======
def run(**kw):
    kw.setdefault("clients", 50)
    kw.setdefault("duration", 60.0)
    return sim.run("transport-fallback", seed=kw.pop("seed", SEED), **kw)


def rows(result):
    return {r.transport: r for r in result.summary.itertuples()}


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_blocked_share_decides_who_long_polls(share):
    r = run(blocked_share=share)
    s = rows(r)
    clients = r.series["clients"]
    if share == 0.0:
        assert s["long_polling"].clients == 0 and s["long_polling"].messages == 0
        assert s["long_polling"].requests == 0 and s["long_polling"].handshake_requests == 0
        assert (clients["transport"] == "websocket").all() and not clients["blocked"].any()
    else:
        assert s["websocket"].clients == 0 and s["websocket"].messages == 0 and s["websocket"].handshake_requests == 0
        assert (clients["transport"] == "long_polling").all() and clients["blocked"].all()
    assert s["websocket"].clients + s["long_polling"].clients == 50


def assert_conserved(result):
    acc = result.series["accounting"].iloc[0]
    # at the stop: every published message is delivered, queued at a sender or on the wire
    assert acc.published == acc.delivered_at_stop + acc.queued_at_stop + acc.on_wire_at_stop
    assert acc.on_wire_at_stop >= 0 and acc.queued_at_stop >= 0
    # after the drain: every one delivered, exactly once
    assert acc.delivered == acc.published and acc.undelivered == 0 and acc.duplicates == 0
    ledger = result.series["latencies"]
    assert len(ledger) == acc.published and not ledger["latency_s"].isna().any()
    assert (ledger["latency_s"] >= 0).all()
    assert result.summary["messages"].sum() == acc.published
    first = ledger[ledger["kind"] == "first"]
    assert len(first) == result.params.clients  # each client got its initial message once


@pytest.mark.parametrize("changes", [
    dict(),
    dict(connect_order="polling_first"),
    dict(upgrade_failure="error", upstream_rate=0.5),
    dict(publish="broadcast", upstream_rate=0.2, connect_order="polling_first"),
    dict(latency="lognormal:-3,0.6", message_rate=5.0, blocked_share=0.5),
])
def test_every_message_is_delivered_exactly_once(changes):
    if "latency" in changes:
        changes["latency"] = sim.core.parse_distribution(changes["latency"])
    assert_conserved(run(**changes))


@settings(derandomize=True, deadline=None, max_examples=15)
@given(clients=st.integers(1, 30), share=st.floats(0, 1), rate=st.floats(0.01, 30), up=st.floats(0, 5),
       order=st.sampled_from(["websocket_first", "polling_first"]), failure=st.sampled_from(["timeout", "error"]),
       publish=st.sampled_from(["per_client", "broadcast"]), hold=st.floats(0.05, 30),
       duration=st.floats(0.5, 30), latency=st.floats(0.001, 0.3))
def test_conservation_holds_for_any_parameters(clients, share, rate, up, order, failure, publish, hold, duration,
                                               latency):
    assert_conserved(run(clients=clients, blocked_share=share, message_rate=rate, upstream_rate=up,
                         connect_order=order, upgrade_failure=failure, publish=publish, hold_timeout=hold,
                         duration=duration, latency=Constant(latency), upgrade_timeout=2.0))


def test_long_polling_latency_is_at_least_one_way_and_websocket_is_exactly_it():
    r = run(blocked_share=0.5, message_rate=2.0, latency=Constant(0.05))
    ledger = r.series["latencies"]
    down = ledger[ledger["kind"] == "down"]
    lp = down.loc[down["transport"] == "long_polling", "latency_s"]
    ws = down.loc[down["transport"] == "websocket", "latency_s"]
    assert (lp >= 0.05 - 1e-12).all() and (lp <= 0.05 + 0.1 + 1e-9).all()  # plus at most one re-poll gap
    assert lp.max() > 0.06  # some messages did wait for a poll
    assert ws.to_numpy() == pytest.approx(0.05)
    s = rows(r)
    assert s["long_polling"].latency_p99_s >= s["long_polling"].latency_p50_s >= 0.05 - 1e-12


@pytest.mark.parametrize("regime, kw", [
    # λ·RTT = 0.005 and λT = 1.25: every message needs its own poll, and hold timeouts add ~0.4
    ("low", dict(clients=200, message_rate=0.05, duration=3000.0)),
    # λ·RTT = 2: one answer carries two messages on average
    ("high", dict(clients=20, message_rate=20.0, duration=100.0)),
])
def test_long_polling_requests_per_message_against_the_analytic_value(regime, kw):
    r = run(blocked_share=1.0, latency=Constant(0.05), hold_timeout=25.0, **kw)
    lp = rows(r)["long_polling"]
    rate, rtt = kw["message_rate"], 0.1
    bound = 1 / (1 + rate * rtt)  # a cycle lasts rtt plus a hold no longer than the wait for a message
    assert lp.requests_per_message >= bound
    assert lp.requests_per_message == pytest.approx(polls_per_message(rate, rtt, 25.0), rel=0.04)
    assert lp.requests_per_message_theory == pytest.approx(polls_per_message(rate, rtt, 25.0))
    if regime == "low":
        assert lp.requests_per_message > 1.3
    else:
        assert lp.requests_per_message < 0.55
    assert lp.latency_mean_s == pytest.approx(mean_latency(rate, 0.05, 25.0), rel=0.03)
    # each poll and each answer carries headers: the overhead per message follows the requests
    assert lp.overhead_bytes_per_message > lp.requests_per_message * (700 + 300)


def test_websocket_costs_frames_not_requests():
    r = run(blocked_share=0.0, message_rate=1.0)
    ws = rows(r)["websocket"]
    n, clients = ws.messages, ws.clients
    assert ws.requests == 0 and ws.requests_per_message == 0.0
    assert ws.handshake_requests == clients
    assert ws.frames_per_message * n == pytest.approx(n + clients)  # data frames plus one subscribe each
    expected = clients * 2 * frames.HANDSHAKE_BYTES + (n + clients) * frames.FRAME_HEADER_BYTES + n * 100
    assert ws.bytes_per_message * n == pytest.approx(expected)


@pytest.mark.parametrize("order, failure, lp_first", [
    ("websocket_first", "timeout", 10.0 + 2 * 0.1),  # the wait for the upgrade, then open and poll
    ("websocket_first", "error", 3 * 0.1),           # refused after a round trip, then open and poll
    ("polling_first", "timeout", 2 * 0.1),           # Engine.IO's order: the failed upgrade costs nothing
])
def test_time_to_first_message_includes_the_failed_upgrade(order, failure, lp_first):
    r = run(blocked_share=0.5, connect_order=order, upgrade_failure=failure, upgrade_timeout=10.0,
            latency=Constant(0.05))
    s = rows(r)
    assert s["long_polling"].first_message_s == pytest.approx(lp_first)
    assert s["long_polling"].first_message_max_s == pytest.approx(lp_first)
    assert s["websocket"].first_message_s == pytest.approx(2 * 0.1)  # handshake, subscribe, first frame
    clients = r.series["clients"]
    assert (clients["first_message_s"] >= clients["connect_time_s"]).all()
    if order == "polling_first":  # the clients whose upgrade works still end on WebSocket
        assert (clients.loc[~clients["blocked"], "transport"] == "websocket").all()


def test_latency_cdf_is_monotone_and_ends_at_the_max():
    r = run(blocked_share=0.5, message_rate=2.0)
    cdf = r.series["latency_cdf"]
    for transport, part in cdf.groupby("transport"):
        assert np.all(np.diff(part["latency_s"].to_numpy()) >= 0)
        assert part["latency_s"].iloc[-1] == pytest.approx(rows(r)[transport].latency_max_s)


def test_same_seed_same_results_different_seed_differs():
    a, b, c = run(seed=3, blocked_share=0.3), run(seed=3, blocked_share=0.3), run(seed=4, blocked_share=0.3)
    assert a.summary.equals(b.summary) and a.series["latencies"].equals(b.series["latencies"])
    assert not a.series["latencies"].equals(c.series["latencies"])


@pytest.mark.parametrize("changes, parameter", [
    (dict(blocked_share=1.5), "blocked_share"),
    (dict(blocked_share=-0.1), "blocked_share"),
    (dict(message_rate=-1.0), "message_rate"),
    (dict(message_rate=0.0), "message_rate"),
    (dict(upstream_rate=-0.5), "upstream_rate"),
    (dict(clients=0), "clients"),
    (dict(hold_timeout=0.0), "hold_timeout"),
    (dict(upgrade_timeout=-1.0), "upgrade_timeout"),
    (dict(duration=0.0), "duration"),
    (dict(connect_order="carrier_pigeon"), "connect_order"),
    (dict(request_header_bytes=-1), "request_header_bytes"),
])
def test_bad_parameters_name_the_parameter(changes, parameter):
    with pytest.raises(ParameterError) as err:
        TransportFallbackParams(**changes)
    assert err.value.parameter == parameter


def test_cli_runs_and_describes(capsys):
    from sim.cli import main

    assert main(["describe", "transport-fallback"]) == 0
    assert main(["run", "transport-fallback", "--set", "clients=20", "duration=10", "blocked_share=0.5"]) == 0
    out = capsys.readouterr().out
    assert "long_polling" in out and "requests_per_message" in out
    assert main(["run", "transport-fallback", "--set", "blocked_share=2"]) == 2
    assert "blocked_share" in capsys.readouterr().err
