"""``offline-buffer``: « buffer local des messages non envoyés (replay après reconnexion) ».

``clients`` clients each produce messages at ``rate`` per second (Poisson) for ``duration``
seconds and send them to one server over a persistent connection. Each client's link flaps:
it stays up for ``uptime`` seconds, then is cut for ``outage`` seconds. The cut drops every
frame crossing it, including those already in flight. The link also loses each frame with
probability ``loss``. A client notices a dead connection by its heartbeat timeout and then
reconnects at once, and every ``retry_interval`` seconds while that fails (a
:class:`~sim.components.resilient_client.ResilientClient` with a table backoff). Three designs
are compared:

* ``none``: send only when connected, otherwise drop (the course's answer without a buffer).
  Messages produced offline are lost, and so are messages sent into a connection that is dying
  before the client notices;
* ``buffer``: an :class:`~sim.components.outbox.Outbox` keeps every message until it is acked
  and replays it after reconnection. Nothing is lost except by overflow, but a message whose
  ack was lost is applied again (at least once);
* ``buffer_dedupe``: the same outbox, and the server applies each ``(client, seq)`` once and
  acks every copy (an exactly-once effect).

Each mode runs with the same seed, so it sees the same production times and the same outages
(common random numbers). After ``duration`` production stops, no new outage starts, and each
client closes once its outbox is empty. The run ends when every client has closed, or
``drain_limit`` seconds after production stopped, and then every frame still in flight lands.
Conservation, per mode::

    sent = applied + lost
    lost = dropped_offline + lost_in_transit + overflow_lost + pending

``applied`` counts distinct messages that took effect at the server, and ``duplicated`` counts
extra applications. ``overflow_lost`` counts messages evicted or refused by a full outbox that
never took effect. ``pending`` counts those still held when the drain limit cut the run short.
``lost_in_transit`` counts messages sent by ``none`` into a dying connection; it is 0 with an
outbox, which keeps every message until it is acked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import simpy

from sim.components.backoff import Table
from sim.components.client import CONNECTED, Client
from sim.components.outbox import OVERFLOW_POLICIES, Deduplicator, DirectSender, Outbox
from sim.components.resilient_client import ReconnectTracker, ResilientClient
from sim.components.server import Server
from sim.core.ledger import DeliveryLedger
from sim.core.params import WorkModel
from sim.core import (
    Context, Distribution, Exponential, LinkSpec, Network, ParameterError, Params, Result, Uniform, expand_names,
    param,
)
from sim.core.registry import scenario
from sim.core.replication import replicate, replications_param

MODES = ("none", "buffer", "buffer_dedupe")
CONFIGURATION = ["clients", "rate", "duration_s", "uptime_mean_s", "outage_mean_s", "loss", "capacity", "overflow",
                 "ack_timeout_s"]
"""Summary columns that restate the parameters (no interval over replications)."""
SERVER = "server"


@dataclass(frozen=True)
class OfflineBufferParams(Params):
    """Parameters of the ``offline-buffer`` scenario."""
    work = WorkModel(seconds_at_defaults=1.1, factors=('clients', 'rate', 'duration'))  # measured, see check_work

    mode: str = param("all", help="none (drop while offline), buffer (outbox + replay), buffer_dedupe (+ server "
                                  "dedupe); several separated by commas, or all (on the same seed)")
    replications: int = replications_param()
    clients: int = param(20, ge=1, help="clients, each with its own connection and outbox")
    rate: float = param(2.0, gt=0, unit="1/s", help="messages each client produces per second (Poisson)")
    duration: float = param(300.0, gt=0, unit="s", help="production period; afterwards the system drains")
    uptime: Distribution = param(Exponential(0.05), unit="s",
                                 help="how long a client's link stays up between outages (default mean 20 s)")
    outage: Distribution = param(Exponential(0.2), unit="s",
                                 help="how long each cut of a client's link lasts (default mean 5 s)")
    latency: Distribution = param(Uniform(0.02, 0.08), unit="s", help="one-way latency client <-> server")
    loss: float = param(0.01, ge=0, lt=1, help="probability that the link loses a frame (each direction)")
    capacity: int = param(100, ge=1, help="most messages an outbox holds, unacknowledged ones included")
    overflow: str = param("drop_oldest", choices=OVERFLOW_POLICIES,
                          help="full outbox: evict the oldest held message, or refuse the new one")
    ack_timeout: float | None = param(1.0, gt=0, unit="s", none_means="resend only after a reconnection",
                                      help="resend an unacknowledged message this long after its last send")
    heartbeat_interval: float = param(1.0, gt=0, unit="s", help="client ping period")
    heartbeat_timeout: float = param(3.0, gt=0, unit="s",
                                     help="silence after which a client declares the connection dead")
    connect_timeout: float = param(2.0, gt=0, unit="s", help="wait for a handshake answer before giving up")
    retry_interval: float = param(1.0, ge=0, unit="s", help="pause between failed reconnection attempts")
    drain_limit: float = param(300.0, gt=0, unit="s", help="most time allowed after production for outboxes to empty")
    sample_interval: float = param(1.0, gt=0, unit="s", help="period of the timeline series")

    def validate(self) -> None:
        self.modes  # raises on an unknown name
        if self.heartbeat_timeout < self.heartbeat_interval:
            raise ParameterError("heartbeat_timeout", f"must be >= heartbeat_interval ({self.heartbeat_interval} s), "
                                                      f"got {self.heartbeat_timeout}")
        if not self.uptime.mean > 0:
            raise ParameterError("uptime", f"must have a mean > 0 s (links must be up some of the time), "
                                           f"got {self.uptime.spec()}")

    @property
    def modes(self) -> tuple[str, ...]:
        return expand_names("mode", self.mode, MODES)


class _Station:
    """One client: its resilient connection, its sender (outbox or direct), producer and flapping link."""

    __slots__ = ("run", "name", "client", "sender", "producing", "stopping", "up_since", "_up_seconds")

    def __init__(self, run: "_Run", name: str, mode: str) -> None:
        p, metrics = run.p, run.ctx.metrics
        self.run, self.name = run, name
        self.client = ResilientClient(run.ctx, name, run.net, SERVER, run.reconnect, run.tracker,
                                      connect_timeout=p.connect_timeout, heartbeat_interval=p.heartbeat_interval,
                                      heartbeat_timeout=p.heartbeat_timeout, on_message=self._on_message,
                                      on_disconnect=self._on_disconnect, on_connect=self._on_connect)
        if mode == "none":
            self.sender: Outbox | DirectSender = DirectSender(self.client)
        else:
            self.sender = Outbox(run.ctx, self.client, capacity=p.capacity, overflow=p.overflow,
                                 ack_timeout=p.ack_timeout, on_drained=lambda _o: self._maybe_finish(),
                                 on_overflow=lambda seq, _body: run.overflowed.append((name, seq)))
        self.producing, self.stopping, self.up_since = True, False, math.nan
        self._up_seconds = metrics.counter("offline_buffer_connected_seconds_total",
                                           "Connected time within the production period", ("client",)).labels(name)

    def start(self) -> None:
        env, ctx, p = self.run.env, self.run.ctx, self.run.p
        env.process(self._produce(env, Exponential(p.rate).bind(ctx.rng(f"produce.{self.name}"))))
        env.process(self._flap(env, p.uptime.bind(ctx.rng(f"link.{self.name}.uptime")),
                               p.outage.bind(ctx.rng(f"link.{self.name}.outage"))))
        self.client.start()

    def _produce(self, env: simpy.Environment, interarrival: Distribution):
        end = self.run.p.duration
        while True:
            t = env.now + interarrival.sample()
            if t >= end:
                break
            yield env.timeout(t - env.now)
            self.sender.submit(env.now)  # the body is the production time, for the delay statistic
        yield env.timeout(end - env.now)
        self.producing = False
        self._maybe_finish()

    def _flap(self, env: simpy.Environment, uptime: Distribution, outage: Distribution):
        # Outage times depend only on this client's streams, not on traffic, so every mode sees the same cuts.
        end, links_down = self.run.p.duration, self.run.links_down
        while True:
            yield env.timeout(uptime.sample())
            if env.now >= end:
                return  # no new outage while draining, so the drain ends
            down = outage.sample()
            self.run.net.partition([self.name], [SERVER], start=env.now, heal=env.now + down)
            links_down.inc()
            yield env.timeout(down)
            if not self.run.all_finished.triggered:  # the timeline ends with the state when the clients finished
                links_down.dec()

    def _on_connect(self, _client: Client) -> None:
        self.up_since = self.run.env.now
        self.sender.connected()  # replay what the outbox holds

    def _on_message(self, _client: Client, payload) -> None:
        self.sender.handle(payload)

    def _on_disconnect(self, _client: Client, _how: str, _code: int) -> None:
        self._count_uptime()  # the client reconnects by itself, following its backoff

    def _count_uptime(self) -> None:
        end = self.run.p.duration
        if not math.isnan(self.up_since):
            self._up_seconds.inc(max(0.0, min(self.run.env.now, end) - min(self.up_since, end)))
        self.up_since = math.nan

    def _maybe_finish(self, *, force: bool = False) -> None:
        if self.stopping or (not force and (self.producing or self.sender.held)):
            return
        self.stopping = True
        if self.client.state == CONNECTED:
            self._count_uptime()
        self.client.stop()  # no more heartbeats or attempts; an attempt in progress is abandoned
        self.run.station_finished()


#: Timeline column -> the registry series summed into it (the timeline is a scrape of the registry).
TIMELINE = {"connected": "reconnect_clients_connected", "link_down": "offline_buffer_links_down",
            "buffered": "outbox_held_messages", "sent": "messages_submitted_total",
            "applied": "deliveries_first_total", "delivered": "deliveries_total"}


class _Run:
    """One mode in one replication: the wiring; everything it counts is in ``ctx.metrics``."""

    def __init__(self, p: OfflineBufferParams, mode: str, seed: int, replication: int = 0) -> None:
        self.p, self.mode = p, mode
        self.ctx = ctx = Context(seed, replication=replication)
        self.env, metrics = ctx.env, ctx.metrics
        self.net = Network(ctx, LinkSpec(latency=p.latency, loss=p.loss, fifo=True))  # fifo: a TCP stream
        self.tracker = ReconnectTracker(metrics)
        self.ledger = DeliveryLedger(metrics, "applied")
        self.links_down = metrics.gauge("offline_buffer_links_down", "Client links cut right now")
        # at once after a loss, then every retry_interval while attempts fail
        self.reconnect = Table([0.0], p.retry_interval, name="retry_interval")
        receiver = Deduplicator(lambda client, seq, produced_at: self.ledger.deliver((client, seq), produced_at),
                                dedupe=mode == "buffer_dedupe", ack=mode != "none")
        self.server = Server(ctx, SERVER, network=self.net, on_data=receiver.on_data)
        self.overflowed: list[tuple[str, int]] = []
        """(client, seq) of every message a full outbox evicted or refused."""
        self.stations = [_Station(self, f"c{i}", mode) for i in range(p.clients)]
        self._running = len(self.stations)
        self.all_finished = self.env.event()

    def station_finished(self) -> None:
        self._running -= 1
        if self._running == 0:
            self.all_finished.succeed()

    def _deadline(self, env: simpy.Environment):
        yield env.timeout(self.p.duration + self.p.drain_limit)
        for station in self.stations:
            station._maybe_finish(force=True)  # what is still held then is reported as pending

    def execute(self) -> tuple[dict, pd.DataFrame]:
        env, p = self.env, self.p
        for station in self.stations:
            station.start()
        env.process(self._deadline(env))
        scraper = self.ctx.metrics.scrape_every(p.sample_interval, names=TIMELINE.values(), stop=self.all_finished)
        env.run(until=self.all_finished)
        finished = env.now
        env.run()  # every client is closed: let frames in flight land and timers expire
        # env.now has now jumped past leftover timers: date the last row by the last change instead
        scraper.scrape(at=max(finished, self.ledger.last_at))
        rows = [{"time_s": t, "mode": self.mode, **{col: int(sums.get(name, 0)) for col, name in TIMELINE.items()}}
                for t, sums in scraper.totals()]
        for row in rows:
            row["duplicated"] = row.pop("delivered") - row["applied"]
        return self._summary(finished - p.duration), pd.DataFrame(rows)

    def _summary(self, drain: float) -> dict:
        p, ledger, stations, total = self.p, self.ledger, self.stations, self.ctx.metrics.total
        sent, applied, applied_keys = int(total("messages_submitted_total")), ledger.unique, ledger.count
        transmissions = int(total("messages_transmitted_total"))
        if self.mode == "none":
            dropped_offline = int(total("messages_dropped_offline_total"))
            lost_in_transit = transmissions - applied  # each message is sent at most once and never copied
            overflowed = overflow_lost = pending = replayed = retransmitted = 0
        else:
            dropped_offline = lost_in_transit = 0
            overflowed = int(total("outbox_overflowed_total"))
            overflow_lost = sum(key not in applied_keys for key in self.overflowed)
            pending = sum((s.name, seq) not in applied_keys for s in stations for seq in s.sender.held_seqs())
            replayed, retransmitted = int(total("outbox_replayed_total")), int(total("outbox_retransmitted_total"))
        delays, duplicated = np.asarray(ledger.latencies), ledger.duplicates
        return {
            "mode": self.mode, "sent": sent, "applied": applied, "lost": sent - applied, "duplicated": duplicated,
            "overflowed": overflowed, "replayed": replayed, "retransmitted": retransmitted,
            "dropped_offline": dropped_offline, "lost_in_transit": lost_in_transit,
            "overflow_lost": overflow_lost, "pending": pending,
            "delivery_ratio": applied / sent if sent else math.nan,
            "duplicate_ratio": duplicated / applied if applied else math.nan,
            "data_frames": transmissions, "disconnects": self.tracker.losses,
            "offline_fraction": 1.0 - total("offline_buffer_connected_seconds_total") / (len(stations) * p.duration),
            "delay_mean_s": float(delays.mean()) if len(delays) else math.nan,
            "delay_p99_s": float(np.quantile(delays, 0.99)) if len(delays) else math.nan,
            "drain_s": drain,
            "clients": p.clients, "rate": p.rate, "duration_s": p.duration,
            "uptime_mean_s": p.uptime.mean, "outage_mean_s": p.outage.mean, "loss": p.loss,
            "capacity": p.capacity if self.mode != "none" else 0, "overflow": p.overflow if self.mode != "none" else "",
            "ack_timeout_s": p.ack_timeout if p.ack_timeout is not None else math.inf,
        }


def simulate(p: OfflineBufferParams, mode: str, seed: int, replication: int = 0) -> tuple[dict, pd.DataFrame]:
    """One mode in one replication: its summary row and its timeline."""
    if mode not in MODES:
        raise ParameterError("mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
    return _Run(p, mode, seed, replication).execute()


@scenario("offline-buffer", OfflineBufferParams,
          "Q7: offline buffer with replay under flapping connections: lost, at-least-once, exactly-once")
def run_offline_buffer(p: OfflineBufferParams, seed: int) -> Result:
    def once(r: int):
        runs = [simulate(p, mode, seed, r) for mode in p.modes]
        return [row for row, _ in runs], {"timeline": pd.concat([t for _, t in runs], ignore_index=True)}

    reps = replicate(p.replications, once)
    summary = reps.summary(["mode"], keep=CONFIGURATION)
    return Result("offline-buffer", seed, p, summary, {"replications": reps.rows, **reps.series})
