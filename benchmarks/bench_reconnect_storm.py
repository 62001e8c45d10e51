"""``reconnect-storm`` at 100,000 clients: wall time, memory per client, events per second.

1. The whole ``python -m sim run reconnect-storm`` process, as an instructor runs it: wall time
   and peak memory (ru_maxrss of the child) minus the same interpreter's baseline after the
   same imports. Targets: <= 12 s wall and <= 2.5 KB per client.
2. In this process: the scenario's simulated events per second next to a bare simpy loop with
   the same number of live processes (each doing ``yield env.timeout(...)``) and the same
   number of events. Aim: at least half the bare loop's rate. Events are counted from simpy's
   event-id counter (an internal of simpy 4, read once at the end).

    python benchmarks/bench_reconnect_storm.py [--clients 100000] [--strategy full_jitter]
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import time

import simpy

WALL_TARGET_S = 12.0
MEMORY_TARGET_B = 2.5 * 1024


def child(code: list[str]) -> tuple[float, int]:
    """Wall time and peak RSS (bytes) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(code, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(after, before) * 1024  # ru_maxrss is the largest child so far, in KiB


def events_of(env: simpy.Environment) -> int:
    return next(env._eid)  # every scheduled event took one id


def bare_loop(processes: int, events: int) -> tuple[float, int]:
    env = simpy.Environment()
    rnd = random.Random(1)
    per_process = max(1, events // processes)

    def proc(env):
        for _ in range(per_process):
            yield env.timeout(rnd.random())

    for _ in range(processes):
        env.process(proc(env))
    started = time.perf_counter()
    env.run()
    return time.perf_counter() - started, events_of(env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--strategy", default="full_jitter")
    args = parser.parse_args(argv)
    n = args.clients
    py = sys.executable

    baseline_wall, baseline_rss = child([py, "-c", "import sim, sim.scenarios, pandas, numpy, scipy.stats"])
    wall, rss = child([py, "-m", "sim", "run", "reconnect-storm", "--set", f"clients={n}",
                       f"strategy={args.strategy}", "--seed", "1"])
    per_client = (rss - baseline_rss) / n

    from sim.scenarios.q7_resilience import reconnect_storm as storm

    params = storm.ReconnectStormParams(clients=n, strategy=args.strategy)
    counted = {}
    original = storm.Context

    class CountingContext(original):  # remember the environment, and time its run apart from the set-up
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            counted["env"] = env = self.env
            run = env.run

            def timed_run(*ra, **rkw):
                started = time.perf_counter()
                try:
                    return run(*ra, **rkw)
                finally:
                    counted["run_s"] = time.perf_counter() - started

            env.run = timed_run

    storm.Context = CountingContext
    try:
        started = time.perf_counter()
        row, _, _ = storm.simulate(params, 1, args.strategy)
        sim_wall = time.perf_counter() - started
    finally:
        storm.Context = original
    sim_events = events_of(counted["env"])
    run_s = counted["run_s"]
    bare_wall, bare_events = bare_loop(n, sim_events)
    sim_rate, bare_rate = sim_events / run_s, bare_events / bare_wall

    print(f"reconnect-storm, {n:,} clients, strategy {args.strategy}, seed 1")
    print(f"  whole CLI process   {wall:6.2f} s wall (target <= {WALL_TARGET_S:g} s): "
          f"{'ok' if wall <= WALL_TARGET_S else 'OVER'}; interpreter + imports alone {baseline_wall:.2f} s")
    print(f"  memory              {per_client:6.0f} B per client over the {baseline_rss / 2**20:.0f} MiB baseline "
          f"(target <= {MEMORY_TARGET_B:.0f} B): {'ok' if per_client <= MEMORY_TARGET_B else 'OVER'}")
    print(f"  scenario            {sim_events:,} events in {run_s:.2f} s of env.run (set-up {sim_wall - run_s:.2f} s) "
          f"= {sim_rate:,.0f} events/s; {row['attempts']:,} attempts, {row['reconnected']:,}/{row['affected']:,} reconnected")
    print(f"  bare simpy loop     {bare_events:,} events, {n:,} live processes, {bare_wall:.2f} s of env.run "
          f"= {bare_rate:,.0f} events/s")
    print(f"  ratio               {sim_rate / bare_rate:6.2f} (aim >= 0.5)")
    return 0 if wall <= WALL_TARGET_S and per_client <= MEMORY_TARGET_B else 1


if __name__ == "__main__":
    sys.exit(main())
