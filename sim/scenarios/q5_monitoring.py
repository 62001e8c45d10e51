"""``monitoring-incident``: a node crashes under persistent connections; what does monitoring see?

The course (5A) names three key metrics: active connections, **mean** message latency, and the
rate of reconnections / network errors; (5B) Prometheus collects them by scraping and Grafana
draws them. Here ``clients`` persistent connections are spread by a least-connections load
balancer over ``servers`` nodes; a publisher sends ``message_rate`` messages per second, each
to one client, through the client's node (a worker queue) and the network. At ``crash_at`` one
node's process dies: its clients see a reset, reconnect with a backoff policy through the
balancer (which keeps routing to the dead node until its health check fails), and messages
for them wait in the broker's backlog until they are back. The node restarts ``downtime`` s
later, empty.

Every count comes from the run's Prometheus registry (``ctx.metrics``): the servers'
``server_connections`` gauges and ``server_handshakes_total`` counters, and the scenario's
``message_latency_seconds`` histogram (explicit buckets), ``client_reconnections_total`` and
``client_disconnections_total{reason}``. One :class:`~sim.monitoring.scraper.Scraper` per
``scrape_intervals`` entry samples the registry, plus a 1 s scraper as the ground truth.

For each scrape interval the summary compares what the scrapes show with the truth: the dip of
active connections (a few seconds long: a 15 s or 60 s scrape usually never sees it), the peak
reconnection rate (``rate()`` over 4 scrape intervals, as Grafana's ``$__rate_interval``
does, smears the storm), and the detection delay of each alerting rule of
``data/prometheus/alerts.yml``, evaluated on those scrapes with ``evaluation_interval`` equal
to the scrape interval. Latency: the true p50/p99/max from every delivered message, the p99
that ``histogram_quantile`` interpolates from the buckets, and the mean (``_sum / _count``).

Each scraper starts at a random phase (``scrape_phase``), so whether a short dip falls between two
scrapes varies over replications: it is seen with probability about dip / interval.

Simplifications: a scrape is instantaneous and never fails; rule evaluation happens right after
a scrape; the broker never loses a message (at-least-once, kept until delivered); handshakes
and messages share nothing on a node but the network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.components.backoff import PRESETS, STRATEGIES, make_backoff
from sim.components.client import CONNECTED
from sim.components.load_balancer import ClientKey, LoadBalancer
from sim.components.resilient_client import ReconnectTracker, ResilientClient
from sim.components.server import Job, Server, ServerSpec
from sim.core import Context, Distribution, Exponential, LinkSpec, Network, ParameterError, Params, Result, \
    TruncatedNormal, param
from sim.core.registry import scenario
from sim.core.replication import replicate, replications_param

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds of ``message_latency_seconds``, in seconds (explicit, chosen around the expected
tens of milliseconds and the seconds of a reconnection)."""
TRUTH_INTERVAL_S = 1.0
"""The ground-truth scraper's interval."""


