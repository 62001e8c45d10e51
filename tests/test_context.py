"""Context: named random streams derived from (seed, replication, name) only."""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy

from sim.core.context import Context
from sim.core.metrics import Metrics

N = 20_000


def draws(ctx: Context, name: str, n: int = 100) -> np.ndarray:
    return ctx.rng(name).random(n)


def test_same_seed_and_name_same_numbers() -> None:
    assert np.array_equal(draws(Context(7), "arrivals"), draws(Context(7), "arrivals"))


def test_rng_returns_the_same_stream_object() -> None:
    ctx = Context(7)
    g = ctx.rng("a")
    assert ctx.rng("a") is g
    first = g.random(5)
    # the second call continues the stream, it does not restart it
    assert not np.array_equal(ctx.rng("a").random(5), first)


def test_continuing_a_stream_gives_the_rest_of_the_same_sequence() -> None:
    one = Context(3)
    whole = one.rng("s").random(10)
    two = Context(3)
    parts = np.concatenate([two.rng("s").random(4), two.rng("s").random(6)])
    assert np.array_equal(whole, parts)


def test_different_names_give_different_streams() -> None:
    ctx = Context(7)
    a, b = draws(ctx, "arrivals", N), draws(ctx, "service", N)
    assert not np.array_equal(a, b)
    # independent uniforms: correlation ~ N(0, 1/n); 4 standard errors is a safe bound
    assert abs(np.corrcoef(a, b)[0, 1]) < 4 / math.sqrt(N)


def test_similar_names_are_distinct() -> None:
    ctx = Context(0)
    names = ["a", "b", "a ", "A", "server.s1.service", "server.s2.service", "network.link.a->b", "network.link.b->a"]
    firsts = {name: tuple(ctx.rng(name).random(3)) for name in names}
    assert len(set(firsts.values())) == len(names)


def test_order_of_asking_does_not_matter() -> None:
    one = Context(11)
    x1 = draws(one, "x")
    y1 = draws(one, "y")

    two = Context(11)
    draws(two, "extra")          # a stream created first that the other run never had
    y2 = draws(two, "y")         # and the named streams asked in the other order
    draws(two, "extra", 1000)    # consuming another stream does not disturb them
    x2 = draws(two, "x")
    assert np.array_equal(x1, x2)
    assert np.array_equal(y1, y2)


def test_different_seeds_differ() -> None:
    assert not np.array_equal(draws(Context(1), "s"), draws(Context(2), "s"))


def test_different_replications_differ_and_are_reproducible() -> None:
    r0, r1 = draws(Context(5, replication=0), "s"), draws(Context(5, replication=1), "s")
    assert not np.array_equal(r0, r1)
    assert np.array_equal(r1, draws(Context(5, replication=1), "s"))
    assert Context(5).replication == 0


def test_replication_streams_are_uncorrelated() -> None:
    a = Context(5, replication=0).rng("s").random(N)
    b = Context(5, replication=1).rng("s").random(N)
    assert abs(np.corrcoef(a, b)[0, 1]) < 4 / math.sqrt(N)


def test_seed_and_replication_are_not_interchangeable() -> None:
    # (seed=1, replication=0) and (seed=0, replication=1) must not be the same stream
    assert not np.array_equal(draws(Context(1, replication=0), "s"), draws(Context(0, replication=1), "s"))


def test_numpy_integer_seed_accepted() -> None:
    ctx = Context(np.int64(9))
    assert ctx.seed == 9 and type(ctx.seed) is int
    assert np.array_equal(draws(ctx, "s"), draws(Context(9), "s"))


def test_large_seed_accepted() -> None:
    big = 2**100 + 1
    assert not np.array_equal(draws(Context(big), "s"), draws(Context(1), "s"))


@pytest.mark.parametrize("seed", [-1, 1.5, 2.0, "3", None, True, False])
def test_bad_seed_rejected(seed) -> None:
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        Context(seed)  # type: ignore[arg-type]


def test_negative_replication_rejected_at_construction() -> None:
    with pytest.raises(ValueError):
        Context(1, replication=-1)


def test_context_has_env_and_metrics_and_runs() -> None:
    ctx = Context(0)
    assert isinstance(ctx.env, simpy.Environment)
    assert isinstance(ctx.metrics, Metrics) and ctx.metrics.env is ctx.env
    assert ctx.now == 0
    fired = []
    ctx.env.timeout(2.5).callbacks.append(lambda e: fired.append(ctx.now))
    ctx.run(until=1.0)
    assert ctx.now == 1.0 and fired == []
    ctx.run()
    assert fired == [2.5] and ctx.now == 2.5


def test_run_until_event() -> None:
    ctx = Context(0)
    ev = ctx.env.timeout(3.0)
    ctx.env.timeout(10.0)
    ctx.run(until=ev)
    assert ctx.now == 3.0


def test_separate_contexts_have_separate_clocks() -> None:
    a, b = Context(0), Context(0)
    a.env.timeout(5)
    a.run()
    assert a.now == 5 and b.now == 0
