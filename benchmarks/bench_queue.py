"""Speed of the ``queue`` scenario against a bare hand-written simpy M/M/1 of the same size.

Both run in this process, one after the other, ``--repeat`` times each (best time kept, since
these machines are shared and noisy); the figure that matters is the ratio of rates measured in
one run. Target: the scenario reaches at least 60 % of the bare loop's customers per second.

    python benchmarks/bench_queue.py [--customers 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import simpy

import sim
from sim.scenarios.queue import QueueParams, simulate_once

TARGET = 0.60


def bare_mm1(customers: int, arrival_rate: float, service_rate: float, seed: int) -> float:
    """The textbook simpy M/M/1: a source process, one process per customer, a Resource."""
    rnd = random.Random(seed)
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=1)
    waits = []

    def customer(env):
        arrived = env.now
        with server.request() as req:
            yield req
            waits.append(env.now - arrived)
            yield env.timeout(rnd.expovariate(service_rate))

    def source(env):
        for _ in range(customers):
            yield env.timeout(rnd.expovariate(arrival_rate))
            env.process(customer(env))

    env.process(source(env))
    env.run()
    return sum(waits) / len(waits)


def best_of(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    n = args.customers
    params = QueueParams(arrival_rate=0.8, service_rate=1.0, customers=n, warmup=0.0, replications=1)

    bare = best_of(args.repeat, lambda: bare_mm1(n, 0.8, 1.0, seed=1))
    scenario = best_of(args.repeat, lambda: simulate_once(params, 1, 0))
    # the whole registered scenario, with its summary and confidence intervals, once
    full = best_of(1, lambda: sim.run("queue", params, seed=1))

    rate_bare, rate_scenario, rate_full = n / bare, n / scenario, n / full
    ratio = rate_scenario / rate_bare
    print(f"M/M/1, rho = 0.8, {n:,} customers, best of {args.repeat}")
    print(f"  bare simpy loop        {bare:7.3f} s  {rate_bare:10,.0f} customers/s")
    print(f"  queue scenario (core)  {scenario:7.3f} s  {rate_scenario:10,.0f} customers/s")
    print(f"  sim.run('queue')       {full:7.3f} s  {rate_full:10,.0f} customers/s (with summary)")
    print(f"  ratio scenario / bare  {ratio:7.2f}   (target >= {TARGET:.2f}): {'ok' if ratio >= TARGET else 'BELOW TARGET'}")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