@dataclass(frozen=True)
class MonitoringIncidentParams(Params):
    """Parameters of ``monitoring-incident``."""

    clients: int = param(2_000, ge=1, help="persistent connections, all open at the start")
    servers: int = param(4, ge=2, help="nodes behind the load balancer (one of them crashes)")
    message_rate: float = param(100.0, gt=0, unit="1/s", help="messages published per second, each to one random client")
    service_time: Distribution = param(Exponential(500.0), unit="s", help="node time to process one message")
    latency: Distribution = param(TruncatedNormal(0.02, 0.005), unit="s", help="one-way network latency")
    crash_at: float = param(127.0, ge=0, unit="s", help="when one node's process crashes")
    downtime: float = param(60.0, ge=0, unit="s", help="how long it stays down before restarting (empty)")
    health_check_delay: float = param(2.0, ge=0, unit="s", help="time for the balancer's health checks to mark the dead node down")
    strategy: str = param("full_jitter", help="clients' backoff: a textbook strategy or a real client's preset")
    backoff_base: float = param(0.5, gt=0, unit="s", help="textbook strategies: first delay")
    backoff_cap: float = param(4.0, gt=0, unit="s", help="textbook strategies: largest delay")
    admission_rate: float = param(200.0, gt=0, unit="1/s", help="handshakes a node accepts per second")
    scrape_intervals: tuple[float, ...] = param((15.0, 60.0), gt=0, unit="s",
                                                help="Prometheus scrape intervals compared (each also the rules' evaluation interval)")
    scrape_phase: str = param("random", choices=("random", "aligned"),
                              help="random: each scraper's first scrape at a uniform offset in [0, interval), drawn "
                                   "per replication (Prometheus spreads its targets over the interval); "
                                   "aligned: scrapes at 0, interval, 2 x interval ...")
    horizon: float = param(300.0, gt=0, unit="s", help="simulated time")
    telemetry: bool = param(False, help="also keep JSON logs of connection events and OpenTelemetry traces "
                                        "(every trace_every-th message and every message slower than 1 s)")
    trace_every: int = param(100, ge=1, help="with telemetry: head sampling, one message traced in this many")
    replications: int = replications_param()

    def validate(self) -> None:
        if self.strategy not in STRATEGIES + PRESETS:
            raise ParameterError("strategy", f"must be one of {', '.join(STRATEGIES + PRESETS)}, got {self.strategy!r}")
        if self.backoff_cap < self.backoff_base:
            raise ParameterError("backoff_cap", f"must be >= backoff_base ({self.backoff_base} s), got {self.backoff_cap}")
        if self.crash_at + self.downtime >= self.horizon:
            raise ParameterError("horizon", f"must be > crash_at + downtime ({self.crash_at + self.downtime} s)")
        if not self.scrape_intervals:
            raise ParameterError("scrape_intervals", "must list at least one interval")


