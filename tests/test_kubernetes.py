"""The Kubernetes workload: the ReplicaSet's scale-in order, the termination sequence, rollouts."""

import math

import pytest

from sim.components import frames
from sim.components.kubernetes import READY, STARTING, TERMINATING, Deployment, Pod, PodTemplate, deletion_order, \
    kube_proxy_service
from sim.components.load_balancer import ClientKey
from sim.components.backoff import make_backoff
from sim.components.resilient_client import ReconnectTracker, ResilientClient
from sim.core import Constant, Context, LinkSpec, Network, ParameterError


def pod(name, *, created, ready=None, uid=0):
    p = Pod(name, None, created, 0, uid, 0)  # type: ignore[arg-type]  # the order never looks at the server
    if ready is not None:
        p.phase, p.ready_at = READY, ready
    return p


def names(pods):
    return [p.name for p in pods]


def test_not_ready_pods_are_deleted_first():
    now = 5000.0
    order = deletion_order([pod("old-ready", created=0, ready=10, uid=1), pod("starting", created=4990, uid=9)], now)
    assert names(order) == ["starting", "old-ready"]


def test_the_most_recently_ready_goes_first_across_log2_buckets():
    # ready 100 s ago (bucket floor(log2(1e11 ns)) = 36) before ready 3000 s ago (bucket 41), whatever the UIDs
    now = 4000.0
    order = deletion_order([pod("long", created=0, ready=1000, uid=1), pod("recent", created=0, ready=3900, uid=2)],
                           now)
    assert names(order) == ["recent", "long"]


def test_within_one_log2_bucket_the_uid_decides_not_the_age():
    # ready 1100 s and 2000 s ago: both floor(log2(age in ns)) = 40, so LogarithmicScaleDown compares UIDs;
    # "newest first" (the model before) would delete "newer"
    now = 3000.0
    older = pod("older", created=0, ready=1000, uid=1)
    newer = pod("newer", created=0, ready=1900, uid=2)
    assert math.floor(math.log2(2000e9)) == math.floor(math.log2(1100e9)) == 40
    assert names(deletion_order([newer, older], now)) == ["older", "newer"]
    older.uid, newer.uid = 2, 1
    assert names(deletion_order([newer, older], now)) == ["newer", "older"]


def test_equal_ready_times_fall_through_to_the_creation_time():
    now = 4000.0
    a = pod("created-early", created=0, ready=500, uid=1)
    b = pod("created-late", created=400, ready=500, uid=2)  # created 3600 s ago (bucket 41) vs 4000 s (41)
    assert names(deletion_order([b, a], now)) == ["created-early", "created-late"]  # same bucket: UID
    b.created_at = 3990.0  # 10 s ago: bucket 33, newer
    assert names(deletion_order([a, b], now)) == ["created-late", "created-early"]
    # timestamps are whole seconds (metav1.Time): 500.2 and 500.9 are the same ready time
    c, d = pod("c", created=0, ready=500.2, uid=5), pod("d", created=3990, ready=500.9, uid=1)
    assert names(deletion_order([c, d], now)) == ["d", "c"]  # decided by the creation time, not the UID


def _deployment(ctx, template=PodTemplate(), **kw):
    return Deployment(ctx, Network(ctx, LinkSpec(latency=Constant(0.01))), template, **kw)


def test_scale_in_deletes_the_pods_the_replicaset_picks():
    ctx = Context(1)  # a seed where pod-2's UID sorts before pod-3's: "newest first" would pick pod-3
    d = _deployment(ctx, PodTemplate(startup=Constant(10.0)))
    d.start(2)                                    # pod-0, pod-1 ready at 0
    ctx.run(until=1000.0)
    d.scale(4)                                    # pod-2, pod-3 ready at 1010
    ctx.run(until=2900.0)
    d.scale(5)                                    # pod-4 still starting at 2905
    ctx.run(until=2905.0)
    victims = d.scale(2)
    # pod-4 is not ready: first. Then pod-2/pod-3 (ready 1895 s ago, bucket 40) before pod-0/pod-1
    # (ready 2905 s ago, bucket 41); pod-2 vs pod-3 by UID
    assert d.pod("pod-2").uid < d.pod("pod-3").uid
    assert names(victims) == ["pod-4", "pod-2", "pod-3"]
    assert [p.phase for p in d.pods] == [READY, READY, TERMINATING, TERMINATING, "gone"]
    assert d.replicas == 2 and names(d.live()) == ["pod-0", "pod-1"]


