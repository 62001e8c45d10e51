"""The one observation layer: probes (ReconnectTracker, DeliveryLedger, Outbox) keep their counts
in the run's metrics registry, and what they report is what a scrape of the registry shows."""

from __future__ import annotations

import math

import pytest

from sim.components.backoff import Table
from sim.components.client import Client
from sim.components.outbox import Outbox
from sim.components.resilient_client import ReconnectTracker, ResilientClient
from sim.components.server import Server
from sim.core import Constant, Context, LinkSpec, Network
from sim.core.ledger import DeliveryLedger
from sim.core.timer import Timer


def test_a_tracker_counts_in_the_registry_it_is_given() -> None:
    ctx = Context(1)
    net = Network(ctx, LinkSpec())
    server = Server(ctx, "srv", network=net)
    tracker = ReconnectTracker(ctx.metrics, clients="users")
    clients = [ResilientClient(ctx, f"c{i}", net, "srv", Table([0.0], 0.5), tracker) for i in range(3)]
    for c in clients:
        c.start()
    Timer(ctx.env, 1.0, lambda: server.crash())
    Timer(ctx.env, 2.0, lambda: server.restart())
    ctx.env.run(until=5)
    assert tracker.connected == 3 == ctx.metrics.total("reconnect_clients_connected", clients="users")
    assert sum(tracker.attempts.values()) == ctx.metrics.total("reconnect_attempts_total") > 3
    assert sum(tracker.refused.values()) == ctx.metrics.total("reconnect_refused_total") > 0
    assert tracker.losses == 3 == tracker.losses_by(how="reset")
    assert len(tracker.reconnect_times) == 3 and all(1.0 <= t <= 2.6 for t in tracker.reconnect_times)
    assert tracker.last_reconnect_at == pytest.approx(1.0 + max(tracker.reconnect_times))
    text = ctx.metrics.exposition().decode()
    assert 'reconnect_clients_connected{clients="users"} 3.0' in text
    assert 'reconnect_connections_lost_total{clients="users",code="1006",how="reset"} 3.0' in text


def test_two_trackers_of_one_name_in_one_registry_are_refused_and_shared_finds_the_one() -> None:
    ctx = Context(1)
    first = ReconnectTracker(ctx.metrics)
    with pytest.raises(ValueError, match="clients= name"):
        ReconnectTracker(ctx.metrics)
    assert ReconnectTracker.shared(ctx.metrics) is first
    assert ReconnectTracker(ctx.metrics, clients="other") is not first


def test_a_tracker_without_a_registry_gets_its_own_at_its_first_client() -> None:
    ctx = Context(1)
    net = Network(ctx, LinkSpec())
    Server(ctx, "srv", network=net)
    tracker = ReconnectTracker()
    assert tracker.connected == 0 and tracker.reconnect_times == [] and tracker.timeouts == 0
    ResilientClient(ctx, "c", net, "srv", Table([0.0], 0.5), tracker).start()
    ctx.env.run(until=1)
    assert tracker.connected == 1 and tracker.metrics is not ctx.metrics
    assert "reconnect_attempts_total" not in ctx.metrics


def test_the_delivery_ledger_counts_first_copies_duplicates_and_latency() -> None:
    ctx = Context(1)
    ledger = DeliveryLedger(ctx.metrics, "demo")
    Timer(ctx.env, 1.0, lambda: ledger.deliver(("r1", 1), sent_at=0.25))
    Timer(ctx.env, 2.0, lambda: ledger.deliver(("r1", 1), sent_at=0.25))  # a duplicate: no latency
    Timer(ctx.env, 3.0, lambda: ledger.deliver(("r2", 1), sent_at=0.25))
    ctx.env.run()
    assert (ledger.delivered, ledger.unique, ledger.duplicates) == (3, 2, 1)
    assert ledger.latencies == [0.75, 2.75] and ledger.last_at == 3.0
    assert ledger.count == {("r1", 1): 2, ("r2", 1): 1}
    assert ctx.metrics.total("deliveries_first_total", ledger="demo") == 2
    with pytest.raises(ValueError, match="demo"):
        DeliveryLedger(ctx.metrics, "demo")


def test_total_sums_series_by_label_and_is_zero_without_the_family() -> None:
    ctx = Context(1)
    c = ctx.metrics.counter("jobs_total", "", ("server", "outcome"))
    c.labels("a", "ok").inc(2)
    c.labels("b", "ok").inc(3)
    c.labels("b", "lost").inc(5)
    assert ctx.metrics.total("jobs_total") == 10
    assert ctx.metrics.total("jobs_total", outcome="ok") == 5
    assert ctx.metrics.total("jobs_total", server="b", outcome="lost") == 5
    assert ctx.metrics.total("nothing_total") == 0
    with pytest.raises(ValueError, match="no label"):
        ctx.metrics.total("jobs_total", pod="x")


def test_scrape_every_stops_once_its_event_has_triggered_and_sums_each_scrape() -> None:
    ctx = Context(1)
    env, m = ctx.env, ctx.metrics
    g = m.gauge("up", "", ("node",))
    g.labels("a").set(1)
    g.labels("b").set(2)
    stop = env.event()
    Timer(env, 2.5, lambda: stop.succeed())
    Timer(env, 1.5, lambda: g.labels("b").set(5))
    scraper = m.scrape_every(1.0, names=["up"], stop=stop)
    env.run(until=10)
    scraper.scrape(at=9.0)
    assert [(t, sums["up"]) for t, sums in scraper.totals()] == [(0.0, 3.0), (1.0, 3.0), (2.0, 6.0), (9.0, 6.0)]
    assert m.scrapes_frame()["time_s"].tolist() == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 9.0, 9.0]


def test_outbox_counts_are_series_labelled_by_client_and_the_ack_timer_is_cancelled_by_the_ack() -> None:
    ctx = Context(1)
    net = Network(ctx, LinkSpec(latency=Constant(0.01), fifo=True))
    from sim.components.outbox import Deduplicator

    applied = []
    dedupe = Deduplicator(lambda c, seq, body: applied.append(seq))
    Server(ctx, "srv", network=net, on_data=dedupe.on_data)
    client = Client(ctx, "c", net, "srv", on_message=lambda _c, payload: box.handle(payload))
    box = Outbox(ctx, client, capacity=10, ack_timeout=0.5)
    client.connect().callbacks.append(lambda _e: box.connected())
    for body in "ab":
        box.submit(body)
    ctx.env.run(until=5)
    assert applied == [1, 2] and box.held == 0
    assert (box.produced, box.transmissions, box.replayed, box.acked, box.retransmitted) == (2, 2, 2, 2, 0)
    assert ctx.metrics.total("outbox_acked_total", client="c") == 2
    assert ctx.metrics["outbox_held_messages"].labels(client="c").value == 0
    assert math.isclose(ctx.metrics.total("messages_submitted_total"), 2)
