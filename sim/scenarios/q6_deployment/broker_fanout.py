"""``broker-fanout``: « souvent via un message broker (Redis Pub/Sub, Kafka) » — what each one delivers.

``nodes`` WebSocket nodes share ``subscribers`` clients (client ``i`` starts on node ``i mod
nodes``). ``publishers`` publishers, publisher ``j`` on node ``j + 1 mod nodes``, each publish
``rate`` messages per second (Poisson) for ``duration`` seconds, after ``warmup`` seconds
during which everyone connects. Every subscriber wants every message. The node receiving a
publication hands it to the broker, which must bring it to every node, which pushes it to its
clients (see :mod:`sim.components.broker`). During publishing:

* node ``restart_node`` crashes at ``restart_at`` and comes back ``restart_downtime`` seconds
  later. Its clients see the connection reset and reconnect with their backoff (``strategy``,
  ``backoff_*``; by default a wait drawn from U(0, 2 s) before each attempt), each to a node
  chosen at random among those up (a load balancer with health checks, the ``random`` policy);
* the last subscriber closes its connection at ``disconnect_at`` and reconnects
  ``disconnect_for`` seconds later (through the load balancer too).

Each broker model runs on the same seed, hence the same publications, crash and reconnection
choices (common random numbers):

* ``pubsub`` (Redis Pub/Sub): at most once. Whoever is not connected when a message is
  published never gets it; so do the crashed node's clients until they are back. A node that
  reads its subscription slower than the messages arrive (``slow_read_rate``) is cut off at
  the output-buffer limit and loses the buffer and what is published until it resubscribes.
  A client that moves from a node to a lagging one can even receive a message twice: each
  node's subscription is at most once, the client's path through two nodes is not;
* ``log`` (Kafka): each subscriber resumes from its committed offset, so nothing is lost
  within the retention. With ``commit=after_processing`` a message processed but not yet
  committed when the node crashed is delivered again (a duplicate); with
  ``before_processing`` it is committed first and, if the crash catches it during the node's
  ``processing`` time, never sent: lost (at most once).

After ``duration`` publishing stops and the run goes on ``drain`` more seconds. Per broker::

    expected_deliveries = published * subscribers = delivered_unique + lost
    delivered = delivered_unique + duplicates

``disconnected_at_publish`` counts the (message, subscriber) pairs whose subscriber was not
connected when the broker accepted the message, ``lost_disconnected`` those of them that were
never delivered (all of them with pub/sub), ``lost_expired`` those that the log's retention deleted before the
subscriber came back. Latency runs from the publisher's send to the first delivery.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim import data
from sim.components.broker import (
    ACK, COMMIT_POLICIES, PUBLISH, SUBSCRIBE, LogBroker, LogNode, NatsCoreBroker, Publication, PubSubBroker, PubSubNode,
    bus,
)
from sim.components.backoff import PRESETS, STRATEGIES, make_backoff
from sim.components.client import CONNECTED, Client
from sim.components.load_balancer import ClientKey, LoadBalancer
from sim.components.resilient_client import ReconnectTracker, ResilientClient
from sim.components.server import Server
from sim.core.params import WorkModel
from sim.core import (
    Context, Distribution, Exponential, LinkSpec, Network, ParameterError, Params, Result, Uniform, expand_names,
    param,
)
from sim.core.ledger import DeliveryLedger
from sim.core.registry import scenario
from sim.core.replication import replicate, replications_param

BROKERS = ("pubsub", "log", "nats", "jetstream")
PUSH_ONLY = ("pubsub", "nats")
"""Brokers that store nothing (at most once); the others keep a log consumers resume from."""
BROKER = "broker"
_REDIS = data.load("brokers")["redis_pubsub"]["client_output_buffer_limit_pubsub"]
_KAFKA = data.load("brokers")["kafka"]
_NATS = data.load("brokers")["nats_core"]
_JETSTREAM_MAX_AGE_S = 1e9  # MaxAge 0 = unlimited in JetStream: longer than any run


@dataclass(frozen=True)
class BrokerFanoutParams(Params):
    """Parameters of the ``broker-fanout`` scenario."""
    work = WorkModel(seconds_at_defaults=0.9, factors=('subscribers', 'rate', 'duration'))  # measured, see check_work

    broker: str = param("all", help="pubsub (Redis Pub/Sub), log (Kafka), nats (core NATS), jetstream (NATS "
                                    "JetStream); several separated by commas, or all (on the same seed)")
    replications: int = replications_param()
    nodes: int = param(4, ge=1, help="WebSocket nodes")
    subscribers: int = param(40, ge=1, help="subscribing clients, spread over the nodes")
    publishers: int = param(2, ge=1, help="publishers; publisher j publishes through node j+1 (mod nodes)")
    rate: float = param(5.0, gt=0, unit="1/s", help="messages each publisher publishes per second (Poisson)")
    message_bytes: int = param(1000, ge=1, unit="B", help="size of a message")
    warmup: float = param(1.0, ge=0, unit="s", help="time for everyone to connect before publishing starts")
    duration: float = param(60.0, gt=0, unit="s", help="publishing period")
    drain: float = param(5.0, ge=0, unit="s", help="time after publishing for messages in flight to arrive")
    latency: Distribution = param(Uniform(0.01, 0.05), unit="s", help="one-way latency client <-> node")
    broker_latency: Distribution = param(Uniform(0.0005, 0.002), unit="s", help="one-way latency node <-> broker")
    restart_node: int = param(0, ge=0, help="index of the node that crashes and restarts")
    restart_at: float | None = param(20.0, ge=0, unit="s", none_means="no restart",
                                     help="when that node's process crashes")
    restart_downtime: float = param(5.0, ge=0, unit="s", help="how long it stays down")
    strategy: str = param("full_jitter", help="clients' reconnect backoff: " + ", ".join(STRATEGIES + PRESETS))
    backoff_base: float = param(2.0, gt=0, unit="s", help="textbook strategies: first delay (base)")
    backoff_multiplier: float = param(1.0, ge=1, help="textbook strategies: growth factor per attempt "
                                                      "(1: the same U(0, base) wait before every attempt)")
    backoff_cap: float = param(2.0, gt=0, unit="s", help="textbook strategies: largest delay (cap)")
    disconnect_at: float | None = param(35.0, ge=0, unit="s", none_means="nobody leaves",
                                        help="when the last subscriber closes its connection")
    disconnect_for: float = param(10.0, ge=0, unit="s", help="how long it stays away before reconnecting")
    partitions: int = param(3, ge=1, help="log: partitions of the topic (the key is the publisher)")
    retention: float = param(float(_KAFKA["log_retention_s"]), gt=0, unit="s",
                             help="log: records older than this are deleted (Kafka log.retention.hours=168)")
    retention_check_interval: float = param(float(_KAFKA["log_retention_check_interval_s"]), gt=0, unit="s",
                                            help="log: period of the retention check (Kafka 300000 ms)")
    commit: str = param("after_processing", choices=COMMIT_POLICIES,
                        help="log: commit the offset once the subscriber processed the message (at least once) "
                             "or before it is delivered (at most once)")
    processing: float = param(0.002, ge=0, unit="s",
                              help="log: a node's time between receiving a record and sending it on (assumed 2 ms); "
                                   "a crash drops what is still being processed, lost if already committed")
    read_rate: float = param(10e6, gt=0, unit="B/s", help="pubsub: how fast a node reads its subscription")
    slow_node: int | None = param(None, ge=0, none_means="no slow node",
                                  help="pubsub: index of a node that reads at slow_read_rate instead")
    slow_read_rate: float = param(2000.0, gt=0, unit="B/s", help="pubsub: read rate of the slow node")
    hard_limit_bytes: int = param(int(_REDIS["hard_bytes"]), ge=0, unit="B",
                                  help="pubsub: output buffer size that cuts a subscriber at once (0 = off; Redis 32mb)")
    soft_limit_bytes: int = param(int(_REDIS["soft_bytes"]), ge=0, unit="B",
                                  help="pubsub: output buffer size that cuts a subscriber if it lasts (0 = off; Redis 8mb)")
    soft_seconds: float = param(float(_REDIS["soft_seconds"]), ge=0, unit="s",
                                help="pubsub: how long the soft limit may be exceeded (Redis 60)")
    resubscribe_delay: float = param(1.0, ge=0, unit="s", help="pubsub: a node cut off resubscribes after this")

    def validate(self) -> None:
        self.brokers  # raises on an unknown name
        if self.restart_node >= self.nodes:
            raise ParameterError("restart_node", f"must be < nodes ({self.nodes}), got {self.restart_node}")
        if self.slow_node is not None and self.slow_node >= self.nodes:
            raise ParameterError("slow_node", f"must be < nodes ({self.nodes}), got {self.slow_node}")
        if self.restart_at is not None and self.nodes < 2:
            raise ParameterError("restart_at", "needs nodes >= 2 (the clients reconnect to another node), "
                                               "or none")
        self.backoff()  # raises on a bad strategy or backoff_* value, naming it

    def backoff(self):
        """The subscribers' reconnect policy."""
        return make_backoff(self.strategy, base=self.backoff_base, multiplier=self.backoff_multiplier,
                            cap=self.backoff_cap)

    @property
    def brokers(self) -> tuple[str, ...]:
        return expand_names("broker", self.broker, BROKERS)

    @property
    def end(self) -> float:
        return self.warmup + self.duration + self.drain