class _Fleet:
    """The balancer, the nodes and the broker's backlog that every client of one run shares."""

    def __init__(self, ctx: Context, p: MonitoringIncidentParams) -> None:
        self.ctx, self.env, self.p = ctx, ctx.env, p
        self.net = Network(ctx, LinkSpec(latency=p.latency))
        spec = ServerSpec(service_time=p.service_time, admission_rate=p.admission_rate, admission_burst=20)
        self.servers = {f"node-{i}": Server(ctx, f"node-{i}", spec, self.net) for i in range(p.servers)}
        self.lb = LoadBalancer(ctx, "least_connections", self.servers, health_check_delay=p.health_check_delay)
        self.clients: list[ResilientClient] = []
        self.backlog: dict[str, list[tuple[int, float]]] = {}
        """Messages waiting for a disconnected client: client name -> [(id, published_at)]."""
        self.delivered: list[tuple[float, float]] = []
        """Ground truth: ``(delivered_at, latency)`` of every message delivered."""
        self.log = self.tracer = None
        self._hops: dict[int, tuple] = {}  # with telemetry: msg id -> (submitted, started, finished, backlogged)
        self._backlogged: set[int] = set()
        if p.telemetry:
            from sim.monitoring.telemetry import RunLog, Tracer

            self.log = RunLog(self.env, "realtime")
            self.tracer = Tracer(ctx.rng("trace-ids"))
        m = ctx.metrics
        self.m_latency = m.histogram("message_latency_seconds", "Publish-to-client latency of delivered messages",
                                     ("server",), buckets=LATENCY_BUCKETS)
        self.m_published = m.counter("messages_published_total", "Messages published")
        self.m_delivered = m.counter("messages_delivered_total", "Messages delivered to a client", ("server",))
        self.m_reconnections = m.counter("client_reconnections_total", "Connections re-established after a loss")
        self.m_disconnections = m.counter("client_disconnections_total", "Established connections lost, by reason",
                                          ("reason",))
        for reason in ("reset", "timeout", "clean"):
            self.m_disconnections.labels(reason).inc(0)  # exported at 0 before the first one
        for name in self.servers:  # every series exported from the start, at 0
            self.m_delivered.labels(name).inc(0)
            self.m_latency.labels(name)

    # --- messages ---------------------------------------------------------------------------
    def publish(self, client: ResilientClient, msg_id: int) -> None:
        self.m_published.inc()
        self._route((msg_id, self.env.now), client)

    def _route(self, msg: tuple[int, float], client: ResilientClient) -> None:
        server = self.servers.get(client.server)
        if client.state != CONNECTED or server is None or not server.up:
            self.backlog.setdefault(client.name, []).append(msg)
            if self.tracer is not None:
                self._backlogged.add(msg[0])
            return
        server.submit(Job((msg, client), on_done=self._processed))

    def _processed(self, job: Job) -> None:
        msg, client = job.payload
        if job.outcome != "completed" or not self.servers[client.server].send_to(client.name, msg):
            self._route(msg, client)  # lost with the node, or the client left meanwhile: back to the broker
        elif self.tracer is not None:
            self._hops[msg[0]] = (job.arrived_at, job.started_at, job.finished_at)

    def received(self, client: ResilientClient, msg: tuple[int, float]) -> None:
        now = self.env.now
        latency = now - msg[1]
        self.m_latency.labels(client.server).observe(latency)
        self.m_delivered.labels(client.server).inc()
        self.delivered.append((now, latency))
        if self.tracer is not None:
            hops = self._hops.pop(msg[0], None)
            backlogged = msg[0] in self._backlogged
            self._backlogged.discard(msg[0])
            # head sampling (one in trace_every) plus tail sampling (every slow message)
            if hops is not None and (msg[0] % self.p.trace_every == 0 or latency > 1.0):
                from sim.monitoring.telemetry import message_trace

                message_trace(self.tracer, msg[0], client.name, client.server, msg[1], *hops, now, backlogged)

    # --- connections ------------------------------------------------------------------------
    def connected(self, client: ResilientClient) -> None:
        if not math.isnan(client.lost_at):
            self.m_reconnections.inc()
            if self.log is not None:
                self.log.info("client reconnected", client=client.name, server=client.server,
                              down_s=round(self.env.now - client.lost_at, 6),
                              backlog=len(self.backlog.get(client.name, ())))
        for msg in self.backlog.pop(client.name, ()):
            self._route(msg, client)

    def disconnected(self, client: ResilientClient, how: str, code: int) -> None:
        self.m_disconnections.labels(how).inc()
        if self.log is not None:
            self.log.warning("client connection lost", client=client.name, server=client.server, reason=how,
                             close_code=code)


def _client(ctx: Context, fleet: _Fleet, i: int, policy, tracker: ReconnectTracker, uniform) -> ResilientClient:
    """A resilient client that asks the balancer for a node before every attempt."""
    return ResilientClient(ctx, f"c{i}", fleet.net, None, policy, tracker, uniform, router=fleet.lb,
                           key=ClientKey(f"c{i}", i), on_connect=fleet.connected,
                           on_disconnect=fleet.disconnected, on_message=fleet.received)


def build(ctx: Context, p: MonitoringIncidentParams) -> _Fleet:
    """The incident on ``ctx`` (its environment may be a ``sim.core.RealtimeEnvironment``, as in
    ``python -m sim live``): every client connected, node-0's crash and restart scheduled, the
    publisher started. Run ``ctx.env`` to play it."""
    env = ctx.env
    fleet = _Fleet(ctx, p)
    policy = make_backoff(p.strategy, base=p.backoff_base, cap=p.backoff_cap)
    tracker = ReconnectTracker()
    stream = ctx.rng("backoff")
    uniform = lambda: float(stream.random())  # noqa: E731
    for i in range(p.clients):
        client = _client(ctx, fleet, i, policy, tracker, uniform)
        backend = fleet.lb.route(client.key)
        client.place(backend)
        client.adopt_connection()  # the router's opened() is called here
        fleet.servers[backend.name].adopt(client.name)
        fleet.clients.append(client)

    victim = fleet.servers["node-0"]

    def incident(env):
        yield env.timeout(p.crash_at)
        if fleet.log is not None:
            fleet.log.warning("node process crashed", server=victim.name, connections=len(victim.connections))
        victim.crash()
        fleet.lb.fail(victim.name)
        yield env.timeout(p.downtime)
        victim.restart()
        fleet.lb.mark_up(victim.name)
        if fleet.log is not None:
            fleet.log.info("node restarted", server=victim.name)

    env.process(incident(env))
    targets = ctx.rng("publisher")

    def publisher(env):
        msg_id = 0
        while True:  # Poisson arrivals, each to a uniformly drawn client (drawn 4096 at a time)
            gaps = targets.exponential(1 / p.message_rate, 4096).tolist()
            picks = targets.integers(p.clients, size=4096).tolist()
            for gap, pick in zip(gaps, picks):
                yield env.timeout(gap)
                fleet.publish(fleet.clients[pick], msg_id)
                msg_id += 1

    env.process(publisher(env))
    return fleet


