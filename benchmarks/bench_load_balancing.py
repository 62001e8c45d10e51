"""``load-balancing`` over 20 nodes, every policy: time, CPU and peak memory next to a bare simpy loop.

For each size a fresh interpreter (``--child``) runs ``sim.run("load-balancing", ...)`` as the
command line does (interpreter, imports, the eight policies and the balls-into-bins check), then,
in the same process, a bare simpy loop that steps through as many events as one policy's
calendar holds (an open, a drop and a reconnect per client). Printed per size: wall and CPU
seconds from the interpreter's start, peak RSS, calendar events per client (3 per policy: the
work) and the ratio of one policy's share of the CPU seconds to the bare loop's (the cost per
event; the scenario replays its calendar in one numpy batch, so it may be well below 1).
Targets: 100,000 clients in 10 s; 1,000,000 clients in 60 s and 1 GB. The machines are shared and
noisy (about +-25 %): compare ratios measured in one run, not times across runs.

    python benchmarks/bench_load_balancing.py [--clients 10000 100000 1000000] [--nodes 20] [--tree DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

from _harness import child_env, measure, verdict

TARGETS = {100_000: (10.0, None), 1_000_000: (60.0, 1024.0)}
"""clients -> (wall seconds, peak MiB); other sizes are measured without a target."""


def bare_simpy(events: int) -> tuple[float, float]:
    """Wall and CPU seconds for simpy to step through ``events`` timeouts in one process."""
    import simpy

    env = simpy.Environment()

    def loop(env):
        for _ in range(events):
            yield env.timeout(1e-6)

    env.process(loop(env))
    wall, cpu = time.perf_counter(), time.process_time()
    env.run()
    return time.perf_counter() - wall, time.process_time() - cpu


def child(clients: int, nodes: int, spawned_at: float) -> None:
    import sim

    result = sim.run("load-balancing", seed=1, clients=clients, nodes=nodes, force=True)
    out = {"wall_s": time.time() - spawned_at, "cpu_s": time.process_time(),
           "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "policies": int(result.summary["policy"].nunique())}
    del result
    out["bare_wall_s"], out["bare_cpu_s"] = bare_simpy(3 * clients)
    print(json.dumps(out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--tree", help="time this checkout instead of the installed one (PYTHONPATH)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--spawned-at", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child, args.nodes, args.spawned_at)
        return 0
    env, cwd = child_env(args.tree)
    ok = True
    for clients in args.clients:
        m = measure(__file__, ["--child", str(clients), "--nodes", str(args.nodes)], env, cwd)
        met, note = verdict(m, *TARGETS.get(clients, (None, None)))
        ok &= met
        events = 3 * clients
        per_policy = m["cpu_s"] / m["policies"]
        print(f"load-balancing, {clients:,} clients over {args.nodes} nodes, {m['policies']} policies, seed 1")
        print(f"  whole run          {m['wall_s']:7.2f} s wall, {m['cpu_s']:7.2f} CPU s, peak {m['peak_mib']:6.0f} MiB"
              + note)
        print(f"  work               {events:,} calendar events per policy = {3 * m['policies']} per client in all")
        print(f"  bare simpy loop    {m['bare_cpu_s']:7.2f} CPU s for {events:,} events (one policy's calendar), "
              f"same process")
        print(f"  ratio              {per_policy / m['bare_cpu_s']:7.2f} x (CPU s of the whole run per policy "
              f"over the bare loop's)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