class _Subscriber:
    """One subscribing client: its resilient connection through the load balancer, and what it received."""

    __slots__ = ("run", "index", "client", "connects", "max_seen", "out_of_order")

    def __init__(self, run: "_Run", index: int) -> None:
        self.run = run
        self.index = index
        name = f"s{index}"
        self.client = ResilientClient(run.ctx, name, run.net, None, run.backoff, run.tracker, run.jitter,
                                      router=run.lb, key=ClientKey(name, index), on_message=self._on_message,
                                      on_connect=self._on_connect)
        self.connects = 0
        self.max_seen: dict[object, int] = {}
        """Per ordering key (publisher for pubsub, partition for the log), the highest sequence delivered first-time."""
        self.out_of_order = run._out_of_order.labels(name)

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)

    def start(self) -> None:
        """Connect to node ``index mod nodes``; afterwards, reconnect through the load balancer."""
        self.client.start(self.run.lb.backend(self.run.servers[self.index % len(self.run.servers)].name))

    def _on_connect(self, client: Client) -> None:
        self.connects += 1
        client.send((SUBSCRIBE,))

    def _on_message(self, client: Client, payload) -> None:
        _, pub, order_key, order_value = payload
        if self.run.deliveries.deliver((self.index, pub.id), pub.published_at):
            top = self.max_seen.get(order_key, -1)
            if order_value < top:
                self.out_of_order.inc()
            else:
                self.max_seen[order_key] = order_value
        if self.run.kind not in PUSH_ONLY:
            client.send((ACK, order_key, order_value))  # processed: the node may commit

    def leave(self):
        """Close the connection for ``disconnect_for`` seconds, then reconnect through the load balancer."""
        p, env = self.run.p, self.run.env
        yield env.timeout(p.disconnect_at - env.now)
        if not self.connects:
            return  # not subscribed yet: nothing to leave (its consumer group would start at the end)
        self.client.stop()
        yield env.timeout(p.disconnect_for)
        self.client.resume()


