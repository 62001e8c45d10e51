"""``reconnect-storm``: time, CPU, peak memory and events per client, next to a bare simpy loop.

For each size a fresh interpreter (``--child``) runs ``sim.run("reconnect-storm", ...)`` as the
command line does (imports included), then, in the same process, a bare simpy loop of the same
size: as many live processes as the storm simulates clients, each doing ``yield
env.timeout(...)``, for as many events as the storm scheduled. Printed per size: wall and CPU
seconds from the interpreter's start, peak RSS, the storm's events (simpy's event-id counter, an
internal of simpy 4 read once at the end) and events per client (growth in *work*: attempts grow
faster than clients under a fixed admission rate), the storm's events per CPU second of
``env.run`` and the bare loop's, and their ratio (growth in *cost per event*). The machines are
shared and noisy (about +-25 %): compare ratios measured in one run, not times across runs.

Targets (issue 17): 100,000 clients <= 6 s wall; 1,000,000 clients <= 60 s wall and <= 1 GB.
``--tree DIR`` times another checkout (e.g. ``git worktree add /tmp/old COMMIT``) for a
before/after table. ``--instructions`` counts instead the instructions the storm's process executes
(valgrind, about 50x slower; no bare loop): the count does not drift with the machine's load (it
varies by about 1 % between runs, from hash randomisation, where times vary by 25 %), so a change of
a few per cent is measured, not guessed. 100,000 clients take about 2 minutes; at 10,000, imports
are most of the 3.5 G instructions.

    python benchmarks/bench_reconnect_storm.py [--clients 10000 100000 1000000] [--strategy full_jitter]
    python benchmarks/bench_reconnect_storm.py --instructions --clients 100000 [--tree /tmp/old]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time

from _harness import child_env, count_instructions, measure, verdict

TARGETS = {100_000: (6.0, None), 1_000_000: (60.0, 1024.0)}
"""clients -> (wall seconds, peak MiB); other sizes are measured without a target."""


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def bare_loop(processes: int, events: int) -> dict:
    """A bare simpy loop: ``processes`` live processes sharing ``events`` timeouts."""
    import simpy

    env = simpy.Environment()
    rnd = random.Random(1)
    per_process = max(1, events // max(1, processes))
    before = _rss_mib()

    def proc(env):
        for _ in range(per_process):
            yield env.timeout(rnd.random())

    for _ in range(processes):
        env.process(proc(env))
    held = _rss_mib() - before
    wall, cpu = time.perf_counter(), time.process_time()
    env.run()
    return {"bare_events": next(env._eid), "bare_wall_s": time.perf_counter() - wall,
            "bare_cpu_s": time.process_time() - cpu, "bare_mib": held}


def child(clients: int, strategy: str, spawned_at: float, bare: bool = True) -> None:
    """Run the storm as ``python -m sim run`` would, then (if ``bare``) the bare loop; print one JSON line."""
    import sim
    from sim.scenarios.q7_resilience import reconnect_storm as storm

    counted = {"run_wall_s": 0.0, "run_cpu_s": 0.0}
    original = storm.Context

    class CountingContext(original):  # count each storm's events and time its env.run apart from the set-up
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            env = self.env
            run = env.run

            def timed_run(*ra, **rkw):
                wall, cpu = time.perf_counter(), time.process_time()
                try:
                    return run(*ra, **rkw)
                finally:
                    counted["run_wall_s"] += time.perf_counter() - wall
                    counted["run_cpu_s"] += time.process_time() - cpu

            env.run = timed_run
            counted.setdefault("envs", []).append(env)

    storm.Context = CountingContext
    result = sim.run("reconnect-storm", seed=1, clients=clients, strategy=strategy, force=True)
    out = {"wall_s": time.time() - spawned_at, "cpu_s": time.process_time(),
           "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    out["events"] = sum(next(env._eid) for env in counted.pop("envs"))
    out.update(counted)
    row = result.summary.iloc[0]
    p = result.params
    # clients the storm simulates as objects: all of them with heartbeats, else the crashed server's
    out["simulated_clients"] = int(clients if p.crash == "host" else row["affected"])
    out.update(attempts=int(row["attempts"]), reconnected=int(row["reconnected"]), affected=int(row["affected"]))
    del result, counted
    import gc

    gc.collect()
    if bare:
        out.update(bare_loop(out["simulated_clients"], out["events"]))
    print(json.dumps(out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--strategy", default="full_jitter")
    parser.add_argument("--tree", help="time this checkout instead of the installed one (PYTHONPATH)")
    parser.add_argument("--instructions", action="store_true",
                        help="count the storm process's instructions with valgrind instead of timing it")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--no-bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--spawned-at", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child, args.strategy, args.spawned_at, bare=not args.no_bare)
        return 0
    env, cwd = child_env(args.tree)
    found = subprocess.run([sys.executable, "-c", "import sim; print(sim.__file__)"], env=env, cwd=cwd, check=True,
                           capture_output=True, text=True).stdout.strip()
    print(f"{'counting' if args.instructions else 'timing'} {found}; reconnect-storm, strategy {args.strategy}, seed 1")
    if args.instructions:
        for n in args.clients:
            ir = count_instructions(__file__, ["--child", str(n), "--strategy", args.strategy, "--no-bare"], env, cwd)
            print(f"{n:,} clients: {ir / 1e9:.3f} G instructions (whole process, imports included)")
        return 0
    ok = True
    for n in args.clients:
        m = measure(__file__, ["--child", str(n), "--strategy", args.strategy], env, cwd)
        rate = m["events"] / m["run_cpu_s"] if m["run_cpu_s"] else float("nan")
        bare_rate = m["bare_events"] / m["bare_cpu_s"] if m["bare_cpu_s"] else float("nan")
        met, note = verdict(m, *TARGETS.get(n, (None, None)))
        ok &= met
        print(f"{n:,} clients ({m['affected']:,} lose their connection; {m['attempts']:,} attempts, "
              f"{m['reconnected']:,} back)")
        print(f"  storm, whole run    {m['wall_s']:7.2f} s wall, {m['cpu_s']:7.2f} CPU s, peak {m['peak_mib']:6.0f} MiB"
              + note)
        print(f"  storm, env.run      {m['run_cpu_s']:7.2f} CPU s for {m['events']:,} events "
              f"= {m['events'] / n:.2f} per client, {rate:,.0f} events per CPU s")
        print(f"  bare simpy loop     {m['bare_cpu_s']:7.2f} CPU s for {m['bare_events']:,} events, "
              f"{m['simulated_clients']:,} live processes ({m['bare_mib']:.0f} MiB) = {bare_rate:,.0f} events per CPU s")
        print(f"  ratio               {rate / bare_rate:7.2f} (the storm's event rate / the bare loop's)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
