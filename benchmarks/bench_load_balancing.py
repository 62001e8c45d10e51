"""``load-balancing`` over 20 nodes, every policy: wall time and peak memory of the whole CLI run.

The whole ``python -m sim run load-balancing`` process, as an instructor runs it (interpreter,
imports, the eight policies and the balls-into-bins check), with its peak resident memory, next
to a bare simpy loop in this process that steps through as many events as the calendar holds
(an open, a drop and a reconnect per client) and the ratio of the two. Targets: 100,000
clients in 10 s; 1,000,000 clients in 60 s and 1 GB. The machines are shared and noisy (about
±25 %): CPU seconds are printed next to wall time; compare against the interpreter-and-imports
baseline printed next to it, not across machines.

    python benchmarks/bench_load_balancing.py [--clients 100000 1000000] [--nodes 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import simpy

TARGETS = {100_000: (10.0, None), 1_000_000: (60.0, 1024.0)}
"""clients -> (wall seconds, peak MiB); other sizes are measured without a target."""


def child(code: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MiB) of one child process."""
    started = time.perf_counter()
    pid = subprocess.Popen(code, stdout=subprocess.DEVNULL).pid
    _, status, usage = os.wait4(pid, 0)
    took = time.perf_counter() - started
    if status:
        raise SystemExit(f"{' '.join(code)} failed ({status})")
    return took, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def bare_simpy(events: int) -> float:
    """Seconds for simpy to step through ``events`` timeouts in one process (the floor of an event loop)."""
    env = simpy.Environment()

    def loop(env):
        for _ in range(events):
            yield env.timeout(1e-6)

    env.process(loop(env))
    started = time.perf_counter()
    env.run()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--nodes", type=int, default=20)
    args = parser.parse_args(argv)
    py = sys.executable
    base_wall, base_cpu, base_mib = child([py, "-c", "import sim.scenarios.q6_deployment.load_balancing"])
    print(f"interpreter + imports alone: {base_wall:.2f} s wall, {base_cpu:.2f} CPU s, {base_mib:.0f} MiB")
    ok = True
    for clients in args.clients:
        took, cpu, mib = child([py, "-m", "sim", "run", "load-balancing", "--set", f"clients={clients}",
                                f"nodes={args.nodes}", "--seed", "1"])
        events = 3 * clients
        bare = bare_simpy(events)
        wall_target, mib_target = TARGETS.get(clients, (None, None))
        verdict = []
        if wall_target is not None:
            verdict.append(f"wall target <= {wall_target:g} s: {'ok' if took <= wall_target else 'OVER'}")
            ok &= took <= wall_target
        if mib_target is not None:
            verdict.append(f"memory target <= {mib_target:g} MiB: {'ok' if mib <= mib_target else 'OVER'}")
            ok &= mib <= mib_target
        print(f"load-balancing, {clients:,} clients over {args.nodes} nodes, all 8 policies, seed 1")
        print(f"  whole CLI process  {took:6.2f} s wall, {cpu:6.2f} CPU s, peak {mib:5.0f} MiB"
              + (f" ({'; '.join(verdict)})" if verdict else ""))
        print(f"  bare simpy loop    {bare:6.2f} s wall for {events:,} events (one policy's calendar) in this process; "
              f"ratio {cpu / bare:.2f} x (CPU s of the whole run, 8 policies, / one bare loop)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
