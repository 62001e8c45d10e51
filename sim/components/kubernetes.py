"""A Kubernetes workload: pods behind a Service, a Deployment that scales and rolls them out
(course question 6B: « Kubernetes gère la scalabilité horizontale »).

The one place where the simulator models pods; the ``autoscaling`` and ``rolling-update``
scenarios (and the HPA in :mod:`sim.components.autoscaler`) build on it.

* :class:`PodTemplate` — what every pod of a revision does: start-up time to Ready, and the
  termination sequence of https://kubernetes.io/docs/concepts/workloads/pods/pod-termination/:
  on delete the pod stops counting as a replica, leaves the Service's endpoints
  ``endpoint_delay`` s later (the EndpointSlice update races with the kubelet), runs its
  ``preStop`` hook (``prestop_sleep``), gets SIGTERM, and SIGKILL when
  ``termination_grace_period`` (counted from the delete, preStop included) has passed. With
  ``drain`` the application closes its WebSockets on SIGTERM with ``close_code`` (1012 service
  restart, or 1001 going away), spread over ``drain_period`` s, then exits; without, it ignores
  SIGTERM and its sockets die at SIGKILL (clients see 1006): the *dropped* connections.
* :class:`Deployment` — the ReplicaSet and Deployment controllers: ``scale(n)`` creates pods or
  deletes the ones the ReplicaSet controller picks (:func:`deletion_order`), ``rollout`` replaces
  every pod by a new revision within ``max_surge`` / ``max_unavailable``, as
  ``reconcileNewReplicaSet`` / ``reconcileOldReplicaSets`` do.
* The **Service** is a :class:`~sim.components.load_balancer.LoadBalancer` (one balancer
  component in the project): the Deployment adds a pod to it when Ready and removes it after the
  endpoint delay; clients route through it (it is a router for
  :class:`~sim.components.resilient_client.ResilientClient`). Its spreading rule is the
  kube-proxy mode's (:data:`SERVICE_POLICIES`): ``iptables`` mode (the default) picks an
  endpoint *at random* per connection; ``ipvs`` mode defaults to round robin (``rr``);
  least-connections needs ``ipvs`` with ``lc`` or an L7 proxy (ingress-nginx ``least_conn``,
  Envoy). kube-proxy never moves an established connection.

Simplifications: every pod runs on its own node (the ReplicaSet's "doubled up" rule never
decides), no restarts, no pod-deletion-cost annotations; a pod deleted before it is Ready is
gone at once; the controllers react instantly (no informer or API-server lag).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cmp_to_key
from typing import Callable, Iterable

import simpy

from sim import data
from sim.components import frames
from sim.components.load_balancer import LoadBalancer
from sim.components.server import Server, ServerSpec
from sim.core.context import Context
from sim.core.distributions import Constant, Distribution
from sim.core.errors import ParameterError
from sim.core.network import Network

STARTING, READY, TERMINATING, GONE = "starting", "ready", "terminating", "gone"
"""Pod lifecycle as the model sees it (STARTING is Pending, or Running but not yet Ready)."""
CLOSE_CODES = (frames.GOING_AWAY, frames.SERVICE_RESTART)
SERVICE_POLICIES: dict[str, str] = dict(data.load("load_balancers")["kubernetes_service_proxy_modes"]["modes"])
"""kube-proxy mode -> the :class:`LoadBalancer` policy that spreads new connections the same way."""


def _defaults() -> dict:
    return data.load("kubernetes_hpa")


def _seconds(name: str, value: object, *, positive: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and (value > 0 if positive else value >= 0)
    if not ok:
        raise ParameterError(name, f"must be a number of seconds {'>' if positive else '>='} 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class PodTemplate:
    """What each pod of one revision does (see the module docstring); times in seconds."""

    startup: Distribution = field(default_factory=lambda: Constant(0.0))
    """Creation to Ready (image pull, start, readiness probe)."""
    termination_grace_period: float = field(default_factory=lambda: float(_defaults()["termination_grace_period_s"]))
    """terminationGracePeriodSeconds: delete to SIGKILL, preStop included (default 30 s)."""
    prestop_sleep: float = 0.0
    """preStop hook (e.g. ``sleep 5``): SIGTERM comes when it ends."""
    endpoint_delay: float = 0.0
    """Delete to the pod's removal from the Service's endpoints."""
    drain: bool = False
    """The application closes its connections on SIGTERM (else they die at SIGKILL)."""
    drain_period: float = 0.0
    """With ``drain``: the close frames are spread over this time (0: all at once)."""
    close_code: int = frames.SERVICE_RESTART
    """With ``drain``: 1012 (service restart) or 1001 (going away)."""
    server_spec: ServerSpec = field(default_factory=ServerSpec)

    def __post_init__(self) -> None:
        if not isinstance(self.startup, Distribution):
            raise ParameterError("startup", f"must be a distribution, got {self.startup!r}")
        _seconds("termination_grace_period", self.termination_grace_period)
        _seconds("prestop_sleep", self.prestop_sleep)
        _seconds("endpoint_delay", self.endpoint_delay)
        _seconds("drain_period", self.drain_period)
        if self.close_code not in CLOSE_CODES:
            raise ParameterError("close_code", f"must be 1001 (going away) or 1012 (service restart), got "
                                               f"{self.close_code!r}")
        if self.drain and self.prestop_sleep + self.drain_period > self.termination_grace_period:
            raise ParameterError("drain_period", f"prestop_sleep + drain_period must fit in termination_grace_period "
                                                 f"({self.termination_grace_period:g} s), got {self.drain_period:g}")


class Pod:
    """One replica: a server process plus its lifecycle."""

    __slots__ = ("name", "server", "created_at", "ready_at", "deleted_at", "gone_at", "phase", "index", "uid",
                 "revision")

    def __init__(self, name: str, server: Server, created_at: float, index: int, uid: int, revision: int) -> None:
        self.name = name
        self.server = server
        self.created_at = created_at
        self.ready_at = math.nan
        self.deleted_at = math.nan
        self.gone_at = math.nan
        self.phase = STARTING
        self.index = index
        """Creation order."""
        self.uid = uid
        """metadata.uid (random): the ReplicaSet's tie-break between pods of the same age bucket."""
        self.revision = revision
        """Which rollout created it (0: the initial ReplicaSet)."""

    @property
    def connections(self) -> int:
        return len(self.server.connections)

    def __repr__(self) -> str:
        return f"<Pod {self.name} {self.phase}>"