def simulate(p: MonitoringIncidentParams, seed: int, replication: int) -> tuple[list[dict], dict]:
    """One incident, watched by one scraper per interval: summary rows and series."""
    import pandas as pd

    from sim.monitoring import alerts
    from sim.monitoring.query import Store, instant_query
    from sim.monitoring.promql import eval_times, histogram_quantile, query_range
    from sim.monitoring.scraper import Scraper

    ctx = Context(seed, replication=replication)
    env = ctx.env
    fleet = build(ctx, p)
    truth = Scraper(ctx.metrics, TRUTH_INTERVAL_S, until=p.horizon,
                    names={"server_connections", "client_reconnections_total", "client_disconnections_total",
                           "server_handshakes_total", "messages_published_total"})
    def offset(s: float) -> float:
        return float(ctx.rng(f"scrape-phase.{s:g}").uniform(0, s)) if p.scrape_phase == "random" else 0.0

    scrapers = {s: Scraper(ctx.metrics, s, offset=offset(s), until=p.horizon) for s in p.scrape_intervals}
    env.run(until=p.horizon + 1e-9)

    # --- the truth -------------------------------------------------------------------------
    conn_history = ctx.metrics.gauge_history_frame("server_connections")
    active = _total_over_time(conn_history, p.servers)  # (time, total active connections) at every change
    dip_duration = _time_below(active, 0.95 * p.clients, p.horizon)
    latencies = np.array([lat for _t, lat in fleet.delivered])
    hist = ctx.metrics["message_latency_seconds"]
    buckets: dict[float, float] = {}
    for child in hist.children().values():
        for le, n in child.cumulative():
            buckets[le] = buckets.get(le, 0) + n
    total_sum = sum(c.sum for c in hist.children().values())
    total_count = sum(c.count for c in hist.children().values())
    true_store = Store.from_frame(truth.frame())
    peak_true = max((v for t in eval_times(0, p.horizon, TRUTH_INTERVAL_S)
                     for v in instant_query(true_store, "sum(rate(client_reconnections_total[5s]))", t).values()),
                    default=0.0)
    rules = alerts.load_rules()
    base = {
        "clients": p.clients,
        "disconnected_by_crash": int(ctx.metrics["client_disconnections_total"].labels("reset").value),
        "reconnections": int(ctx.metrics["client_reconnections_total"].value),
        "connections_min_true": int(min(n for _t, n in active)),
        "connections_dip_s": dip_duration,
        "reconnect_rate_peak_true": peak_true,
        "latency_mean_s": total_sum / total_count if total_count else math.nan,
        "latency_p50_true_s": float(np.quantile(latencies, 0.5)) if len(latencies) else math.nan,
        "latency_p99_true_s": float(np.quantile(latencies, 0.99)) if len(latencies) else math.nan,
        "latency_max_s": float(latencies.max()) if len(latencies) else math.nan,
        "latency_p99_buckets_s": histogram_quantile(0.99, buckets.items()),
        "published": int(ctx.metrics["messages_published_total"].value),
        "delivered": int(total_count),
    }
    base["latency_p99_error_s"] = base["latency_p99_buckets_s"] - base["latency_p99_true_s"]
    rows, series = [], []
    for interval, scraper in scrapers.items():
        frame = scraper.frame()
        store = Store.from_frame(frame)
        window = 4 * interval
        times = scraper.scrape_times  # the rules are evaluated right after each scrape
        seen_conn = [v for t in times for v in instant_query(store, "sum(server_connections)", t).values()]
        rates = query_range(frame, "rate", "client_reconnections_total", window, times, by=())
        row = {"scrape_interval_s": interval, "scrape_offset_s": scraper.offset, **base,
               "connections_min_seen": int(min(seen_conn)),
               "dip_seen": bool(min(seen_conn) < 0.95 * p.clients),
               "reconnect_rate_peak_seen": float(rates["value"].max()) if len(rates) else 0.0}
        for rule in rules:
            fired = alerts.first_firing(rule, store, times, after=p.crash_at)
            row[f"detect_{rule.name}_s"] = fired - p.crash_at if fired == fired else math.nan
        rows.append(row)
        series.append(pd.DataFrame({"scrape_interval_s": interval, "time_s": times,
                                    "active_connections": [instant_query(store, "sum(server_connections)", t).get((), math.nan)
                                                           for t in times]}))
    truth_frame = pd.DataFrame(active, columns=["time_s", "active_connections"])
    scrapes = pd.concat([sc.frame().assign(scrape_interval_s=interval)
                         for interval, sc in ((TRUTH_INTERVAL_S, truth), *scrapers.items())], ignore_index=True)
    scrapes = scrapes[["scrape_interval_s", *[c for c in scrapes.columns if c != "scrape_interval_s"]]]
    latency_frame = pd.DataFrame(fleet.delivered, columns=["delivered_at_s", "latency_s"])
    tables = {"scraped_connections": pd.concat(series, ignore_index=True), "true_connections": truth_frame,
              "scrapes": scrapes, "latencies": latency_frame}
    if fleet.log is not None:
        tables["logs"] = pd.DataFrame({"line": fleet.log.lines()})
        tables["spans"] = fleet.tracer.frame()
        for row in rows:
            row["log_bytes_per_s"] = fleet.log.bytes() / p.horizon
            row["trace_bytes_per_s"] = fleet.tracer.bytes() / p.horizon
            row["traces"] = int((tables["spans"]["parent_id"] == "").sum()) if len(tables["spans"]) else 0
    return rows, tables


