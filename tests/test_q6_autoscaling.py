"""The HPA algorithm against hand-computed syncs, and the long-lived-connection trap of ``autoscaling``."""

import math

import pytest
from hypothesis import given, settings, strategies as st

import sim
from sim.components.kubernetes import Deployment, PodTemplate
from sim.components.autoscaler import HorizontalPodAutoscaler, HpaSpec, HpaState, ScalingPolicy, \
    ScalingRules, hpa_step
from sim.core import Constant, Context, Network, ParameterError
from sim.scenarios.q6_deployment.autoscaling import AutoscalingParams

SEED = 20261124


def run_syncs(spec, totals, current, *, start=0.0, state=None):
    """Feed one total connection count per sync, all pods ready and equally loaded; return desired replicas."""
    state = state or HpaState()
    out = []
    for i, total in enumerate(totals):
        per_pod = [total // current + (k < total % current) for k in range(current)]  # whole connections
        decision, state = hpa_step(spec, state, start + i * spec.sync_period, current, per_pod)
        current = decision.desired
        out.append(current)
    return out, state


def test_documented_defaults_come_from_the_data_file():
    spec = HpaSpec(target=100)
    assert (spec.sync_period, spec.tolerance) == (15.0, 0.1)
    assert spec.scale_down.stabilization_window == 300.0 and spec.scale_up.stabilization_window == 0.0
    assert set(spec.scale_up.policies) == {ScalingPolicy("Percent", 100, 15.0), ScalingPolicy("Pods", 4, 15.0)}
    assert spec.scale_up.select_policy == "Max"


def test_formula_ceil_current_times_ratio():
    spec = HpaSpec(target=100, min_replicas=1, max_replicas=50)
    # 4 pods at 150 each: ratio 1.5 -> ceil(4 x 1.5) = 6 (the +2 is within max(100 %, 4 pods))
    d, _ = hpa_step(spec, HpaState(), 0.0, 4, [150, 150, 150, 150])
    assert (d.recommendation, d.desired, d.usage_ratio) == (6, 6, 1.5)
    # 5 pods at 120: 1.2 x 5 = 6 exactly (a float product would give 6.000000000000001 -> 7)
    d, _ = hpa_step(spec, HpaState(), 0.0, 5, [120] * 5)
    assert d.desired == 6


@pytest.mark.parametrize("values, changes", [
    ([105, 110, 95, 120], False),   # mean 107.5: ratio 1.075
    ([110] * 4, False),             # ratio 1.1: on the tolerance, still no change
    ([90] * 4, False),              # ratio 0.9
    ([111] * 4, True),              # ratio 1.11 -> ceil(4.44) = 5
    ([89] * 4, True),               # ratio 0.89: outside, recommends ceil(3.56) = 4 (same count, by rounding)
])
def test_tolerance(values, changes):
    spec = HpaSpec(target=100, min_replicas=1, max_replicas=50)
    d, _ = hpa_step(spec, HpaState(), 0.0, 4, values)
    assert (d.reason == "within tolerance") is not changes
    if not changes:
        assert d.desired == d.recommendation == 4


@settings(derandomize=True, deadline=None, max_examples=60)
@given(current=st.integers(1, 30), data=st.data())
def test_never_changes_within_the_tolerance(current, data):
    spec = HpaSpec(target=100, min_replicas=1, max_replicas=30)
    state = HpaState()
    syncs = data.draw(st.integers(1, 40))
    for i in range(syncs):
        # connections per pod whose average is within 10 % of the target
        total = data.draw(st.integers(90 * current, 110 * current))
        values = [total // current + (k < total % current) for k in range(current)]
        d, state = hpa_step(spec, state, 15.0 * i, current, values)
        assert d.desired == current


@settings(derandomize=True, deadline=None, max_examples=60)
@given(low=st.integers(1, 8), extra=st.integers(0, 12),
       loads=st.lists(st.tuples(st.floats(0, 5000), st.integers(0, 4)), min_size=1, max_size=60))
def test_replicas_stay_within_min_and_max(low, extra, loads):
    spec = HpaSpec(target=40, min_replicas=low, max_replicas=low + extra)
    state, current = HpaState(), low
    for i, (total, unready) in enumerate(loads):
        unready = min(unready, current - 1)
        ready = current - unready
        d, state = hpa_step(spec, state, 15.0 * i, current, [total / ready] * ready, unready)
        assert low <= d.desired <= low + extra
        current = d.desired


def test_scale_up_is_limited_to_max_of_100_percent_and_4_pods_per_15_s():
    spec = HpaSpec(target=10, min_replicas=1, max_replicas=100)
    # the load asks for 100 pods at once; each sync may add max(current, 4): 1 -> 5 -> 10 -> 20 -> 40 -> 80 -> 100
    replicas, _ = run_syncs(spec, [1000] * 7, 1)
    assert replicas == [5, 10, 20, 40, 80, 100, 100]
    # from 2 pods: max(4, 2 + 4) = 6, then max(12, 10) = 12
    replicas, _ = run_syncs(spec, [1000] * 2, 2)
    assert replicas == [6, 12]


def test_scale_up_policies_count_changes_within_their_period():
    # a 60 s period (not the default): the 4 pods added at t=0 still count at t=15, 30 and 45
    rules = ScalingRules(0.0, (ScalingPolicy("Pods", 4, 60.0),))
    spec = HpaSpec(target=10, min_replicas=1, max_replicas=100, scale_up=rules)
    replicas, _ = run_syncs(spec, [1000] * 6, 1)
    assert replicas == [5, 5, 5, 5, 9, 9]


def test_not_ready_pods_count_as_zero_on_scale_up():
    spec = HpaSpec(target=100, min_replicas=1, max_replicas=50)
    # 2 ready pods at 300, 2 starting: ratio 3 over the ready ones; with the starting ones at 0: 600 / 4 = 1.5
    d, _ = hpa_step(spec, HpaState(), 0.0, 4, [300, 300], unready=2)
    assert (d.usage_ratio, d.desired) == (3.0, 6)
    # ratio 1.5 over ready pods, 0.75 with the starting ones: the direction flips -> no change
    d, _ = hpa_step(spec, HpaState(), 0.0, 4, [150, 150], unready=2)
    assert d.desired == 4
    # scale-down: not-ready pods are simply set aside: ceil(2 x 0.5) = 1
    d, _ = hpa_step(spec, HpaState(), 0.0, 4, [50, 50], unready=2)
    assert d.recommendation == 1


def test_scale_down_waits_for_the_highest_recommendation_of_the_last_300_s():
    spec = HpaSpec(target=100, min_replicas=1, max_replicas=50)
    # t = 0..135: 1000 connections (10 pods); t = 150..285: 600 (6); from t = 300: 200 (2)
    totals = [1000] * 10 + [600] * 10 + [200] * 30
    replicas, _ = run_syncs(spec, totals, 10)
    times = [15.0 * i for i in range(len(totals))]
    at = dict(zip(times, replicas))
    # the last "10" was recorded at t=135: it rules the window (t-300, t] until t = 435
    assert all(at[t] == 10 for t in times if t < 435)
    # then the 6s of t = 150..285 rule until t = 285 + 300 = 585
    assert all(at[t] == 6 for t in times if 435 <= t < 585)
    assert all(at[t] == 2 for t in times if t >= 585)


def test_a_short_dip_does_not_scale_down():
    spec = HpaSpec(target=100, min_replicas=1, max_replicas=50)
    replicas, _ = run_syncs(spec, [800] * 20 + [100] * 10 + [800] * 20, 8)
    assert set(replicas) == {8}


def test_the_process_scales_a_deployment_every_sync_period():
    ctx = Context(1)
    deployment = Deployment(ctx, Network(ctx), PodTemplate(startup=Constant(20.0)))
    deployment.start(2)
    hpa = HorizontalPodAutoscaler(ctx, HpaSpec(target=10, min_replicas=2, max_replicas=20), deployment)
    for pod in deployment.pods:
        for i in range(50):
            pod.server.adopt(f"{pod.name}-c{i}")  # 100 connections: 10 pods wanted
    ctx.run(until=61)
    assert [d.time for d in hpa.decisions] == [0.0, 15.0, 30.0, 45.0, 60.0]
    # t=0: max(2 x 2, 2 + 4) = 6; t=15: pods start up for 20 s: 4 unready at 0 % -> 100 / 6 = 1.67 -> 10
    assert [d.desired for d in hpa.decisions] == [6, 10, 10, 10, 10]
    assert len(deployment.endpoints) == 10 and deployment.replicas == 10


# ===================================================================== the scenario ====
@pytest.fixture(scope="module")
def evening():
    result = sim.run("autoscaling", seed=SEED)
    return result.summary.set_index("remedy"), result.series


def test_the_trap_new_pods_stay_nearly_empty_after_scale_out(evening):
    _, series = evening
    pods = series["pods"][series["pods"].remedy == "none"]
    ready = pods[pods.phase == "ready"]
    first = ready[ready.created_s > 0].time_s.min()  # first sync with a pod added by the HPA in service
    at = ready[ready.time_s == first + 60]
    old = at[at.created_s == 0].connections.mean()
    new = at[at.created_s > 0].connections.mean()
    # the HPA scaled out because the old pods passed target x (1 + tolerance) = 110; in 60 s a new
    # pod gets its round-robin share of arrivals, at most peak_rate x 60 / 3 pods = 20 connections
    assert old > 110
    assert new <= 20 and new < old / 4


def test_remedies_reduce_the_imbalance(evening):
    summary, _ = evening
    none = summary.loc["none"]
    assert none.peak_imbalance > 1.8  # old pods near twice the mean right after doubling the pods
    # least connections fills a new pod in ~target / arrival rate = 100-200 s, max_age moves every
    # connection within ~max_age (600 s), while round robin waits for lifetimes (mean 1800 s)
    assert summary.loc["least_connections", "mean_imbalance"] < 1.1 < none.mean_imbalance - 0.2
    assert summary.loc["max_age", "mean_imbalance"] < none.mean_imbalance - 0.2
    assert summary.loc["least_connections", "peak_max_per_pod"] < none.peak_max_per_pod
    # max_age pays in reconnections: about one per connection per max_age
    assert summary.loc["max_age", "reconnects_caused"] > 5 * none.reconnects_caused


def test_drain_closes_instead_of_dropping(evening):
    summary, _ = evening
    assert summary.loc["none", "dropped_on_scale_in"] > 0
    assert summary.loc["drain", "dropped_on_scale_in"] == 0
    assert summary.loc["drain", "drained_on_scale_in"] > 0
    # draining pods leave at once instead of living out the 30 s grace period
    assert summary.loc["drain", "pod_seconds"] < summary.loc["none", "pod_seconds"]


def test_replica_series_respects_the_bounds(evening):
    _, series = evening
    replicas = series["replicas"]
    assert replicas.desired.between(2, 20).all()
    assert (replicas.ready <= replicas.desired + replicas.terminating).all()
    assert replicas.desired.max() > 2  # the peak did scale out
    # after the peak the load falls and every remedy scales back in
    assert (replicas.groupby("remedy").desired.last() < replicas.groupby("remedy").desired.max()).all()


def test_same_seed_same_result():
    kwargs = dict(remedy="none,max_age", horizon=3000.0, peak_rate=0.6)
    a = sim.run("autoscaling", seed=3, **kwargs)
    b = sim.run("autoscaling", seed=3, **kwargs)
    c = sim.run("autoscaling", seed=4, **kwargs)
    assert a.summary.equals(b.summary) and a.series["replicas"].equals(b.series["replicas"])
    assert not a.summary.equals(c.summary)


@pytest.mark.parametrize("changes, parameter", [
    (dict(remedy="prayer"), "remedy"),
    (dict(min_replicas=0), "min_replicas"),
    (dict(min_replicas=5, max_replicas=3), "max_replicas"),
    (dict(target_connections=0.0), "target_connections"),
    (dict(base_rate=2.0, peak_rate=1.0), "peak_rate"),
    (dict(tolerance=-0.1), "tolerance"),
    (dict(sync_period=0.0), "sync_period"),
    (dict(max_age_jitter=1.0), "max_age_jitter"),
    (dict(backoff_base=10.0, backoff_cap=5.0), "backoff_cap"),
    (dict(scale_up_pods=0), "scale_up_pods"),
])
def test_bad_parameters_name_the_parameter(changes, parameter):
    with pytest.raises(ParameterError) as err:
        AutoscalingParams(**changes)
    assert err.value.parameter == parameter


@pytest.mark.parametrize("make, parameter", [
    (lambda: HpaSpec(target=-1), "target"),
    (lambda: HpaSpec(target=1, min_replicas=3, max_replicas=2), "max_replicas"),
    (lambda: ScalingPolicy("Bananas", 1, 15.0), "policy.type"),
    (lambda: ScalingRules(0.0, (), "Max"), "policies"),
])
def test_bad_hpa_specs_name_the_field(make, parameter):
    with pytest.raises(ParameterError) as err:
        make()
    assert err.value.parameter == parameter


# ======================================================== fidelity to horizontal.go ====
def test_percent_policies_are_computed_in_float64_as_horizontal_go_does():
    # calculateScaleUpLimitWithScalingRules: int32(math.Ceil(float64(50) * (1 + float64(10)/100)));
    # 50 * 1.1 is 55.00000000000001 in float64, so Kubernetes allows 56 pods, not the exact 55
    up = ScalingRules(0.0, (ScalingPolicy("Percent", 10, 15.0),))
    spec = HpaSpec(target=10, min_replicas=1, max_replicas=200, scale_up=up)
    d, _ = hpa_step(spec, HpaState(), 0.0, 50, [100] * 50)
    assert d.desired == 56
    # calculateScaleDownLimitWithBehaviors truncates: int32(float64(10) * (1 - 0.7)) = int32(3.0000000000000004) = 3
    down = ScalingRules(0.0, (ScalingPolicy("Percent", 70, 15.0),))
    spec = HpaSpec(target=100, min_replicas=1, max_replicas=50, scale_down=down)
    d, _ = hpa_step(spec, HpaState(), 0.0, 10, [1] * 10)
    assert d.desired == 3


def test_a_sync_with_no_ready_pod_records_no_recommendation():
    spec = HpaSpec(target=100, min_replicas=1, max_replicas=50)
    # 10 pods, none ready: horizontal.go fails to compute a metric and stores nothing
    d, state = hpa_step(spec, HpaState(), 0.0, 10, [], unready=10)
    assert d.desired == 10 and state == HpaState()
    # so a later scale-down is not held up by a phantom "10" in the stabilisation window
    d, state = hpa_step(spec, state, 15.0, 10, [10] * 10)
    assert d.desired == 1