# ---------------------------------------------------------------- the ReplicaSet order ----
def _log_rank(timestamp: int, now_ns: int) -> int:
    """``logarithmicRankDiff``'s per-pod rank: int64(math.Log2(float64(now - t))) in nanoseconds, -1 if not after."""
    d = now_ns - timestamp * 1_000_000_000
    return int(math.log2(d)) if d > 0 else -1


def _less(a: Pod, b: Pod, now_ns: int) -> bool:
    """``ActivePodsWithRanks.Less`` with LogarithmicScaleDown on (the default since Kubernetes 1.22):
    True when ``a`` should be deleted before ``b``. Timestamps are whole seconds (metav1.Time)."""
    a_ready, b_ready = a.phase == READY, b.phase == READY
    # 1. unassigned < assigned: every pod is scheduled here. 2. Pending < Running, 3. not ready < ready:
    # a starting pod is both Pending-or-unready, a ready pod Running and Ready
    if a_ready != b_ready:
        return not a_ready
    # 4. pod-deletion-cost: none set. 5. doubled up: one pod per node, equal ranks
    if a_ready:  # 6. ready for less time first, on a log2 scale; same bucket -> UID
        ta, tb = math.floor(a.ready_at), math.floor(b.ready_at)
        if ta != tb:
            diff = _log_rank(ta, now_ns) - _log_rank(tb, now_ns)
            return a.uid < b.uid if diff == 0 else diff < 0
    # 7. restarts: none. 8. created more recently first, on a log2 scale; same bucket -> UID
    ca, cb = math.floor(a.created_at), math.floor(b.created_at)
    if ca != cb:
        diff = _log_rank(ca, now_ns) - _log_rank(cb, now_ns)
        return a.uid < b.uid if diff == 0 else diff < 0
    return a.uid < b.uid  # Less is false both ways: Go's unstable sort leaves them in any order