def _total_over_time(history, servers: int) -> list[tuple[float, int]]:
    """The sum of the per-server gauges after every change, from their change history."""
    current: dict[str, float] = {}
    out: list[tuple[float, int]] = []
    for t, server, v in history[["time_s", "server", "value"]].itertuples(index=False, name=None):
        current[server] = v
        total = int(sum(current.values()))
        if out and out[-1][0] == t:
            out[-1] = (t, total)
        else:
            out.append((t, total))
    return out


def _time_below(steps: list[tuple[float, int]], threshold: float, end: float) -> float:
    """Seconds a step function spends below ``threshold`` up to ``end``."""
    total = 0.0
    for (t0, n), (t1, _n) in zip(steps, [*steps[1:], (end, 0)]):
        if n < threshold:
            total += max(0.0, min(t1, end) - t0)
    return total


SUMMARY = ["scrape_offset_s", "connections_min_seen", "reconnect_rate_peak_seen", "connections_min_true", "connections_dip_s",
           "reconnect_rate_peak_true", "latency_mean_s", "latency_p50_true_s", "latency_p99_true_s",
           "latency_p99_buckets_s", "latency_p99_error_s", "latency_max_s", "reconnections"]


@scenario("monitoring-incident", MonitoringIncidentParams,
          "Q5: a node crash and its reconnection storm seen through Prometheus scrapes, rate(), buckets and alerts")
def run_monitoring_incident(p: MonitoringIncidentParams, seed: int) -> Result:
    reps = replicate(p.replications, lambda r: simulate(p, seed, r))
    rows = reps.rows
    detect = [c for c in rows.columns if c.startswith("detect_")]
    summary = reps.summary(["scrape_interval_s"], SUMMARY + ["dip_seen", *detect])
    return Result("monitoring-incident", seed, p, summary, {"replications": rows, **reps.series})
