"""``rolling-update``: replacing the pods under N WebSocket connections, with and without a graceful drain.

The course (6B) says Kubernetes « facilite le déploiement distribué de serveurs WebSocket avec
gestion d'état via Redis ». A rolling update is where that is tested: nothing migrates a live
connection, so every client of a replaced pod must reconnect. Here N clients are connected
through a balancer to ``pods`` pods; at ``update_at`` the pods are replaced ``max_surge`` /
``max_unavailable`` at a time. Each old pod follows Kubernetes' termination sequence (sources in
``data/load_balancers.json``): it is removed from the endpoints ``endpoint_delay`` s after the
delete, its preStop hook sleeps ``prestop_sleep`` s, then SIGTERM; SIGKILL comes
``termination_grace_period`` s after the preStop started.

* ``termination=graceful`` (a drain): on SIGTERM the application closes its connections with a close frame
  (``close_code`` 1001 going away or 1012 service restart), spread over ``drain_period`` s, so
  clients reconnect a few at a time (with their backoff's jitter).
* ``termination=abrupt``: the application ignores SIGTERM; at SIGKILL the kernel resets every socket at
  once and each client reports 1006 (abnormal closure) and reconnects.

Sessions live in the pod's memory: a client that lands on another pod loses its session
unless an external store (Redis-like, ``store_latency`` per fetch) holds it. Measured per
combination: close codes seen, the reconnection storm (peak attempts per second), sessions
lost, and how long the disruption lasts.

Pods, their termination and the rollout (the Deployment controller's maxSurge/maxUnavailable
arithmetic; old pods deleted in the ReplicaSet's order) are :mod:`sim.components.kubernetes`;
the balancer in front (``policy``) is its Service.

Simplifications: a replacement pod becomes Ready ``pod_startup`` s after it is created; the
controllers react at once (terminating pods no longer count); the balancer routes instantly
and counts the connections it carries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import simpy

from sim.components import frames
from sim.components.backoff import PRESETS, STRATEGIES, make_backoff
from sim.components.kubernetes import Deployment, PodTemplate
from sim.components.load_balancer import POLICIES, ClientKey, LoadBalancer, Sessions, SessionStore, presets
from sim.components.resilient_client import ReconnectTracker, ResilientClient
from sim.core.params import WorkModel
from sim.core import expand_names, Constant, Context, Distribution, LinkSpec, Network, ParameterError, Params, Result, \
    TruncatedNormal, param
from sim.core.registry import scenario
from sim.core.replication import replicate, replications_param

GRACE_S: float = presets()["kubernetes_pod_termination"]["termination_grace_period_s"]
"""Kubernetes' default terminationGracePeriodSeconds (30 s)."""
CLOSE_CODES = (frames.GOING_AWAY, frames.SERVICE_RESTART)
TERMINATIONS = ("graceful", "abrupt")
SESSION_STORES = ("off", "on")
SUMMARY_COLUMNS = ("disconnections", "closed_1001", "closed_1012", "closed_1006", "peak_attempts_per_s", "attempts",
                   "refused_attempts", "timed_out_attempts", "sessions_kept", "sessions_fetched", "sessions_lost",
                   "disruption_p50_s", "disruption_p99_s", "disruption_max_s", "rollout_s", "time_to_recover_s",
                   "all_reconnected")
"""Per combination: the mean over replications, with a 95 % interval (``*_ci_low``, ``*_ci_high``)."""