class _Run:
    """One broker model in one replication."""

    def __init__(self, p: BrokerFanoutParams, kind: str, seed: int, replication: int = 0) -> None:
        self.p = p
        self.kind = kind
        self.ctx = ctx = Context(seed, replication=replication)
        self.env = ctx.env
        self.net = net = Network(ctx, LinkSpec(latency=p.latency, fifo=True))  # fifo: TCP streams
        self.servers = [Server(ctx, f"node-{i}", network=net) for i in range(p.nodes)]
        self.lb = LoadBalancer(ctx, "random", [s.name for s in self.servers])
        self.backoff = p.backoff()
        self.tracker = ReconnectTracker(ctx.metrics)
        self.deliveries = DeliveryLedger(ctx.metrics, "subscribers")
        """Deliveries per (subscriber index, publication id), first-copy latencies."""
        self._out_of_order = ctx.metrics.counter("deliveries_out_of_order_total",
                                                 "First copies older than one already delivered on the same "
                                                 "ordering key", ("subscriber",))
        self.jitter = Uniform(0.0, 1.0).bind(ctx.rng("reconnect")).sampler()
        broker_link = LinkSpec(latency=p.broker_latency, fifo=True)
        for server in self.servers:
            net.link(bus(server.name), BROKER, broker_link)
        if kind == "nats":
            self.broker = NatsCoreBroker(ctx, net, BROKER, max_pending_bytes=int(_NATS["max_pending_bytes"]),
                                         write_deadline_s=float(_NATS["write_deadline_s"]))
            self.adapters = [
                PubSubNode(ctx, s, net, self.broker, resubscribe_delay=float(_NATS["reconnect_wait_s"]),
                           read_rate=p.slow_read_rate if i == p.slow_node else p.read_rate)
                for i, s in enumerate(self.servers)]
        elif kind == "jetstream":  # one stream (one partition), explicit acks after processing, no age limit
            self.broker = LogBroker(ctx, net, BROKER, partitions=1, retention_s=_JETSTREAM_MAX_AGE_S,
                                    retention_check_interval_s=p.retention_check_interval)
            self.adapters = [LogNode(ctx, s, net, self.broker, commit="after_processing", processing=p.processing)
                             for s in self.servers]
        elif kind == "pubsub":
            self.broker: PubSubBroker | LogBroker = PubSubBroker(
                ctx, net, BROKER, hard_limit_bytes=p.hard_limit_bytes, soft_limit_bytes=p.soft_limit_bytes,
                soft_seconds=p.soft_seconds)
            self.adapters: list[PubSubNode | LogNode] = [
                PubSubNode(ctx, s, net, self.broker, resubscribe_delay=p.resubscribe_delay,
                           read_rate=p.slow_read_rate if i == p.slow_node else p.read_rate)
                for i, s in enumerate(self.servers)]
        else:
            self.broker = LogBroker(ctx, net, BROKER, partitions=p.partitions, retention_s=p.retention,
                                    retention_check_interval_s=p.retention_check_interval)
            self.adapters = [LogNode(ctx, s, net, self.broker, commit=p.commit, processing=p.processing)
                             for s in self.servers]
        self.broker.on_publish = self._on_publish
        self.subscribers = [_Subscriber(self, i) for i in range(p.subscribers)]
        self.pubs: list[Publication] = []
        self.disconnected_at_publish: list[tuple[int, ...]] = []
        """Per publication (by id), the subscribers not connected when the broker accepted it."""
        self.sent = 0
        """Publications sent by the publishers (the last id handed out)."""

    def _on_publish(self, pub: Publication, *_where) -> None:
        self.pubs.append(pub)
        self.disconnected_at_publish.append(
            tuple(s.index for s in self.subscribers if s.client.state != CONNECTED))

    def _publisher(self, j: int):
        env, p = self.env, self.p
        name, node = f"pub-{j}", self.servers[(j + 1) % p.nodes].name
        gaps = Exponential(p.rate).bind(self.ctx.rng(f"publish.{name}"))
        end = p.warmup + p.duration
        seq = 0
        yield env.timeout(p.warmup)
        while True:
            t = env.now + gaps.sample()
            if t >= end:
                return
            yield env.timeout(t - env.now)
            seq += 1
            self.sent += 1
            pub = Publication(self.sent, name, seq, name, env.now, p.message_bytes)
            self.net.send(name, bus(node), (PUBLISH, pub), p.message_bytes)

    def _restart(self):
        env, p = self.env, self.p
        server, adapter = self.servers[p.restart_node], self.adapters[p.restart_node]
        yield env.timeout(p.restart_at - env.now)
        server.crash()
        adapter.crash()
        self.lb.mark_down(server.name)  # health checks: reconnections go to the nodes that are up
        yield env.timeout(p.restart_downtime)
        server.restart()
        adapter.restart()
        self.lb.mark_up(server.name)

    def execute(self) -> tuple[dict, pd.DataFrame]:
        env, p = self.env, self.p
        for s in self.subscribers:
            s.start()
        for j in range(p.publishers):
            env.process(self._publisher(j))
        if p.restart_at is not None:
            env.process(self._restart())
        if p.disconnect_at is not None:
            env.process(self.subscribers[-1].leave())
        env.run(until=p.end)
        return self._summary(), self._per_subscriber()

    def _per_subscriber(self) -> pd.DataFrame:
        count = self.deliveries.count
        published = len(self.pubs)
        rows = []
        for s in self.subscribers:
            unique = sum(1 for pub in self.pubs if (s.index, pub.id) in count)
            total = sum(count.get((s.index, pub.id), 0) for pub in self.pubs)
            rows.append({"broker": self.kind, "subscriber": s.client.name, "node_at_end": s.client.server,
                         "expected": published, "delivered_unique": unique, "duplicates": total - unique,
                         "lost": published - unique, "out_of_order": int(s.out_of_order.value),
                         "reconnects": s.reconnects,
                         "expired": self.broker.expired.get(s.client.name, 0) if self.kind not in PUSH_ONLY else 0})
        return pd.DataFrame(rows)

    def _summary(self) -> dict:
        p, ledger = self.p, self.deliveries
        count, total = ledger.count, self.ctx.metrics.total
        published = self.broker.published
        expected = published * p.subscribers
        delivered, unique = ledger.delivered, ledger.unique
        lost_disconnected = sum((i, pub.id) not in count
                                for pub, away in zip(self.pubs, self.disconnected_at_publish) for i in away)
        lat = np.asarray(ledger.latencies)
        pubsub = self.kind in PUSH_ONLY
        return {
            "broker": self.kind, "published": published, "publish_failed": self.sent - published,
            "subscribers": p.subscribers, "expected_deliveries": expected, "delivered": delivered,
            "delivered_unique": unique, "lost": expected - unique,
            "disconnected_at_publish": sum(map(len, self.disconnected_at_publish)),
            "lost_disconnected": lost_disconnected,
            "lost_expired": 0 if pubsub else sum(self.broker.expired.values()),
            "duplicates": ledger.duplicates, "out_of_order": int(total("deliveries_out_of_order_total")),
            "delivery_ratio": unique / expected if expected else math.nan,
            "latency_p50_s": float(np.quantile(lat, 0.5)) if len(lat) else math.nan,
            "latency_p99_s": float(np.quantile(lat, 0.99)) if len(lat) else math.nan,
            "latency_max_s": float(lat.max()) if len(lat) else math.nan,
            "reconnects": len(self.tracker.reconnect_times),
            "slow_consumer_cutoffs": sum(self.broker.cut_off.values()) if pubsub else 0,
            "lost_in_broker_buffer": self.broker.lost_in_buffer if pubsub else 0,
            "fenced_commits": 0 if pubsub else self.broker.fenced_commits,
            "deleted_by_retention": 0 if pubsub else self.broker.deleted,
            "dropped_in_processing": 0 if pubsub else sum(a.dropped_on_crash for a in self.adapters),
            "commit": "" if pubsub else "after_processing" if self.kind == "jetstream" else p.commit,
        }


def simulate(p: BrokerFanoutParams, broker: str, seed: int, replication: int = 0) -> tuple[dict, pd.DataFrame]:
    """One broker model in one replication: its summary row and its per-subscriber table."""
    if broker not in BROKERS:
        raise ParameterError("broker", f"must be one of {', '.join(BROKERS)}, got {broker!r}")
    return _Run(p, broker, seed, replication).execute()


@scenario("broker-fanout", BrokerFanoutParams,
          "Q6: fan-out across WebSocket nodes via Redis Pub/Sub or a Kafka log: losses, duplicates, latency")
def run_broker_fanout(p: BrokerFanoutParams, seed: int) -> Result:
    def once(r: int):
        runs = [simulate(p, kind, seed, r) for kind in p.brokers]
        return [row for row, _ in runs], {"subscribers": pd.concat([t for _, t in runs], ignore_index=True)}

    reps = replicate(p.replications, once)
    summary = reps.summary(["broker"], keep=["subscribers"])
    return Result("broker-fanout", seed, p, summary, {"replications": reps.rows, **reps.series})