def deletion_order(pods: Iterable[Pod], now: float) -> list[Pod]:
    """``pods`` in the order the ReplicaSet controller deletes them on scale-in (first = first deleted).

    kubernetes/kubernetes ``pkg/controller/controller_utils.go`` (``ActivePodsWithRanks.Less``,
    used by ``getPodsToDelete`` in ``pkg/controller/replicaset/replica_set.go``): not-ready before
    ready; then the pod Ready for the shortest time, then the newest, both compared as
    ``floor(log2(age in ns))`` buckets, pods of one bucket ordered by their random UID. So among
    pods that became Ready 1,000 s and 1,900 s ago (one bucket) the choice is random, not the
    newest.
    """
    now_ns = int(round(now * 1e9))

    def compare(a: Pod, b: Pod) -> int:
        return -1 if _less(a, b, now_ns) else (1 if _less(b, a, now_ns) else 0)

    return sorted(pods, key=cmp_to_key(compare))


def kube_proxy_service(ctx: Context, mode: str = "iptables", *, name: str = "service") -> LoadBalancer:
    """A Service as kube-proxy in ``mode`` spreads it (:data:`SERVICE_POLICIES`), endpoints added by a Deployment."""
    if mode not in SERVICE_POLICIES:
        raise ParameterError("service", f"must be one of {', '.join(SERVICE_POLICIES)}, got {mode!r}")
    return LoadBalancer(ctx, SERVICE_POLICIES[mode], name=name, health_check_delay=0.0)


