"""Network: conservation laws under random links, partitions and detached nodes; FIFO, reordering,
partitions and reproducibility on hand-checked cases."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import simpy
from hypothesis import given, settings, strategies as st

from sim.core.context import Context
from sim.core.distributions import Constant, Exponential, TruncatedNormal, Uniform
from sim.core.errors import ParameterError
from sim.core.network import DROP_REASONS, LinkSpec, Message, Network

HYPO = settings(derandomize=True, deadline=None, max_examples=120, database=None)
NODES = ("a", "b", "c", "d")


def at(env: simpy.Environment, t: float, fn) -> None:
    env.timeout(t - env.now).callbacks.append(lambda _e: fn())


def pending_messages(env: simpy.Environment) -> tuple[int, int]:
    """(originals, duplicates) still scheduled in the environment: counted independently of Network."""
    originals = duplicates = 0
    values = [getattr(event, "_value", None) for _t, _prio, _eid, event in env._queue]  # simpy internals: its heap
    values += [arg for _t, _callback, arg in env.calendar()]  # and the calendar lane, where messages travel
    for value in values:
        if isinstance(value, Message):
            if value.duplicate:
                duplicates += 1
            else:
                originals += 1
    return originals, duplicates


# --- strategies ------------------------------------------------------------------------------
latencies = st.one_of(
    st.builds(Constant, st.floats(0, 2)),
    st.builds(lambda lo, w: Uniform(lo, lo + w), st.floats(0, 1), st.floats(0, 1)),
    st.builds(Exponential, st.floats(0.5, 20)),
    st.builds(TruncatedNormal, st.floats(0, 1), st.floats(0, 0.5)),
)
probabilities = st.one_of(st.just(0.0), st.just(1.0), st.floats(0, 1))
link_specs = st.builds(
    LinkSpec, latency=latencies, loss=probabilities, duplication=probabilities, reorder=probabilities,
    reorder_delay=st.floats(0, 3), fifo=st.booleans(),
)
node_sets = st.frozensets(st.sampled_from(NODES), min_size=1, max_size=3)


@st.composite
def partitions(draw):
    start = draw(st.floats(0, 10))
    heal = draw(st.one_of(st.none(), st.floats(0, 5).map(lambda d: start + d)))
    return draw(node_sets), draw(st.one_of(st.none(), node_sets)), start, heal


def sized_lists(elements, max_size: int, min_size: int = 0):
    """Lists whose length is uniform in [min_size, max_size] (plain st.lists favours short ones)."""
    return st.integers(min_size, max_size).flatmap(lambda n: st.lists(elements, min_size=n, max_size=n))


@dataclass
class Scenario:
    seed: int
    default: LinkSpec
    links: list
    sends: list
    partitions: list
    never_attached: frozenset
    topology_changes: list


@st.composite
def scenarios(draw, lossless: bool = False):
    if lossless:
        spec = st.builds(LinkSpec, latency=latencies, reorder=probabilities, reorder_delay=st.floats(0, 3),
                         fifo=st.booleans())
    else:
        spec = link_specs
    return Scenario(
        seed=draw(st.integers(0, 2**32 - 1)),
        default=draw(spec),
        links=draw(st.lists(st.tuples(st.sampled_from(NODES), st.sampled_from(NODES), spec, st.booleans()),
                            max_size=4)),
        sends=draw(sized_lists(st.tuples(st.floats(0, 10), st.sampled_from(NODES), st.sampled_from(NODES)), 60)),
        partitions=[] if lossless else draw(st.lists(partitions(), max_size=3)),
        never_attached=frozenset() if lossless else draw(st.frozensets(st.sampled_from(NODES), max_size=2)),
        topology_changes=[] if lossless else draw(
            st.lists(st.tuples(st.floats(0, 10), st.sampled_from(NODES), st.booleans()), max_size=4)),
    )


# --- running a scenario ------------------------------------------------------------------------
class Run:
    def __init__(self, sc: Scenario, *, checkpoint_every: float | None = 0.25) -> None:
        self.ctx = ctx = Context(sc.seed)
        self.net = net = Network(ctx, sc.default)
        self.log: list[tuple] = []
        self.sends_made = 0
        self.checks = 0
        for a, b, spec, both in sc.links:
            net.link(a, b, spec, both_ways=both)
        for node in NODES:
            if node not in sc.never_attached:
                net.attach(node, self.handler(node))
        for side, other, start, heal in sc.partitions:
            net.partition(side, other, start=start, heal=heal)
        for t, node, attach in sc.topology_changes:
            at(ctx.env, t, (lambda n=node: net.attach(n, self.handler(n))) if attach else
               (lambda n=node: net.detach(n)))
        for i, (t, src, dst) in enumerate(sc.sends):
            at(ctx.env, t, lambda s=src, d=dst, i=i: self.send(s, d, i))
        if checkpoint_every:
            ctx.env.process(self.checkpoints(checkpoint_every))
        ctx.run()

    def send(self, src: str, dst: str, i: int) -> None:
        self.sends_made += 1
        msg = self.net.send(src, dst, payload=i, size_bytes=10 + i)
        assert (msg.src, msg.dst, msg.payload, msg.sent_at, msg.duplicate) == (src, dst, i, self.ctx.now, False)
        self.check(in_handler=False)

    def handler(self, node: str):
        def handle(msg: Message) -> None:
            assert msg.dst == node
            assert self.ctx.now >= msg.sent_at
            self.log.append((self.ctx.now, msg.src, msg.dst, msg.id, msg.duplicate, msg.payload))
            self.check(in_handler=True)

        return handle

    def checkpoints(self, every: float):
        env = self.ctx.env
        while env.now <= 16:
            self.check(in_handler=False, queue=True)
            yield env.timeout(every)

    def check(self, *, in_handler: bool, queue: bool = False) -> None:
        self.checks += 1
        net, acc = self.net, self.net.accounting()
        assert acc["sent"] == self.sends_made
        assert acc["sent"] == acc["delivered"] + acc["dropped"] + acc["in_flight"]
        assert acc["duplicated"] == acc["duplicates_delivered"] + acc["duplicates_dropped"] + acc["duplicates_in_flight"]
        assert acc["in_flight"] >= 0 and acc["duplicates_in_flight"] >= 0
        assert acc["dropped"] == sum(acc[f"dropped_{r}"] for r in DROP_REASONS)
        assert acc["duplicated"] <= acc["sent"]
        # the handlers have seen exactly what the network counts as delivered
        assert sum(1 for e in self.log if not e[4]) == net.delivered
        assert sum(1 for e in self.log if e[4]) == net.duplicates_delivered
        if queue:
            assert pending_messages(self.ctx.env) == (acc["in_flight"], acc["duplicates_in_flight"])


# --- conservation ------------------------------------------------------------------------------
@HYPO
@given(scenarios())
def test_conservation_at_every_checkpoint_and_at_the_end(sc: Scenario) -> None:
    run = Run(sc)
    net, acc = run.net, run.net.accounting()
    assert run.checks >= 60
    assert acc["sent"] == len(sc.sends)
    assert acc["in_flight"] == 0 and acc["duplicates_in_flight"] == 0
    assert acc["sent"] == acc["delivered"] + acc["dropped"]
    assert acc["duplicated"] == acc["duplicates_delivered"] + acc["duplicates_dropped"]
    assert len(run.log) == net.delivered + net.duplicates_delivered
    assert pending_messages(run.ctx.env) == (0, 0)
    assert acc["bytes_sent"] == sum(10 + i for i in range(len(sc.sends)))
    # every message reaches its handler at most once, and a duplicate copy at most once
    keys = [(e[3], e[4]) for e in run.log]
    assert len(keys) == len(set(keys))
    # drops only for reasons the scenario made possible
    if not sc.partitions:
        assert net.dropped["partition"] == 0 and net.duplicates_dropped["partition"] == 0
    if not sc.never_attached and not any(not attach for _, _, attach in sc.topology_changes):
        assert net.dropped["unreachable"] == 0 and net.duplicates_dropped["unreachable"] == 0
    specs = [sc.default] + [s for *_, s, _ in sc.links]
    if all(s.loss == 0 for s in specs):
        assert net.dropped["loss"] == 0 and net.duplicates_dropped["loss"] == 0
    if all(s.duplication == 0 for s in specs):
        assert net.duplicated == 0
    if all(s.loss == 1 for s in specs):
        assert net.delivered == 0 and net.duplicates_delivered == 0


@settings(HYPO, max_examples=60)
@given(scenarios(lossless=True))
def test_lossless_network_delivers_everything(sc: Scenario) -> None:
    run = Run(sc, checkpoint_every=None)
    net = run.net
    assert net.delivered == net.sent == len(sc.sends)
    assert net.duplicated == 0 and sum(net.dropped.values()) == 0
    assert sorted(e[5] for e in run.log) == list(range(len(sc.sends)))
    for t, src, dst, _id, _dup, i in run.log:
        assert (src, dst) == sc.sends[i][1:]
        assert t >= sc.sends[i][0]


@HYPO
@given(scenarios())
def test_same_seed_same_delivery_log(sc: Scenario) -> None:
    one, two = Run(sc, checkpoint_every=None), Run(sc, checkpoint_every=None)
    assert one.log == two.log
    assert one.net.accounting() == two.net.accounting()


def test_different_seeds_give_different_logs() -> None:
    sends = [(i * 0.05, "a", "b") for i in range(100)]
    spec = LinkSpec(latency=Exponential(10), loss=0.2)
    logs = [Run(Scenario(seed, spec, [], sends, [], frozenset(), []), checkpoint_every=None).log for seed in (1, 2)]
    assert logs[0] != logs[1]


# --- partitions --------------------------------------------------------------------------------
GRID_LATENCY = 0.5


@settings(HYPO, max_examples=80)
@given(
    side=node_sets, other=st.one_of(st.none(), node_sets), start=st.integers(0, 8),
    duration=st.one_of(st.none(), st.integers(1, 4)),
    sends=sized_lists(st.tuples(st.integers(0, 48), st.sampled_from(NODES), st.sampled_from(NODES)), 50),
)
def test_partition_drops_exactly_the_crossing_messages_during_the_cut(side, other, start, duration, sends) -> None:
    # times are on a grid (k/4 + 1/8, latency 1/2) that never hits a partition boundary exactly
    heal = None if duration is None else start + duration
    ctx = Context(0)
    net = Network(ctx, LinkSpec(latency=Constant(GRID_LATENCY)))
    got = []
    for n in NODES:
        net.attach(n, lambda m: got.append(m.payload))
    net.partition(side, other, start=start, heal=heal)
    for i, (k, src, dst) in enumerate(sends):
        at(ctx.env, k / 4 + 1 / 8, lambda s=src, d=dst, i=i: net.send(s, d, i))
    ctx.run()

    def crossing(a: str, b: str) -> bool:
        if (a in side) == (b in side):
            return False
        return other is None or (b in other if a in side else a in other)

    def cut_at(t: float) -> bool:
        return start <= t and (heal is None or t < heal)

    expected = []
    for i, (k, src, dst) in enumerate(sends):
        t = k / 4 + 1 / 8
        if not (crossing(src, dst) and (cut_at(t) or cut_at(t + GRID_LATENCY))):
            expected.append(i)
    assert sorted(got) == expected
    assert net.dropped["partition"] == len(sends) - len(expected)
    assert net.partitioned("a", "a") is False


def test_partition_hand_checked() -> None:
    ctx = Context(0)
    net = Network(ctx, LinkSpec(latency=Constant(0.1)))
    got = []
    for n in NODES:
        net.attach(n, lambda m: got.append((m.payload, round(ctx.now, 9))))
    net.partition({"a"}, start=2.0, heal=5.0)
    plan = [(1.0, "a", "b", "before"), (1.95, "a", "b", "in flight at start"), (2.5, "a", "b", "during"),
            (3.0, "b", "a", "during, other way"), (3.0, "c", "d", "not crossing"), (4.95, "a", "c", "sent during"),
            (5.5, "a", "b", "after heal")]
    for t, src, dst, label in plan:
        at(ctx.env, t, lambda s=src, d=dst, p=label: net.send(s, d, p))
    seen = []
    at(ctx.env, 3.0, lambda: seen.append((net.partitioned("a", "b"), net.partitioned("b", "a"),
                                          net.partitioned("b", "c"))))
    at(ctx.env, 6.0, lambda: seen.append((net.partitioned("a", "b"),)))
    ctx.run()
    assert got == [("before", 1.1), ("not crossing", 3.1), ("after heal", 5.6)]
    assert net.dropped["partition"] == 4
    assert seen == [(True, True, False), (False,)]


def test_message_sent_exactly_at_heal_is_delivered() -> None:
    ctx = Context(0)
    net = Network(ctx, LinkSpec(latency=Constant(0.5)))
    got = []
    net.attach("b", lambda m: got.append(m.payload))
    net.partition({"a"}, start=1.0, heal=2.0)
    at(ctx.env, 2.0, lambda: net.send("a", "b", "at heal"))
    ctx.run()
    assert got == ["at heal"]


def test_partition_between_two_groups_only() -> None:
    ctx = Context(0)
    net = Network(ctx)
    got = []
    for n in NODES:
        net.attach(n, lambda m: got.append(m.payload))
    net.partition({"a", "b"}, {"c"}, start=0.0, heal=None)
    pairs = [(x, y) for x in NODES for y in NODES if x != y]
    at(ctx.env, 1.0, lambda: [net.send(x, y, (x, y)) for x, y in pairs])
    ctx.run()
    cut = {("a", "c"), ("c", "a"), ("b", "c"), ("c", "b")}
    assert sorted(got) == sorted(p for p in pairs if p not in cut)
    assert net.dropped["partition"] == len(cut)


def test_partition_validation() -> None:
    ctx = Context(0)
    net = Network(ctx)
    ctx.run(until=5)
    with pytest.raises(ParameterError) as err:
        net.partition({"a"}, start=4.0, heal=6.0)
    assert err.value.parameter == "partition.start"
    with pytest.raises(ParameterError) as err:
        net.partition({"a"}, start=7.0, heal=6.0)
    assert err.value.parameter == "partition.heal"


# --- ordering --------------------------------------------------------------------------------
@settings(HYPO, max_examples=60)
@given(
    latency=st.one_of(st.builds(Exponential, st.floats(0.5, 20)),
                      st.builds(lambda lo, w: Uniform(lo, lo + w), st.floats(0, 1), st.floats(0.1, 2))),
    loss=st.floats(0, 0.5),
    gaps=sized_lists(st.floats(0, 0.5), 60, min_size=2),
    seed=st.integers(0, 2**32 - 1),
    on_default=st.booleans(),
)
def test_fifo_links_never_reorder(latency, loss, gaps, seed, on_default) -> None:
    spec = LinkSpec(latency=latency, loss=loss, fifo=True)
    ctx = Context(seed)
    net = Network(ctx, spec if on_default else None)
    if not on_default:
        net.link("a", "b", spec)
    got = []
    net.attach("b", lambda m: got.append((m.payload, ctx.now)))
    net.attach("a", lambda m: got.append((m.payload, ctx.now)))
    t = 0.0
    for i, gap in enumerate(gaps):
        t += gap
        at(ctx.env, t, lambda i=i: (net.send("a", "b", i), net.send("b", "a", -i - 1)))
    ctx.run()
    # in id order, arrival times never go back
    for direction in ([(p, now) for p, now in got if p >= 0], [(-p - 1, now) for p, now in got if p < 0]):
        by_id = [now for _, now in sorted(direction)]
        assert all(later >= earlier for earlier, later in zip(by_id, by_id[1:]))
        assert [now for _, now in direction] == sorted(now for _, now in direction)


def test_fifo_exact_order_despite_rounding() -> None:
    ctx = Context(0)
    net = Network(ctx)
    net.link("a", "b", LinkSpec(latency=Exponential(0.5), fifo=True))
    got = []
    net.attach("b", lambda m: got.append(m.payload))
    net.attach("a", lambda m: None)
    for i, t in enumerate([0.0, 0.0, 0.0, 0.0, 0.5, 0.8145288472110386]):
        at(ctx.env, t, lambda i=i: (net.send("a", "b", i), net.send("b", "a", None)))
    ctx.run()
    assert got == [0, 1, 2, 3, 4, 5]


def _order_on(spec: LinkSpec, n: int = 200, gap: float = 0.01, seed: int = 3) -> tuple[list[int], list[float]]:
    ctx = Context(seed)
    net = Network(ctx)
    net.link("a", "b", spec)
    order, delays = [], []
    net.attach("b", lambda m: (order.append(m.payload), delays.append(ctx.now - m.sent_at)))
    for i in range(n):
        at(ctx.env, i * gap, lambda i=i: net.send("a", "b", i))
    ctx.run()
    return order, delays


def test_non_fifo_random_latency_does_reorder() -> None:
    order, _ = _order_on(LinkSpec(latency=Exponential(10)))
    assert sorted(order) == list(range(200)) and order != sorted(order)


def test_fifo_same_link_in_order_with_same_latency_stream() -> None:
    order, delays = _order_on(LinkSpec(latency=Exponential(10), fifo=True))
    assert order == list(range(200))
    # FIFO only ever delays: every delay is at least the drawn latency, so the mean grows
    _, raw = _order_on(LinkSpec(latency=Exponential(10)))
    assert sum(delays) >= sum(raw)


@pytest.mark.parametrize("fifo", [True, False])
def test_forced_reorder_reorders(fifo: bool) -> None:
    order, delays = _order_on(LinkSpec(latency=Constant(0.1), reorder=0.5, reorder_delay=1.0, fifo=fifo),
                              n=100, gap=0.05)
    assert sorted(order) == list(range(100))
    assert order != sorted(order)
    held = [d for d in delays if d > 0.5]
    assert all(d == pytest.approx(1.1) for d in held)
    assert all(d == pytest.approx(0.1) for d in delays if d <= 0.5)
    assert 20 <= len(held) <= 80  # binomial(100, 0.5): far beyond 5 sigma


def test_reorder_default_delay_is_twice_mean_latency() -> None:
    _, delays = _order_on(LinkSpec(latency=Constant(0.25), reorder=1.0), n=10)
    assert delays == [pytest.approx(0.75)] * 10


def test_constant_latency_non_fifo_keeps_order_and_exact_times() -> None:
    order, delays = _order_on(LinkSpec(latency=Constant(0.3)), n=50)
    assert order == list(range(50))
    assert delays == [pytest.approx(0.3)] * 50


# --- duplication, loss, reachability -------------------------------------------------------------
def test_duplication_one_delivers_two_copies() -> None:
    ctx = Context(0)
    net = Network(ctx, LinkSpec(latency=Constant(0.1), duplication=1.0))
    got = []
    net.attach("b", lambda m: got.append((m.id, m.duplicate, m.payload)))
    for i in range(5):
        net.send("a", "b", i)
    ctx.run()
    assert net.duplicated == 5 and net.duplicates_delivered == 5 and net.delivered == 5
    assert sorted(got) == sorted([(i + 1, d, i) for i in range(5) for d in (False, True)])


def test_loss_one_drops_everything_and_copies_too() -> None:
    ctx = Context(0)
    net = Network(ctx, LinkSpec(loss=1.0, duplication=1.0))
    net.attach("b", lambda m: pytest.fail("nothing should arrive"))
    for _ in range(7):
        net.send("a", "b")
    assert net.dropped["loss"] == 7 and net.duplicates_dropped["loss"] == 7
    assert net.in_flight == 0
    ctx.run()


def test_loss_rate_is_about_right() -> None:
    ctx = Context(0)
    net = Network(ctx, LinkSpec(loss=0.3))
    net.attach("b", lambda m: None)
    n = 20_000
    for _ in range(n):
        net.send("a", "b")
    ctx.run()
    p = net.dropped["loss"] / n
    assert abs(p - 0.3) <= 4 * math.sqrt(0.3 * 0.7 / n)


def test_detached_node_drops_as_unreachable_including_in_flight() -> None:
    ctx = Context(0)
    net = Network(ctx, LinkSpec(latency=Constant(1.0)))
    got = []
    net.attach("b", lambda m: got.append(m.payload))
    assert net.is_attached("b") and not net.is_attached("zzz")
    at(ctx.env, 0.0, lambda: net.send("a", "b", "in flight when detached"))
    at(ctx.env, 0.5, lambda: net.detach("b"))
    at(ctx.env, 0.75, lambda: net.send("a", "b", "sent while detached"))
    at(ctx.env, 2.0, lambda: net.attach("b", lambda m: got.append(m.payload)))
    at(ctx.env, 2.5, lambda: net.send("a", "b", "after reattach"))
    at(ctx.env, 3.0, lambda: net.send("a", "nobody", "never attached"))
    ctx.run()
    assert got == ["after reattach"]
    assert net.dropped["unreachable"] == 3
    net.detach("never-there")  # no error


def test_link_one_way_only_and_bytes() -> None:
    ctx = Context(0)
    net = Network(ctx, LinkSpec(latency=Constant(1.0)))
    net.link("a", "b", LinkSpec(latency=Constant(0.25)), both_ways=False)
    times = {}
    for n in ("a", "b"):
        net.attach(n, lambda m: times.__setitem__(m.payload, ctx.now))
    net.send("a", "b", "ab", size_bytes=100)
    net.send("b", "a", "ba", size_bytes=23)
    ctx.run()
    assert times == {"ab": 0.25, "ba": 1.0}
    assert net.bytes_sent == 123


def test_own_links_draw_from_their_own_streams() -> None:
    # traffic on another pair's own link must not change this link's random latencies
    def arrivals(extra: bool) -> list[float]:
        ctx = Context(9)
        net = Network(ctx)
        net.link("a", "b", LinkSpec(latency=Exponential(5), loss=0.2))
        net.link("c", "d", LinkSpec(latency=Exponential(5), loss=0.2))
        out = []
        net.attach("b", lambda m: out.append((m.payload, ctx.now)))
        net.attach("d", lambda m: None)
        for i in range(50):
            if extra:
                at(ctx.env, i * 0.1, lambda: net.send("c", "d"))
            at(ctx.env, i * 0.1 + 0.05, lambda i=i: net.send("a", "b", i))
        ctx.run()
        return out

    assert arrivals(False) == arrivals(True)


# --- LinkSpec validation -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"loss": -0.1}, "loss"),
        ({"loss": 1.5}, "loss"),
        ({"loss": math.nan}, "loss"),
        ({"loss": True}, "loss"),
        ({"duplication": 2}, "duplication"),
        ({"duplication": "0.5"}, "duplication"),
        ({"reorder": -1e-9}, "reorder"),
        ({"reorder": None}, "reorder"),
        ({"reorder_delay": -1.0}, "reorder_delay"),
        ({"reorder_delay": math.nan}, "reorder_delay"),
        ({"reorder_delay": "1"}, "reorder_delay"),
        ({"latency": 0.1}, "latency"),
        ({"latency": "exponential:2"}, "latency"),
    ],
)
def test_linkspec_validation(kwargs: dict, field: str) -> None:
    with pytest.raises(ParameterError) as err:
        LinkSpec(**kwargs)
    assert err.value.parameter == field


def test_linkspec_accepts_bounds() -> None:
    spec = LinkSpec(loss=0, duplication=1, reorder=1.0, reorder_delay=0)
    assert (spec.loss, spec.duplication, spec.reorder) == (0, 1, 1.0)
    assert spec.latency == Constant(0.0)
