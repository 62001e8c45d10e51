"""``autoscaling``: an evening peak of WebSocket connections against a Kubernetes HPA.

The course (6B) says Kubernetes « gère la scalabilité horizontale (auto-scaling de pods) ».
Here users arrive at a rate that rises to a peak and falls back (a Poisson process whose rate
follows a trapezoid), each holds one long-lived connection for a lifetime drawn from
``lifetime``, and the HorizontalPodAutoscaler (documented algorithm, documented defaults:
``data/kubernetes_hpa.json``) keeps the *average* number of connections per pod near
``target_connections``.

What the course leaves out, and this scenario shows: the HPA adds pods, but a connection
stays on the pod that accepted it. The Service spreads only *new* connections over the ready
pods (``service``: kube-proxy's ``ipvs`` mode, round robin by default, or ``iptables`` mode, a
random endpoint per connection; least connections needs IPVS ``lc`` or an L7 proxy), so the new pods stay nearly empty while the old ones keep their load — the
average looks fine, the hottest pod does not. Remedies, each run on the same arrivals and
lifetimes (common random numbers):

* ``none`` — the trap as is; on scale-in the app ignores SIGTERM and its sockets are cut at
  SIGKILL (clients see 1006 and reconnect with backoff);
* ``max_age`` — the server closes each connection after ``max_age`` (± ``max_age_jitter``)
  with code 1012; clients reconnect after a jittered delay and land on any pod;
* ``least_connections`` — new connections go to the ready pod with the fewest connections;
* ``drain`` — on scale-in the pod closes its sockets itself (1012) on SIGTERM: nobody is cut.

Per remedy: imbalance (max / mean connections per ready pod, when the mean is at least
``imbalance_floor`` × target), pod-seconds (cost), reconnections the platform caused and
connections dropped on scale-in.

Pods, the Service and scale-in are :mod:`sim.components.kubernetes` (the ReplicaSet deletes
not-ready pods first, then the most recently Ready on a log2 time scale, ties at random).

Simplifications: the metric reaches the HPA instantly (no metrics-pipeline delay); a
terminating pod leaves the Service's endpoints at once; least-connections counts the
connections the Service has seen open (not handshakes in flight).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from sim.components import frames
from sim.components.autoscaler import HorizontalPodAutoscaler, HpaSpec, hpa_defaults, with_policies
from sim.components.backoff import make_backoff
from sim.components.kubernetes import STARTING, TERMINATING, Deployment, PodTemplate, kube_proxy_service
from sim.components.load_balancer import ClientKey
from sim.components.resilient_client import ReconnectTracker, ResilientClient
from sim.core.params import WorkModel
from sim.core import expand_names, Context, Distribution, LinkSpec, LogNormal, Network, ParameterError, Params, Result, \
    TruncatedNormal, Uniform, param
from sim.core.registry import scenario
from sim.core.replication import replicate, replications_param

REMEDIES = ("none", "max_age", "least_connections", "drain")
SUMMARY_COLUMNS = ("users", "peak_connections", "peak_replicas", "scale_events", "peak_imbalance", "mean_imbalance",
                   "peak_max_per_pod", "pod_seconds", "reconnects_caused", "closed_for_max_age", "drained_on_scale_in",
                   "dropped_on_scale_in")
"""Per remedy: the mean over replications, with a 95 % interval (``*_ci_low``, ``*_ci_high``)."""
_HPA = hpa_defaults()
_UP = {p["type"]: p for p in _HPA["scale_up"]["policies"]}


@dataclass(frozen=True)
class AutoscalingParams(Params):
    """Parameters of ``autoscaling``."""
    work = WorkModel(seconds_at_defaults=1.8, factors=('peak_rate', 'horizon'))  # measured, see check_work

    remedy: str = param("all", help="none, max_age, least_connections, drain; several separated by commas, or 'all'")
    min_replicas: int = param(2, ge=1, help="HPA minReplicas (also the pods at the start)")
    max_replicas: int = param(20, ge=1, help="HPA maxReplicas")
    target_connections: float = param(100.0, gt=0, help="HPA target: average active connections per pod")
    base_rate: float = param(0.1, ge=0, unit="1/s", help="new users per second off-peak")
    peak_rate: float = param(1.0, gt=0, unit="1/s", help="new users per second at the peak")
    ramp_start: float = param(600.0, ge=0, unit="s", help="when the arrival rate starts rising")
    rise: float = param(1800.0, gt=0, unit="s", help="time for the rate to go from base to peak")
    plateau: float = param(600.0, ge=0, unit="s", help="time the rate stays at its peak")
    fall: float = param(2400.0, gt=0, unit="s", help="time for the rate to go back to base")
    lifetime: Distribution = param(LogNormal(7.15, 0.83), unit="s",
                                   help="how long a user stays (one long-lived connection, reopened if cut); "
                                        "default mean ~30 min, cv ~1")
    startup: Distribution = param(Uniform(20.0, 40.0), unit="s", help="pod creation to ready (image, start, readiness probe)")
    grace_period: float = param(float(_HPA["termination_grace_period_s"]), ge=0, unit="s",
                                help="terminationGracePeriodSeconds: SIGTERM to SIGKILL (Kubernetes default 30 s)")
    max_age: float = param(600.0, gt=0, unit="s", help="remedy max_age: server closes connections older than this")
    max_age_jitter: float = param(0.1, ge=0, lt=1, help="remedy max_age: +- fraction of max_age, spreads the closes "
                                                        "(gRPC's MAX_CONNECTION_AGE uses 0.1)")
    backoff_base: float = param(5.0, gt=0, unit="s", help="client reconnect: full-jitter backoff base (first wait U(0, base))")
    backoff_cap: float = param(60.0, gt=0, unit="s", help="client reconnect: full-jitter backoff cap")
    tolerance: float = param(float(_HPA["tolerance"]), ge=0, help="HPA tolerance (default 0.1)")
    sync_period: float = param(float(_HPA["sync_period_s"]), gt=0, unit="s", help="HPA sync period (default 15 s)")
    downscale_stabilization: float = param(float(_HPA["scale_down"]["stabilization_window_s"]), ge=0, unit="s",
                                           help="HPA scale-down stabilisation window (default 300 s)")
    scale_up_pods: int = param(int(_UP["Pods"]["value"]), ge=1, help="HPA scale-up policy: pods per period (default 4)")
    scale_up_percent: int = param(int(_UP["Percent"]["value"]), ge=1, unit="%",
                                  help="HPA scale-up policy: percent per period (default 100)")
    service: str = param("ipvs", choices=("ipvs", "iptables"),
                         help="kube-proxy mode spreading new connections: ipvs (round robin) or iptables (random); "
                              "remedy least_connections uses IPVS lc")
    latency: Distribution = param(TruncatedNormal(0.02, 0.005), unit="s", help="one-way network latency")
    imbalance_floor: float = param(0.25, ge=0, help="imbalance is measured when the mean per ready pod is at least "
                                                    "this fraction of the target (small counts are noise)")
    horizon: float = param(7200.0, gt=0, unit="s", help="simulated time")
    replications: int = replications_param()

    def validate(self) -> None:
        self.remedies()
        if self.max_replicas < self.min_replicas:
            raise ParameterError("max_replicas", f"must be >= min_replicas ({self.min_replicas}), got {self.max_replicas}")
        if self.backoff_cap < self.backoff_base:
            raise ParameterError("backoff_cap", f"must be >= backoff_base ({self.backoff_base} s), got {self.backoff_cap}")
        if self.peak_rate < self.base_rate:
            raise ParameterError("peak_rate", f"must be >= base_rate ({self.base_rate}/s), got {self.peak_rate}")

    def remedies(self) -> tuple[str, ...]:
        """The remedies this run compares, in order."""
        return expand_names("remedy", self.remedy, REMEDIES)

    def rate(self, t: float) -> float:
        """Arrival rate at time ``t`` (trapezoid: base, rise, plateau, fall, base)."""
        up, top = self.ramp_start + self.rise, self.ramp_start + self.rise + self.plateau
        if t <= self.ramp_start or t >= top + self.fall:
            return self.base_rate
        if t < up:
            return self.base_rate + (self.peak_rate - self.base_rate) * (t - self.ramp_start) / self.rise
        if t <= top:
            return self.peak_rate
        return self.peak_rate - (self.peak_rate - self.base_rate) * (t - top) / self.fall

    def hpa_spec(self) -> HpaSpec:
        spec = HpaSpec(self.target_connections, self.min_replicas, self.max_replicas, self.tolerance, self.sync_period)
        spec = with_policies(spec, scale_up_pods=self.scale_up_pods, scale_up_percent=self.scale_up_percent)
        return replace(spec, scale_down=replace(spec.scale_down, stabilization_window=self.downscale_stabilization))


class Fleet:
    """What the users and the platform did to the connections, counted once for all users."""

    __slots__ = ("deployment", "network", "env", "max_age", "jitter", "uniform", "closed_for_age")

    def __init__(self, ctx: Context, deployment: Deployment, network: Network, max_age: float | None,
                 jitter: float) -> None:
        self.deployment = deployment
        self.network = network
        self.env = ctx.env
        self.max_age = max_age
        self.jitter = jitter
        self.uniform = Uniform(0.0, 1.0).bind(ctx.rng("max_age")).sampler()
        self.closed_for_age = 0

    def connected(self, client: ResilientClient) -> None:
        """A handshake was accepted: with ``max_age``, the pod schedules the connection's end."""
        if self.max_age is None:
            return
        server = self.deployment.pod(client.server).server
        accepted_at = server.connections.get(client.name)
        if accepted_at is None:
            return
        age = self.max_age * (1 + self.jitter * (2 * self.uniform() - 1))
        timer = self.env.timeout(max(0.0, accepted_at + age - self.env.now), (client.name, server, accepted_at))
        timer.callbacks.append(self._expire)

    def _expire(self, event) -> None:
        name, server, accepted_at = event.value
        if server.up and server.connections.get(name) == accepted_at:  # the same connection, still open
            self.closed_for_age += 1
            # the server's close frame; the client's answering close frame removes it (RFC 6455 §5.5.1)
            self.network.send(server.name, name, (frames.CLOSE, frames.SERVICE_RESTART), frames.FRAME_HEADER_BYTES)