@dataclass(frozen=True)
class RollingUpdateParams(Params):
    """Parameters of ``rolling-update``."""
    work = WorkModel(seconds_at_defaults=1.9, factors=('clients', 'horizon'))  # measured, see check_work

    clients: int = param(5_000, ge=1, help="clients, all connected at the start")
    pods: int = param(10, ge=1, help="pods (replicas) the clients are spread over; all are replaced")
    policy: str = param("round_robin", choices=POLICIES, help="how the balancer picks a pod for each connection")
    max_surge: int = param(1, ge=0, help="extra new pods started before old ones are terminated (maxSurge-like)")
    max_unavailable: int = param(0, ge=0, help="old pods terminated before their replacement is Ready "
                                               "(maxUnavailable-like)")
    termination: str = param("all", help="what the app does on SIGTERM: graceful (close frames, spread over "
                                         "drain_period) or abrupt (ignores it: sockets die at SIGKILL, 1006); "
                                         "both separated by a comma, or 'all'")
    session_store: str = param("all", help="sessions also in an external store (on) or only in pod memory (off); "
                                           "both separated by a comma, or 'all'")
    close_code: int = param(frames.SERVICE_RESTART, help="graceful close code: 1001 (going away) or 1012 (service restart)")
    termination_grace_period: float = param(GRACE_S, gt=0, unit="s",
                                            help="from preStop start to SIGKILL (Kubernetes default 30 s)")
    prestop_sleep: float = param(5.0, ge=0, unit="s",
                                 help="preStop hook sleep, so endpoint removal wins the race with SIGTERM (assumed)")
    endpoint_delay: float = param(1.0, ge=0, unit="s",
                                  help="delete -> pod removed from the balancer's endpoints (assumed propagation)")
    drain_period: float = param(10.0, ge=0, unit="s",
                                help="graceful: the app spreads its close frames over this time after SIGTERM")
    pod_startup: float = param(10.0, gt=0, unit="s", help="new pod creation -> Ready and in the endpoints")
    update_at: float = param(10.0, ge=0, unit="s", help="when the rollout starts")
    strategy: str = param("full_jitter", help="clients' reconnect backoff: " + ", ".join(STRATEGIES + PRESETS))
    backoff_base: float = param(1.0, gt=0, unit="s", help="textbook strategies: first delay (base)")
    backoff_cap: float = param(30.0, gt=0, unit="s", help="textbook strategies: largest delay (cap)")
    store_latency: Distribution = param(Constant(0.001), unit="s",
                                        help="round trip to fetch a session from the store (assumed, same zone)")
    latency: Distribution = param(TruncatedNormal(0.02, 0.005), unit="s", help="one-way network latency")
    horizon: float = param(300.0, gt=0, unit="s", help="simulated time")
    replications: int = replications_param()

    def validate(self) -> None:
        self.combinations()
        if self.max_surge + self.max_unavailable < 1:
            raise ParameterError("max_surge", "max_surge + max_unavailable must be >= 1 or the rollout cannot progress")
        if self.close_code not in CLOSE_CODES:
            raise ParameterError("close_code", f"must be 1001 (going away) or 1012 (service restart), got {self.close_code}")
        if self.strategy not in STRATEGIES + PRESETS:
            raise ParameterError("strategy", f"must be one of {', '.join(STRATEGIES + PRESETS)}, got {self.strategy!r}")
        if self.backoff_cap < self.backoff_base:
            raise ParameterError("backoff_cap", f"must be >= backoff_base ({self.backoff_base} s), got {self.backoff_cap}")
        if self.prestop_sleep + self.drain_period > self.termination_grace_period:
            raise ParameterError("drain_period", f"prestop_sleep + drain_period must fit in termination_grace_period "
                                                 f"({self.termination_grace_period} s), got {self.drain_period}")
        if self.rollout_bound() >= self.horizon:
            raise ParameterError("horizon", f"must be > {self.rollout_bound():g} s (update_at + the rollout's steps "
                                            f"+ the grace period), got {self.horizon:g}")

    def rollout_bound(self) -> float:
        """Latest time the last old pod can be gone, in seconds."""
        steps = math.ceil(self.pods / (self.max_surge + self.max_unavailable))
        return self.update_at + steps * self.pod_startup + self.termination_grace_period

    def combinations(self) -> list[tuple[str, bool]]:
        """(termination, store on) pairs this run compares, in order."""
        terminations = expand_names("termination", self.termination, TERMINATIONS)
        stores = expand_names("session_store", self.session_store, SESSION_STORES)
        return [(t, s == "on") for t in terminations for s in stores]


class _Shared:
    """What every client of one run reports to: balancer, sessions and tallies."""

    def __init__(self, env: simpy.Environment, lb: LoadBalancer, sessions: Sessions) -> None:
        self.env = env
        self.lb = lb
        self.sessions = sessions
        self.disruptions: list[float] = []  # loss -> connected with a usable session, per reconnection
        self.last_resumed_at = math.nan

    def connected(self, client: ResilientClient) -> None:
        outcome, fetch = self.sessions.resume(client.key, client.server)
        now = self.env.now
        if not math.isnan(client.lost_at):
            self.disruptions.append(now + fetch - client.lost_at)
            self.last_resumed_at = now + fetch