# ---------------------------------------------------------------- the Deployment ----
class Deployment:
    """Pods of a Deployment behind ``service`` (see the module docstring).

    ``on_ready(pod)`` and ``on_gone(pod)`` are told when a pod joins the endpoints and when its
    process is gone (e.g. to say that the sessions in its memory are lost).
    """

    def __init__(self, ctx: Context, network: Network, template: PodTemplate = PodTemplate(), *,
                 service: LoadBalancer | None = None, name: str = "pod",
                 on_ready: Callable[[Pod], None] | None = None, on_gone: Callable[[Pod], None] | None = None) -> None:
        self.ctx = ctx
        self.env: simpy.Environment = ctx.env
        self.network = network
        self.name = name
        self.service = service if service is not None else kube_proxy_service(ctx, "ipvs", name=f"{name}.service")
        """The Service: a LoadBalancer whose backends are the Ready pods."""
        self.on_ready = on_ready
        self.on_gone = on_gone
        self.templates: list[PodTemplate] = [template]
        """One template per revision (index = revision)."""
        self._startup = [template.startup.bind(ctx.rng(f"{name}.startup"))]
        self._uid = ctx.rng(f"{name}.uid")
        self.pods: list[Pod] = []
        """Every pod ever created, in creation order."""
        self.replicas = 0
        """``spec.replicas``."""
        self.dropped = 0
        """Connections cut by SIGKILL (clients see 1006)."""
        self.drained = 0
        """Connections closed by a draining pod's close frames."""
        self.rolled_out = simpy.Event(self.env)
        """Fires when a rollout has replaced every old pod and the last one is gone."""
        self._by_name: dict[str, Pod] = {}
        self._rollout: tuple[int, int] | None = None
        self._reconciling = False
        self._again = False

    # --- observing ----------------------------------------------------------------------
    @property
    def revision(self) -> int:
        return len(self.templates) - 1

    def pod(self, name: str) -> Pod:
        return self._by_name[name]

    def live(self, revision: int | None = None) -> list[Pod]:
        """Pods that count as replicas (starting or ready), optionally of one revision."""
        return [p for p in self.pods if p.phase in (STARTING, READY) and (revision is None or p.revision == revision)]

    @property
    def endpoints(self) -> list[Pod]:
        """Ready pods in the Service, in creation order."""
        return [self._by_name[b.name] for b in self.service.backends if b.healthy]

    def metrics(self) -> tuple[list[int], int]:
        """``(connections of each ready pod, pods not ready yet)``: what the HPA sees."""
        ready = [p.connections for p in self.pods if p.phase == READY]
        return ready, sum(1 for p in self.pods if p.phase == STARTING)

    def pod_seconds(self, until: float) -> float:
        """Time pods existed (starting, ready or terminating) up to ``until``: what the cluster bills."""
        return sum((min(until, p.gone_at) if not math.isnan(p.gone_at) else until) - p.created_at for p in self.pods)

    # --- the ReplicaSet -----------------------------------------------------------------
    def start(self, replicas: int) -> list[Pod]:
        """Begin with ``replicas`` pods already Ready (steady state before the run)."""
        pods = [self._create(ready=True) for _ in range(replicas)]
        self.replicas = replicas
        return pods

    def scale(self, replicas: int) -> list[Pod]:
        """Set ``spec.replicas`` (what the HPA does); returns the pods deleted."""
        self.replicas = replicas
        live = self.live()
        for _ in range(replicas - len(live)):
            self._create()
        victims = deletion_order(live, self.env.now)[: max(0, len(live) - replicas)]
        for pod in victims:
            self.delete(pod)
        return victims

    def _create(self, ready: bool = False) -> Pod:
        index = len(self.pods)
        name = f"{self.name}-{index}"
        template = self.templates[-1]
        uid = int(self._uid.integers(0, 2**63))
        pod = Pod(name, Server(self.ctx, name, template.server_spec, self.network), self.env.now, index, uid,
                  self.revision)
        self.pods.append(pod)
        self._by_name[name] = pod
        if ready:
            self._become_ready(pod)
        else:
            self.env.timeout(self._startup[-1].sample(), pod).callbacks.append(self._ready)
        return pod

    def _ready(self, event: simpy.Event) -> None:
        pod: Pod = event.value
        if pod.phase == STARTING:
            self._become_ready(pod)
            self._reconcile()

    def _become_ready(self, pod: Pod) -> None:
        pod.phase, pod.ready_at = READY, self.env.now
        self.service.add(pod.name)
        if self.on_ready is not None:
            self.on_ready(pod)

    # --- termination ----------------------------------------------------------------------
    def delete(self, pod: Pod) -> None:
        """``kubectl delete pod``: the termination sequence of the module docstring."""
        if pod.phase not in (STARTING, READY):
            return
        was_ready = pod.phase == READY
        pod.phase, pod.deleted_at = TERMINATING, self.env.now
        template = self.templates[pod.revision]
        if not was_ready:  # nothing to stop: the container had not started serving
            self._gone(pod)
            return
        if template.endpoint_delay == 0:
            self.service.remove(pod.name)
        else:
            self.env.timeout(template.endpoint_delay).callbacks.append(lambda _e: self._unlist(pod))
        if template.prestop_sleep == 0 and template.drain and template.drain_period == 0:
            self._sigterm_drain_at_once(pod, template)  # same instant: no event needed
        else:
            self.env.process(self._terminate(pod, template))

    def _unlist(self, pod: Pod) -> None:
        if pod.name in {b.name for b in self.service.backends}:
            self.service.remove(pod.name)

    def _sigterm_drain_at_once(self, pod: Pod, template: PodTemplate, already: set[str] = frozenset()) -> None:
        self.drained += sum(1 for c in pod.server.connections if c not in already)
        pod.server.shutdown(template.close_code)
        self._gone(pod)

    def _terminate(self, pod: Pod, template: PodTemplate):
        env = self.env
        if template.prestop_sleep:
            yield env.timeout(template.prestop_sleep)  # preStop runs; SIGTERM when it ends
        if not template.drain:  # the app ignores SIGTERM: the kernel resets its sockets at SIGKILL
            yield env.timeout(template.termination_grace_period - template.prestop_sleep)
            self.dropped += len(pod.server.connections)
            pod.server.crash()
            self._gone(pod)
            return
        server = pod.server
        victims = list(server.connections)
        step = template.drain_period / len(victims) if victims else 0.0
        sent: set[str] = set()
        for client in victims:
            if step:
                yield env.timeout(step)
            if server.connections.get(client) is not None:
                # one close frame per connection, spread out; the client's answering close frame
                # removes it (RFC 6455 5.5.1)
                self.drained += 1
                sent.add(client)
                self.network.send(server.name, client, (frames.CLOSE, template.close_code), frames.FRAME_HEADER_BYTES)
        self._sigterm_drain_at_once(pod, template, sent)  # anyone who arrived meanwhile, then exit

    def _gone(self, pod: Pod) -> None:
        pod.phase, pod.gone_at = GONE, self.env.now
        if pod.name in {b.name for b in self.service.backends}:
            self.service.remove(pod.name)
        if self.on_gone is not None:
            self.on_gone(pod)
        if self._rollout is not None:
            self._reconcile()

    # --- rollouts -----------------------------------------------------------------------
    def rollout(self, template: PodTemplate | None = None, *, max_surge: int = 1, max_unavailable: int = 0) -> None:
        """Replace every pod by a pod of a new revision (``RollingUpdate`` strategy, absolute numbers).

        As the Deployment controller does it: the new ReplicaSet grows while all pods stay within
        ``replicas + max_surge``; old pods are deleted while the available ones (Ready, not
        terminating) stay at least ``replicas - max_unavailable`` (``reconcileNewReplicaSet``,
        ``reconcileOldReplicaSets`` in ``pkg/controller/deployment/rolling.go``). Terminating pods
        do not count. :attr:`rolled_out` fires when the last old pod is gone.
        """
        for name, value in (("max_surge", max_surge), ("max_unavailable", max_unavailable)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ParameterError(name, f"must be an integer >= 0, got {value!r}")
        if max_surge + max_unavailable < 1:
            raise ParameterError("max_surge", "max_surge + max_unavailable must be >= 1 or the rollout cannot progress")
        template = template if template is not None else self.templates[-1]
        self.templates.append(template)
        self._startup.append(template.startup.bind(self.ctx.rng(f"{self.name}.startup.{self.revision}")))
        self._rollout = (max_surge, max_unavailable)
        self._reconcile()

    def _reconcile(self) -> None:
        """Run the rollout's controller step until nothing changes (re-entrant calls are folded in)."""
        if self._reconciling:
            self._again = True
            return
        self._reconciling = True
        try:
            self._again = True
            while self._again:
                self._again = False
                self._rollout_step()
        finally:
            self._reconciling = False

    def _rollout_step(self) -> None:
        if self._rollout is None:
            return
        max_surge, max_unavailable = self._rollout
        new = self.revision
        # reconcileNewReplicaSet: grow the new ReplicaSet while all pods stay within replicas + maxSurge
        live = self.live()
        new_live = sum(1 for p in live if p.revision == new)
        for _ in range(max(0, min(self.replicas - new_live, self.replicas + max_surge - len(live)))):
            self._create()
        # reconcileOldReplicaSets: maxScaledDown = allPods - minAvailable - newRSUnavailable
        live = self.live()
        old_live = [p for p in live if p.revision != new]
        new_unavailable = sum(1 for p in live if p.revision == new and p.phase != READY)
        scale_down = len(live) - (self.replicas - max_unavailable) - new_unavailable
        if scale_down > 0 and old_live:
            for pod in deletion_order(old_live, self.env.now)[:scale_down]:  # not-ready old pods first
                self.delete(pod)
            self._again = True  # room was freed: the new ReplicaSet may grow
            return
        if not old_live and not any(p.phase == TERMINATING and p.revision != new for p in self.pods):
            self._rollout = None
            self.rolled_out.succeed(self.env.now)