def _clients(ctx, d, n):
    policy = make_backoff("constant", base=1000.0, cap=1000.0)  # never back within the test
    tracker = ReconnectTracker()
    out = []
    for i in range(n):
        c = ResilientClient(ctx, f"c{i}", d.network, "", policy, tracker, lambda: 0.5)
        backend = d.service.route(ClientKey(c.name, 0))
        c.server = backend.name
        c.adopt_connection()
        d.pod(backend.name).server.adopt(c.name)
        out.append(c)
    return out


@pytest.mark.parametrize("code", [frames.SERVICE_RESTART, frames.GOING_AWAY])
def test_a_draining_pod_closes_with_its_close_code(code):
    ctx = Context(1)
    d = _deployment(ctx, PodTemplate(drain=True, close_code=code, prestop_sleep=2.0, drain_period=4.0))
    d.start(2)
    clients = _clients(ctx, d, 20)
    d.scale(1)
    victim = next(p for p in d.pods if p.phase == TERMINATING)
    on_victim = [c for c in clients if c.server == victim.name]
    ctx.run(until=1.9)
    assert all(c.state == "connected" for c in on_victim)  # preStop still sleeping
    ctx.run(until=10.0)
    assert on_victim and {c.close_code for c in on_victim} == {code}
    assert d.drained == len(on_victim) and d.dropped == 0 and victim.gone_at == pytest.approx(6.0, abs=0.5)


def test_the_default_drain_code_is_1012_service_restart():
    ctx = Context(1)
    d = _deployment(ctx, PodTemplate(drain=True))
    d.start(2)
    clients = _clients(ctx, d, 10)
    d.scale(1)
    ctx.run(until=1.0)
    assert {c.close_code for c in clients if c.state != "connected"} == {frames.SERVICE_RESTART}


def test_without_drain_sockets_die_at_sigkill_after_the_grace_period():
    ctx = Context(1)
    d = _deployment(ctx, PodTemplate(termination_grace_period=30.0, endpoint_delay=1.0))
    d.start(2)
    clients = _clients(ctx, d, 10)
    d.scale(1)
    victim = next(p for p in d.pods if p.phase == TERMINATING)
    ctx.run(until=0.5)
    assert victim.name in [b.name for b in d.service.backends]  # endpoint removal has not propagated yet
    ctx.run(until=29.0)
    assert victim.name not in [b.name for b in d.service.backends]
    assert all(c.state == "connected" for c in clients)
    ctx.run(until=31.0)
    cut = [c for c in clients if c.state != "connected"]
    assert cut and {c.close_code for c in cut} == {frames.ABNORMAL_CLOSURE} and d.dropped == len(cut)


@pytest.mark.parametrize("surge, unavailable", [(1, 0), (0, 1), (2, 1), (3, 0)])
def test_a_rollout_respects_max_surge_and_max_unavailable(surge, unavailable):
    ctx = Context(3)
    d = _deployment(ctx, PodTemplate(startup=Constant(5.0), termination_grace_period=7.0))
    d.start(6)
    seen = []
    d.rollout(max_surge=surge, max_unavailable=unavailable)
    while not d.rolled_out.triggered:
        live = d.live()
        seen.append((len(live), sum(1 for p in live if p.phase == READY)))
        ctx.run(until=ctx.env.now + 0.5)
    assert max(total for total, _ in seen) <= 6 + surge
    assert min(ready for _, ready in seen) >= 6 - unavailable
    assert all(p.revision == 1 and p.phase == READY for p in d.live()) and len(d.live()) == 6
    assert all(p.phase == "gone" for p in d.pods if p.revision == 0)


def test_the_service_follows_kube_proxy_modes():
    ctx = Context(0)
    assert kube_proxy_service(ctx, "iptables").policy == "random"
    assert kube_proxy_service(ctx, "ipvs").policy == "round_robin"
    assert kube_proxy_service(ctx, "ipvs_lc").policy == "least_connections"
    with pytest.raises(ParameterError) as err:
        kube_proxy_service(ctx, "userspace")
    assert err.value.parameter == "service"


@pytest.mark.parametrize("changes, parameter", [
    (dict(close_code=1006), "close_code"),
    (dict(termination_grace_period=-1.0), "termination_grace_period"),
    (dict(drain=True, prestop_sleep=20.0, drain_period=20.0), "drain_period"),
    (dict(startup=3.0), "startup"),
])
def test_bad_templates_name_the_field(changes, parameter):
    with pytest.raises(ParameterError) as err:
        PodTemplate(**changes)
    assert err.value.parameter == parameter


def test_a_rollout_needs_surge_or_unavailability():
    d = _deployment(Context(0))
    d.start(2)
    with pytest.raises(ParameterError) as err:
        d.rollout(max_surge=0, max_unavailable=0)
    assert err.value.parameter == "max_surge"