def simulate(p: RollingUpdateParams, seed: int, termination: str, store_on: bool, replication: int = 0
             ) -> tuple[dict, pd.DataFrame]:
    """One rollout: summary row and per-second series."""
    ctx = Context(seed, replication=replication)  # the same streams for every combination: common random numbers
    env = ctx.env
    net = Network(ctx, LinkSpec(latency=p.latency))
    lb = LoadBalancer(ctx, p.policy)  # the Service: the pods' endpoints, behind the balancer of `policy`
    sessions = Sessions(SessionStore(ctx, p.store_latency) if store_on else None)
    shared = _Shared(env, lb, sessions)
    tracker = ReconnectTracker(ctx.metrics)
    backoff = make_backoff(p.strategy, base=p.backoff_base, cap=p.backoff_cap)
    uniform = ctx.rng("backoff")
    draw = lambda: float(uniform.random())  # noqa: E731
    terminated_at: list[float] = []
    template = PodTemplate(startup=Constant(p.pod_startup), termination_grace_period=p.termination_grace_period,
                           prestop_sleep=p.prestop_sleep, endpoint_delay=p.endpoint_delay,
                           drain=termination == "graceful", drain_period=p.drain_period, close_code=p.close_code)

    def gone(pod) -> None:  # the process is gone, and the sessions in its memory with it
        sessions.node_down(pod.name)
        if pod.revision == 0:
            terminated_at.append(env.now)

    deployment = Deployment(ctx, net, template, service=lb, on_ready=lambda pod: sessions.node_up(pod.name),
                            on_gone=gone)
    pods = deployment.start(p.pods)
    addresses = ctx.rng("addresses").integers(0, 2**32, size=p.clients)
    clients = []
    for i in range(p.clients):
        key = ClientKey(f"c{i}", int(addresses[i]))
        # the one connection stack: each attempt asks the Service (the balancer) for a pod
        client = ResilientClient(ctx, key.name, net, None, backoff, tracker, draw, router=lb, key=key,
                                 on_connect=shared.connected)
        backend = lb.route(key)
        client.place(backend)
        client.adopt_connection()  # tells the balancer the connection is open
        deployment.pod(backend.name).server.adopt(client.name)
        sessions.resume(key, backend.name)
        clients.append(client)
    assert len(pods) == p.pods

    def rollout(env):
        yield env.timeout(p.update_at)
        deployment.rollout(max_surge=p.max_surge, max_unavailable=p.max_unavailable)

    connected = []

    def sample(env):
        while True:
            connected.append(tracker.connected)
            yield env.timeout(1.0)

    env.process(rollout(env))
    env.process(sample(env))
    env.run(until=p.horizon)

    bins = range(int(p.horizon))
    attempts = [tracker.attempts.get(b, 0) for b in bins]
    refused = [tracker.refused.get(b, 0) for b in bins]
    disruptions = np.asarray(shared.disruptions)
    counts = sessions.counts
    losses = tracker.losses
    all_back = tracker.connected == p.clients and tracker.gave_up == 0
    row = {
        "termination": termination,
        "session_store": store_on,
        "policy": p.policy,
        "clients": p.clients,
        "pods": p.pods,
        "disconnections": losses,
        "closed_1001": tracker.losses_by(code=frames.GOING_AWAY),
        "closed_1012": tracker.losses_by(code=frames.SERVICE_RESTART),
        "closed_1006": tracker.losses_by(code=frames.ABNORMAL_CLOSURE),
        "peak_attempts_per_s": max(attempts) if attempts else 0,
        "attempts": sum(attempts),
        "refused_attempts": sum(refused),
        "timed_out_attempts": tracker.timeouts,
        "sessions_kept": counts["kept"],
        "sessions_fetched": counts["fetched"],
        "sessions_lost": counts["lost"],
        "disruption_p50_s": float(np.quantile(disruptions, 0.5)) if len(disruptions) else math.nan,
        "disruption_p99_s": float(np.quantile(disruptions, 0.99)) if len(disruptions) else math.nan,
        "disruption_max_s": float(disruptions.max()) if len(disruptions) else math.nan,
        "rollout_s": max(terminated_at) - p.update_at if len(terminated_at) == p.pods else math.nan,
        "time_to_recover_s": shared.last_resumed_at - p.update_at if all_back else math.nan,
        "all_reconnected": all_back,
    }
    series = pd.DataFrame({"termination": termination, "session_store": store_on, "time_s": [float(b) for b in bins],
                           "attempts": attempts, "refused": refused, "connected": connected[: len(attempts)]})
    return row, series


@scenario("rolling-update", RollingUpdateParams,
          "Q6: pods replaced one by one under N WebSocket connections: graceful drain (1001/1012) vs abrupt kill (1006), "
          "with and without a session store: reconnection storm, sessions lost, time to recover")
def run_rolling_update(p: RollingUpdateParams, seed: int) -> Result:
    def once(r: int):
        rows, series = zip(*(simulate(p, seed, t, store_on, r) for t, store_on in p.combinations()))
        return list(rows), {"per_second": pd.concat(series, ignore_index=True)}

    reps = replicate(p.replications, once)
    summary = reps.summary(["termination", "session_store"], SUMMARY_COLUMNS, keep=["policy", "clients", "pods"])
    return Result("rolling-update", seed, p, summary, {"replications": reps.rows, **reps.series})