def simulate(p: AutoscalingParams, seed: int, remedy: str, replication: int = 0
             ) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """One evening with one remedy: summary row, replica/imbalance series, per-pod series."""
    # the same streams for every remedy of one replication: the same users arrive and stay as long
    ctx = Context(seed, replication=replication)
    env = ctx.env
    net = Network(ctx, LinkSpec(latency=p.latency))
    template = PodTemplate(startup=p.startup, termination_grace_period=p.grace_period, drain=remedy == "drain")
    service = kube_proxy_service(ctx, "ipvs_lc" if remedy == "least_connections" else p.service)
    deployment = Deployment(ctx, net, template, service=service)
    deployment.start(p.min_replicas)
    fleet = Fleet(ctx, deployment, net, p.max_age if remedy == "max_age" else None, p.max_age_jitter)
    policy = make_backoff("full_jitter", base=p.backoff_base, cap=p.backoff_cap)
    tracker = ReconnectTracker(ctx.metrics)
    jitter = Uniform(0.0, 1.0).bind(ctx.rng("reconnect")).sampler()
    lifetimes = p.lifetime.bind(ctx.rng("lifetimes"))
    arrivals = ctx.rng("arrivals")
    users = [0]

    def arrive(env):
        # non-homogeneous Poisson process by thinning: candidates at the peak rate, kept with rate(t)/peak
        peak = p.peak_rate
        while True:
            yield env.timeout(arrivals.exponential(1.0 / peak))
            if arrivals.random() * peak > p.rate(env.now):
                continue
            users[0] += 1
            name = f"u{users[0]}"
            # the one connection stack: every attempt asks the Service for a pod
            user = ResilientClient(ctx, name, net, None, policy, tracker, jitter, router=deployment.service,
                                   key=ClientKey(name, 0), on_connect=fleet.connected)
            user.start()
            env.timeout(lifetimes.sample(), user).callbacks.append(lambda ev: ev.value.stop())

    env.process(arrive(env))
    rows, pod_rows = [], []
    floor = p.imbalance_floor * p.target_connections

    def observe(d) -> None:
        ready = deployment.endpoints
        counts = [pod.connections for pod in ready]
        mean = sum(counts) / len(counts) if counts else 0.0
        rows.append({"time_s": d.time, "rate_per_s": p.rate(d.time), "desired": d.desired,
                     "recommendation": d.recommendation, "ready": len(ready),
                     "starting": sum(1 for q in deployment.pods if q.phase == STARTING),
                     "terminating": sum(1 for q in deployment.pods if q.phase == TERMINATING),
                     "connections": sum(q.connections for q in deployment.pods if q.phase != "gone"),
                     "mean_per_ready_pod": mean, "max_per_ready_pod": max(counts, default=0),
                     "imbalance": max(counts) / mean if counts and mean >= floor and mean > 0 else math.nan})
        for pod in deployment.pods:
            if pod.phase != "gone":
                pod_rows.append({"time_s": d.time, "pod": pod.name, "created_s": pod.created_at,
                                 "phase": pod.phase, "connections": pod.connections})

    hpa = HorizontalPodAutoscaler(ctx, p.hpa_spec(), deployment, on_decision=observe)
    env.run(until=p.horizon)

    series = pd.DataFrame(rows)
    series.insert(0, "remedy", remedy)
    pods = pd.DataFrame(pod_rows)
    pods.insert(0, "remedy", remedy)
    imbalance = series.imbalance.to_numpy()
    measured = ~np.isnan(imbalance)
    row = {
        "remedy": remedy,
        "users": users[0],
        "peak_connections": int(series.connections.max()),
        "peak_replicas": int(series.desired.max()),
        "scale_events": int(sum(1 for d in hpa.decisions if d.desired != d.current)),
        "peak_imbalance": float(imbalance[measured].max()) if measured.any() else math.nan,
        "mean_imbalance": float(imbalance[measured].mean()) if measured.any() else math.nan,
        "peak_max_per_pod": int(series.max_per_ready_pod.max()),
        "pod_seconds": round(deployment.pod_seconds(p.horizon), 3),
        "reconnects_caused": tracker.losses,  # connections lost by users still there
        "closed_for_max_age": fleet.closed_for_age,
        "drained_on_scale_in": deployment.drained,
        "dropped_on_scale_in": deployment.dropped,
    }
    return row, series, pods


@scenario("autoscaling", AutoscalingParams,
          "Q6: an evening peak of long-lived connections against the Kubernetes HPA: new pods stay empty; remedies compared")
def run_autoscaling(p: AutoscalingParams, seed: int) -> Result:
    def once(r: int):
        rows, series, pods = zip(*(simulate(p, seed, remedy, r) for remedy in p.remedies()))
        return list(rows), {"replicas": pd.concat(series, ignore_index=True), "pods": pd.concat(pods, ignore_index=True)}

    reps = replicate(p.replications, once)
    summary = reps.summary(["remedy"], SUMMARY_COLUMNS)
    return Result("autoscaling", seed, p, summary, {"replications": reps.rows, **reps.series})
