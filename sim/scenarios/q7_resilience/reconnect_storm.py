"""``reconnect-storm``: a server dies under thousands of persistent connections; how do they come back?

The course (7B) says exponential backoff « évite la surcharge réseau et la tempête de requêtes ».
Here N clients, all connected, are spread over a few servers; one server crashes at
``crash_at`` and restarts ``downtime`` seconds later; it admits at most ``admission_rate``
handshakes per second (the excess is refused, like a server protecting itself). Each
strategy is run on the same seed (common random numbers), so differences come from the
strategy alone. What the course leaves out, and this scenario shows: without jitter,
exponential backoff keeps the herd synchronised — every client retries in the same instant.

Simplifications: clients reconnect to the same server (no load balancer: see question 6);
a handshake is one round trip; the server's admission limit is a token bucket.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim.components.backoff import PRESETS, STRATEGIES, make_backoff
from sim.components.resilient_client import ReconnectTracker, ResilientClient
from sim.components.server import Server, ServerSpec
from sim.core.params import WorkModel
from sim.core import expand_names, Context, Distribution, LinkSpec, Network, ParameterError, Params, Result, TruncatedNormal, \
    Uniform, param
from sim.core.context import run_with_progress
from sim.core.registry import scenario
from sim.core.replication import replicate, replications_param

GROUPS = {"all": STRATEGIES, "presets": PRESETS, "everything": STRATEGIES + PRESETS}
SECONDS_PER_ATTEMPT = 10e-6
"""CPU seconds per connection attempt (two messages, a retry, the bookkeeping), measured on
6 December 2026: 9.0 us at 100,000 clients and 10.3 us at 1,000,000 (full jitter), 8.8 us over
``strategy=all`` at 100,000 (190 s for 21.6 M attempts)."""
SECONDS_PER_CLIENT = 2e-6
"""CPU seconds of set-up per client (most are counted, not built), measured."""


@dataclass(frozen=True)
class ReconnectStormParams(Params):
    """Parameters of ``reconnect-storm``."""
    work = WorkModel(seconds_at_defaults=22.0, factors=('clients', 'horizon'))  # replaced by estimated_seconds

    clients: int = param(10_000, ge=1, help="clients, all connected at the start")
    servers: int = param(4, ge=1, help="servers the clients are spread over (one of them crashes)")
    strategy: str = param("all", help="backoff strategy or real-client preset; several separated by commas; "
                                      "'all' (textbook strategies), 'presets' (real clients) or 'everything'")
    backoff_base: float = param(1.0, gt=0, unit="s", help="textbook strategies: first delay (base)")
    backoff_multiplier: float = param(2.0, ge=1, help="textbook strategies: growth factor per attempt")
    backoff_cap: float = param(30.0, gt=0, unit="s", help="textbook strategies: largest delay (cap)")
    crash_at: float = param(10.0, ge=0, unit="s", help="when the server crashes")
    downtime: float = param(5.0, ge=0, unit="s", help="how long it stays down before restarting")
    crash: str = param("process", choices=("process", "host"),
                       help="process: the kernel resets connections and refuses handshakes at once; "
                            "host: silence, noticed by heartbeat and connect timeouts")
    heartbeat_interval: float = param(25.0, gt=0, unit="s",
                                      help="client ping period (used when crash=host; Engine.IO pingInterval 25 s)")
    admission_rate: float = param(500.0, gt=0, unit="1/s", help="handshakes a server accepts per second")
    admission_burst: int = param(50, ge=1, help="handshakes accepted back to back after a quiet period")
    latency: Distribution = param(TruncatedNormal(0.02, 0.005), unit="s", ge=1e-4,
                                  help="one-way network latency (mean >= 0.1 ms, as on loopback: with no delay a refused client "
                                       "retries in the same instant for ever)")
    horizon: float = param(300.0, gt=0, unit="s", help="simulated time; clients not back by then count as not reconnected")
    replications: int = replications_param()

    def validate(self) -> None:
        self.strategies()  # raises on an unknown name
        if self.backoff_cap < self.backoff_base:
            raise ParameterError("backoff_cap", f"must be >= backoff_base ({self.backoff_base} s), got {self.backoff_cap}")
        if self.crash_at + self.downtime >= self.horizon:
            raise ParameterError("horizon", f"must be > crash_at + downtime ({self.crash_at + self.downtime} s)")

    def estimated_attempts(self) -> dict[str, float]:
        """Rough connection attempts per strategy, for the work estimate.

        ``none`` retries once per round trip while the server is down and, after the restart,
        until the admission rate has let everyone in (on average half of that time); every other
        policy makes a few attempts, one per mean backoff (about 15 s with a 30 s cap) while it
        waits its turn."""
        affected = math.ceil(self.clients / self.servers)
        rtt = max(2 * self.latency.mean, 1e-4)
        admitting = min(max(0.0, (affected - self.admission_burst) / self.admission_rate),
                        self.horizon - self.crash_at - self.downtime)
        out = {}
        for name in self.strategies():
            if name == "none":
                out[name] = affected * (1 + (self.downtime + admitting / 2) / rtt)
            else:
                out[name] = affected * (2 + admitting / 15.0)
        return out

    def estimated_seconds(self) -> tuple[float, str | None, int]:
        """Seconds by attempts (see :meth:`estimated_attempts`), heartbeats and set-up, measured
        on the course's machine (``benchmarks/bench_reconnect_storm.py``): what grows the work is
        ``clients``, and for ``none`` the time it hammers a server that refuses (``downtime``)."""
        attempts = sum(self.estimated_attempts().values())
        strategies = len(self.strategies())
        simulated = self.clients if self.crash == "host" else math.ceil(self.clients / self.servers)
        heartbeats = simulated * self.horizon / self.heartbeat_interval if self.crash == "host" else 0.0
        seconds = self.replications * (SECONDS_PER_ATTEMPT * (attempts + strategies * heartbeats)
                                       + strategies * SECONDS_PER_CLIENT * self.clients)
        defaults = ReconnectStormParams.__dataclass_fields__
        grown = {name: getattr(self, name) / defaults[name].default
                 for name in ("clients", "downtime", "horizon") if defaults[name].default}
        worst = max(grown, key=grown.get)
        return seconds, worst, 1

    def strategies(self) -> tuple[str, ...]:
        """The strategy names this run compares, in order."""
        return expand_names("strategy", self.strategy, STRATEGIES + PRESETS, GROUPS)


def simulate(p: ReconnectStormParams, seed: int, strategy: str,
             replication: int = 0) -> tuple[dict, pd.DataFrame, np.ndarray]:
    """One storm with one strategy in one replication: summary row, per-second series, reconnect times."""
    ctx = Context(seed, replication=replication)  # the same streams for every strategy: common random numbers
    env = ctx.env
    net = Network(ctx, LinkSpec(latency=p.latency))
    spec = ServerSpec(admission_rate=p.admission_rate, admission_burst=p.admission_burst)
    servers = [Server(ctx, f"server-{i}", spec, net) for i in range(p.servers)]
    policy = make_backoff(strategy, base=p.backoff_base, multiplier=p.backoff_multiplier, cap=p.backoff_cap)
    tracker = ReconnectTracker()
    uniform = Uniform(0.0, 1.0).bind(ctx.rng("backoff")).sampler()
    heartbeat = p.heartbeat_interval if p.crash == "host" else None
    victim = servers[0]
    untouched: list[list[str]] = [[] for _ in servers]  # per server, its clients that are counted, not built
    for i in range(p.clients):
        server = servers[i % p.servers]
        if server is not victim and heartbeat is None:
            # Objects only for clients that act: the others' server stays up, and without
            # heartbeats their connections carry nothing (no event, no random draw), so they are
            # counted connected, not simulated (below). (With heartbeats every client stays an
            # object: its pings draw latencies from the stream the storm's own messages use.)
            untouched[i % p.servers].append(f"c{i}")
            continue
        client = ResilientClient(ctx, f"c{i}", net, server.name, policy, tracker, uniform,
                                 heartbeat_interval=heartbeat)
        client.adopt_connection()
        server.adopt(client.name)
    for server, names in zip(servers, untouched):
        if names:
            server.adopt(*names)  # one gauge update per server, not one per client
    tracker.adopted(sum(map(len, untouched)))  # connected from the start, counted at once
    affected = len(victim.connections)
    victim.schedule_outage(p.crash_at, p.downtime, host=p.crash == "host")

    connected = []

    def sample_connected(env):
        while True:
            connected.append((env.now, tracker.connected))
            yield env.timeout(1.0)

    env.process(sample_connected(env))
    run_with_progress(env, p.horizon, f"reconnect-storm {strategy}",
                      lambda: f"{sum(tracker.attempts.values()):,} attempts, {len(tracker.reconnect_times):,}/"
                              f"{affected:,} back")

    times = np.asarray(tracker.reconnect_times)
    bins = range(int(p.horizon))
    attempts = [tracker.attempts.get(b, 0) for b in bins]
    refused = [tracker.refused.get(b, 0) for b in bins]
    all_back = len(times) == affected and tracker.connected == p.clients
    row = {
        "strategy": strategy,
        "policy": policy.describe(),
        "clients": p.clients,
        "affected": affected,
        "reconnected": int(len(times)),
        "gave_up": tracker.gave_up,
        "reconnect_p50_s": float(np.quantile(times, 0.5)) if len(times) else math.nan,
        "reconnect_p99_s": float(np.quantile(times, 0.99)) if len(times) else math.nan,
        "reconnect_max_s": float(times.max()) if len(times) else math.nan,
        "time_to_all_reconnected_s": tracker.last_reconnect_at - p.crash_at if all_back else math.nan,
        "peak_attempts_per_s": max(attempts) if attempts else 0,
        "attempts": sum(tracker.attempts.values()),
        "refused_attempts": sum(tracker.refused.values()),
        "timed_out_attempts": tracker.timeouts,
    }
    series = pd.DataFrame({"strategy": strategy, "time_s": [float(b) for b in bins], "attempts": attempts,
                           "refused": refused, "connected": [n for _, n in connected][: len(attempts)]})
    return row, series, times


@scenario("reconnect-storm", ReconnectStormParams,
          "Q7: a server crashes under N persistent connections: the reconnection herd per backoff strategy and real client")
def run_reconnect_storm(p: ReconnectStormParams, seed: int) -> Result:
    def once(r: int):
        runs = [(name, *simulate(p, seed, name, r)) for name in p.strategies()]
        return [row for _, row, _, _ in runs], {
            "per_second": pd.concat([s for _, _, s, _ in runs], ignore_index=True),
            "reconnect_times": pd.concat([pd.DataFrame({"strategy": name, "reconnect_s": t}) for name, _, _, t in runs],
                                         ignore_index=True)}

    reps = replicate(p.replications, once)
    summary = reps.summary(["strategy"], keep=["policy", "clients"])
    return Result("reconnect-storm", seed, p, summary, {"replications": reps.rows, **reps.series})
