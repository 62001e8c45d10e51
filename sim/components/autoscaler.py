"""Kubernetes horizontal pod autoscaling (course question 6B: « auto-scaling de pods »).

Three pieces, each usable alone:

* :func:`hpa_step` — the HorizontalPodAutoscaler algorithm as a pure function: the spec, the
  controller's memory (:class:`HpaState`), the time, the current replica count and the metric
  of each pod go in; a :class:`Decision` and the new memory come out. It follows the
  Kubernetes documentation (``data/kubernetes_hpa.json`` cites it): ``desired =
  ceil(current × metric / target)``, nothing within the tolerance, not-ready pods set aside
  (and counted at 0 % when the others ask for a scale-up), the highest recommendation of the
  scale-down stabilisation window, then the scaling policies (default: up by max(100 %, 4 pods)
  per 15 s, down by 100 % per 15 s), then min/max replicas.
* :class:`HorizontalPodAutoscaler` — a simpy process that runs :func:`hpa_step` on a
  :class:`~sim.components.kubernetes.Deployment` (the project's one Kubernetes workload: pods,
  Service, ReplicaSet order, termination) every sync period and applies the decision.

The metric is a ``Pods`` metric of type ``AverageValue``: active connections per pod.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Callable, Sequence

import simpy

from sim import data
from sim.components.kubernetes import Deployment
from sim.core.context import Context
from sim.core.errors import ParameterError

PODS, PERCENT = "Pods", "Percent"
SELECT_POLICIES = ("Max", "Min", "Disabled")


def hpa_defaults() -> dict:
    """The documented HPA defaults from ``data/kubernetes_hpa.json`` (with their sources)."""
    return data.load("kubernetes_hpa")


def _number(name: str, value: object, *, low: float, strict: bool = False, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    ok = isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < low or (strict and value == low):
        what = "an integer" if integer else "a number"
        raise ParameterError(name, f"must be {what} {'>' if strict else '>='} {low:g}, got {value!r}")


@dataclass(frozen=True)
class ScalingPolicy:
    """One HPA scaling policy: change by ``value`` pods or percent within any ``period`` seconds."""

    type: str
    value: int
    period: float

    def __post_init__(self) -> None:
        if self.type not in (PODS, PERCENT):
            raise ParameterError("policy.type", f"must be {PODS} or {PERCENT}, got {self.type!r}")
        _number("policy.value", self.value, low=0, strict=True, integer=True)
        _number("policy.period", self.period, low=0, strict=True)


@dataclass(frozen=True)
class ScalingRules:
    """``behavior.scaleUp`` or ``behavior.scaleDown`` of an HPA."""

    stabilization_window: float
    policies: tuple[ScalingPolicy, ...]
    select_policy: str = "Max"

    def __post_init__(self) -> None:
        _number("stabilization_window", self.stabilization_window, low=0)
        if self.select_policy not in SELECT_POLICIES:
            raise ParameterError("select_policy", f"must be one of {', '.join(SELECT_POLICIES)}, got {self.select_policy!r}")
        if not self.policies and self.select_policy != "Disabled":
            raise ParameterError("policies", "must hold at least one policy unless select_policy is Disabled")

    @classmethod
    def from_data(cls, table: dict) -> "ScalingRules":
        return cls(float(table["stabilization_window_s"]),
                   tuple(ScalingPolicy(p["type"], int(p["value"]), float(p["period_s"])) for p in table["policies"]),
                   table["select_policy"])


def _default_rules(direction: str) -> ScalingRules:
    return ScalingRules.from_data(hpa_defaults()[direction])


@dataclass(frozen=True)
class HpaSpec:
    """What an HPA object says: the target per pod, the bounds and the behaviour (documented defaults)."""

    target: float
    """Target average value of the metric per pod (here: connections per pod)."""
    min_replicas: int = 1
    max_replicas: int = 10
    tolerance: float = field(default_factory=lambda: float(hpa_defaults()["tolerance"]))
    sync_period: float = field(default_factory=lambda: float(hpa_defaults()["sync_period_s"]))
    scale_up: ScalingRules = field(default_factory=lambda: _default_rules("scale_up"))
    scale_down: ScalingRules = field(default_factory=lambda: _default_rules("scale_down"))

    def __post_init__(self) -> None:
        _number("target", self.target, low=0, strict=True)
        _number("min_replicas", self.min_replicas, low=1, integer=True)
        _number("max_replicas", self.max_replicas, low=1, integer=True)
        if self.max_replicas < self.min_replicas:
            raise ParameterError("max_replicas", f"must be >= min_replicas ({self.min_replicas}), got {self.max_replicas}")
        _number("tolerance", self.tolerance, low=0)
        _number("sync_period", self.sync_period, low=0, strict=True)


@dataclass(frozen=True)
class HpaState:
    """What the controller remembers between syncs (empty for a new HPA)."""

    recommendations: tuple[tuple[float, int], ...] = ()
    """``(time, recommendation)`` of recent syncs, before stabilisation: the stabilisation windows."""
    scale_up_events: tuple[tuple[float, int], ...] = ()
    """``(time, pods added)`` of recent scale-ups: the look-back of the scaling policies."""
    scale_down_events: tuple[tuple[float, int], ...] = ()
    """``(time, pods removed)`` of recent scale-downs."""


@dataclass(frozen=True)
class Decision:
    """What one sync decided, with the intermediate values the documentation names."""

    time: float
    current: int
    """``spec.replicas`` of the workload before the sync."""
    desired: int
    """``spec.replicas`` after the sync."""
    recommendation: int
    """From the metric alone (``ceil(current × ratio)`` with not-ready pods handled), before stabilisation."""
    stabilized: int
    """After the stabilisation windows, before the scaling policies and min/max."""
    usage_ratio: float
    """Average metric of the ready pods / target (nan when no ready pod reports)."""
    ready: int
    unready: int
    reason: str


def _ceil(x: Fraction) -> int:
    return -((-x.numerator) // x.denominator)


def recommend(spec: HpaSpec, current: int, ready_values: Sequence[float], unready: int) -> tuple[int, float, str]:
    """``(recommendation, usage ratio, reason)`` from the metric, following the documented rules.

    Exact arithmetic: ``ceil(ratio × pods)`` is ``ceil(sum / target)``, so 6.000000000000001 never
    becomes 7 (the controller's float64 could; the documented formula cannot).
    """
    if not ready_values:
        return current, math.nan, "no ready pod reports the metric: no change"
    target = Fraction(repr(float(spec.target)))
    tolerance = Fraction(repr(float(spec.tolerance)))
    total = sum(Fraction(repr(float(v))) for v in ready_values)
    n_ready = len(ready_values)
    ratio = total / n_ready / target
    if not (unready > 0 and ratio > 1):
        if abs(1 - ratio) <= tolerance:
            return current, float(ratio), "within tolerance"
        return _ceil(total / target), float(ratio), "ceil(current x ratio) over ready pods"
    # not-ready pods would only be asked to help with a scale-up: count them at 0 % of the target
    pods = n_ready + unready
    new_ratio = total / pods / target
    if abs(1 - new_ratio) <= tolerance or new_ratio < 1:
        return current, float(ratio), "not-ready pods at 0 %: within tolerance or direction flips"
    return max(current, _ceil(total / target)), float(ratio), "ceil(pods x ratio) with not-ready pods at 0 %"


def _changed_within(events: tuple[tuple[float, int], ...], now: float, period: float) -> int:
    return sum(n for t, n in events if t > now - period)


def _limit(rules: ScalingRules, current: int, state: HpaState, now: float, up: bool) -> int:
    """The replica count the policies allow at ``now`` (Max: the policy allowing the largest change)."""
    if rules.select_policy == "Disabled":
        return current
    proposals = []
    for policy in rules.policies:
        # the count the period started from: undo the changes made within the look-back window
        start = (current - _changed_within(state.scale_up_events, now, policy.period)
                 + _changed_within(state.scale_down_events, now, policy.period))
        # float64 as horizontal.go computes it (calculateScaleUpLimitWithScalingRules /
        # calculateScaleDownLimitWithBehaviors): int32(math.Ceil(float64(start) * (1 + float64(v)/100)))
        # up, int32(float64(start) * (1 - float64(v)/100)) down (truncation). So 10 % up from 50 pods
        # allows 56, not 55: 50 * 1.1 = 55.00000000000001.
        if up:
            proposals.append(start + policy.value if policy.type == PODS
                             else int(math.ceil(float(start) * (1 + float(policy.value) / 100))))
        else:
            proposals.append(start - policy.value if policy.type == PODS
                             else int(float(start) * (1 - float(policy.value) / 100)))
    largest_change = max if up else min
    return (largest_change if rules.select_policy == "Max" else (min if up else max))(proposals)


def hpa_step(spec: HpaSpec, state: HpaState, now: float, current: int, ready_values: Sequence[float],
             unready: int = 0) -> tuple[Decision, HpaState]:
    """One sync of the HPA: the decision and the controller's new memory (nothing is mutated).

    ``current`` is the workload's ``spec.replicas``; ``ready_values`` the metric of each ready
    pod (terminating pods are left out by the caller); ``unready`` the pods not ready yet.
    """

    def decide(desired: int, recommendation: int, stabilized: int, ratio: float, reason: str,
               new_state: HpaState) -> tuple[Decision, HpaState]:
        return Decision(now, current, desired, recommendation, stabilized, ratio, len(ready_values), unready,
                        reason), new_state

    if current == 0:
        return decide(0, 0, 0, math.nan, "replicas = 0: autoscaling is disabled", state)
    if current > spec.max_replicas:
        return decide(spec.max_replicas, spec.max_replicas, spec.max_replicas, math.nan, "above max_replicas", state)
    if current < spec.min_replicas:
        return decide(spec.min_replicas, spec.min_replicas, spec.min_replicas, math.nan, "below min_replicas", state)
    if not ready_values:
        # horizontal.go: computeReplicasForMetrics fails ("did not receive metrics for targeted pods"),
        # the sync ends before normalizeDesiredReplicas: no recommendation stored, no scale event
        return decide(current, current, current, math.nan, "no ready pod reports the metric: no change", state)
    rec, ratio, reason = recommend(spec, current, ready_values, unready)

    # stabilisation: the lowest recommendation of the scale-up window, the highest of the scale-down one
    up_cut, down_cut = now - spec.scale_up.stabilization_window, now - spec.scale_down.stabilization_window
    up_rec = down_rec = rec
    for t, r in state.recommendations:
        if t > up_cut:
            up_rec = min(up_rec, r)
        if t > down_cut:
            down_rec = max(down_rec, r)
    stabilized = min(max(current, up_rec), down_rec)
    keep = max(spec.scale_up.stabilization_window, spec.scale_down.stabilization_window)
    recommendations = tuple((t, r) for t, r in state.recommendations if t > now - keep) + ((now, rec),)

    desired = stabilized
    if stabilized > current:
        allowed = min(spec.max_replicas, max(current, _limit(spec.scale_up, current, state, now, up=True)))
        desired = min(stabilized, allowed)
    elif stabilized < current:
        allowed = max(spec.min_replicas, min(current, _limit(spec.scale_down, current, state, now, up=False)))
        desired = max(stabilized, allowed)
    if desired != stabilized:
        reason += f"; limited to {desired} by the scaling policies / bounds"
    elif stabilized != rec:
        reason += f"; stabilised at {stabilized} (highest recommendation in the window)"

    longest = max((p.period for p in (*spec.scale_up.policies, *spec.scale_down.policies)), default=0.0)
    ups = tuple(e for e in state.scale_up_events if e[0] > now - longest)
    downs = tuple(e for e in state.scale_down_events if e[0] > now - longest)
    if desired > current:
        ups += ((now, desired - current),)
    elif desired < current:
        downs += ((now, current - desired),)
    return decide(desired, rec, stabilized, ratio, reason, HpaState(recommendations, ups, downs))


class HorizontalPodAutoscaler:
    """Runs :func:`hpa_step` on ``deployment`` every ``spec.sync_period`` seconds, from time 0."""

    def __init__(self, ctx: Context, spec: HpaSpec, deployment: Deployment,
                 on_decision: Callable[[Decision], None] | None = None) -> None:
        self.ctx = ctx
        self.spec = spec
        self.deployment = deployment
        self.state = HpaState()
        self.decisions: list[Decision] = []
        self.on_decision = on_decision
        self.process = ctx.env.process(self._loop(ctx.env))

    def _loop(self, env: simpy.Environment):
        while True:
            ready, unready = self.deployment.metrics()
            decision, self.state = hpa_step(self.spec, self.state, env.now, self.deployment.replicas, ready, unready)
            self.decisions.append(decision)
            if decision.desired != decision.current:
                self.deployment.scale(decision.desired)
            if self.on_decision is not None:
                self.on_decision(decision)
            yield env.timeout(self.spec.sync_period)


def with_policies(spec: HpaSpec, *, scale_up_pods: int | None = None, scale_up_percent: int | None = None) -> HpaSpec:
    """``spec`` with the values of its default scale-up policies changed (same period)."""
    policies = []
    for p in spec.scale_up.policies:
        value = scale_up_pods if p.type == PODS and scale_up_pods is not None else \
            scale_up_percent if p.type == PERCENT and scale_up_percent is not None else p.value
        policies.append(ScalingPolicy(p.type, value, p.period))
    return replace(spec, scale_up=replace(spec.scale_up, policies=tuple(policies)))
