"""Wall time of one sweep of short runs: serial, a local process pool of 2, a local Dask cluster of 2.

The same 200 runs (the ``queue`` scenario, 10 configurations x 20 seeds, each run a fraction of a
second) are computed three times into fresh directories, files written as a real sweep writes
them. Parallel efficiency = serial time / (workers x parallel time); target >= 85 % for the pool.
The Dask figure includes starting the LocalCluster (each worker imports the simulator once).
Machines here are shared: run it when they are quiet, or read the figures as lower bounds.

    python benchmarks/bench_sweep.py [--runs 200] [--customers 3000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import sim
from sim.sweeps import configurations, run_sweep

TARGET = 0.85


def cpu() -> float:
    """CPU seconds of this process and of every finished child (pool workers, Dask nannies and workers)."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def timed(configs, seeds, workers, out: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one sweep."""
    started, cpu_started = time.perf_counter(), cpu()
    outcome = run_sweep("queue", configs, seeds, workers=workers, out=out, progress=False)
    seconds = time.perf_counter() - started
    assert outcome.failures.empty and outcome.computed == len(configs) * len(seeds)
    return seconds, cpu() - cpu_started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200, help="runs in the sweep (a multiple of 10)")
    parser.add_argument("--customers", type=int, default=3000, help="customers per replication (run length)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    grid = {"arrival_rate": [round(0.1 * k, 1) for k in range(1, 10)] + [0.95]}
    configs = configurations("queue", grid, {"customers": args.customers, "replications": 2, "warmup": 50.0},
                             from_text=False)
    seeds = list(range(args.runs // len(configs)))
    sim.run("queue", customers=10)  # imports done before the clock starts, as in a real session
    with tempfile.TemporaryDirectory() as tmp:
        serial = timed(configs, seeds, 1, Path(tmp) / "serial")
        pool = timed(configs, seeds, args.workers, Path(tmp) / "pool")
        dask = timed(configs, seeds, f"dask:{args.workers}", Path(tmp) / "dask")
        same = all((Path(tmp) / d / "results.csv").read_bytes() == (Path(tmp) / "serial" / "results.csv").read_bytes()
                   for d in ("pool", "dask"))
    runs = len(configs) * len(seeds)
    print(f"{runs} runs of queue (customers={args.customers}, 2 replications each); {args.workers} workers; "
          f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'backend':<28}{'wall s':>8}{'runs/s':>9}{'efficiency':>12}{'CPU s':>8}{'CPU overhead':>14}")
    for name, (seconds, used) in (("serial (this process)", serial), (f"process pool, {args.workers}", pool),
                                  (f"Dask LocalCluster, {args.workers}", dask)):
        efficiency = serial[0] / (args.workers * seconds) if name[0] != "s" else 1.0
        print(f"{name:<28}{seconds:>8.2f}{runs / seconds:>9.1f}{efficiency:>11.0%}{used:>8.1f}"
              f"{used / serial[1] - 1:>+13.0%}")
    print(f"identical results.csv in all three: {same}")
    efficiency = serial[0] / (args.workers * pool[0])
    print(f"pool efficiency {efficiency:.0%} (target >= {TARGET:.0%}): {'ok' if efficiency >= TARGET else 'BELOW'}"
          " -- on a machine shared with other work the wall-time efficiency is bounded by the free cores; "
          "the CPU overhead column is what the pool itself costs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
