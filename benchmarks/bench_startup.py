"""Start-up time of the command line: ``list``, ``describe``, ``--help`` and a tiny ``run``.

Each command runs ``--repeat`` times in a fresh interpreter; the best wall time is kept (shared,
noisy machines). ``--tree DIR`` times another checkout of the project (e.g. an older commit made
with ``git worktree add /tmp/old COMMIT``) through ``PYTHONPATH``, for a before/after table.
Target: list, describe and --help well under 0.5 s (the catalog cache warm, as after the first call);
``run X`` imports X's module only, not every scenario (the last line counts them); a line gives the
import time of ``list`` (``-X importtime``) and its costliest imports.

    python benchmarks/bench_startup.py [--repeat 5] [--tree DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

COMMANDS = (["list"], ["describe", "queue"], ["--help"],
            ["run", "queue", "--set", "customers=500", "replications=2"],
            ["run", "load-balancing", "--set", "clients=1000", "replications=1"])
MODULES = ("import sys, sim; sim.get('queue'); print(sum(1 for m in list(sys.modules) "
           "if m.startswith('sim.scenarios.') and not hasattr(sys.modules[m], '__path__')))")
"""How many scenario modules looking ``queue`` up imports (as ``run queue`` does; 1 is the goal: its own)."""
TARGET = 0.5


def best(argv: list[str], repeat: int, env: dict, cwd: str | None) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sim", *argv], env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tree", help="time this checkout instead of the installed one (PYTHONPATH)")
    args = parser.parse_args()
    env = dict(os.environ)
    cwd = None
    if args.tree:  # `python -m` looks in the working directory first: run from the tree itself
        cwd = os.path.abspath(args.tree)
        env["PYTHONPATH"] = cwd
    found = subprocess.run([sys.executable, "-c", "import sim; print(sim.__file__)"], env=env, cwd=cwd,
                           check=True, capture_output=True, text=True).stdout.strip()
    print(f"timing {found}")
    subprocess.run([sys.executable, "-m", "sim", "list"], env=env, cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL)  # warm: disk cache, and the catalog where there is one
    bare = min(_bare(env) for _ in range(args.repeat))
    print(f"python -c pass: {bare:.3f} s (the interpreter alone)")
    for argv in COMMANDS:
        seconds = best(argv, args.repeat, env, cwd)
        mark = "" if argv[0] == "run" else ("  ok" if seconds < TARGET else f"  ABOVE {TARGET} s")
        print(f"python -m sim {' '.join(argv):<48} {seconds:6.3f} s{mark}")
    total, top = import_time(env, cwd)
    print(f"import time of `python -m sim list` (-X importtime): {total:.3f} s; largest: "
          + ", ".join(f"{name} {seconds:.3f} s" for name, seconds in top))
    imported = subprocess.run([sys.executable, "-c", MODULES], env=env, cwd=cwd, capture_output=True,
                              text=True).stdout.strip()
    print(f"scenario modules imported by `run queue`: {imported or '?'} (goal: 1)")
    return 0


def import_time(env: dict, cwd: str | None, top: int = 3) -> tuple[float, list[tuple[str, float]]]:
    """Seconds ``python -m sim list`` spends importing (the sum of its top-level imports, by
    ``-X importtime``, best of three) and its ``top`` costliest top-level imports."""
    best: tuple[float, list[tuple[str, float]]] | None = None
    for _ in range(3):
        err = subprocess.run([sys.executable, "-X", "importtime", "-m", "sim", "list"], env=env, cwd=cwd, check=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True).stderr
        modules = []
        for line in err.splitlines():
            if not line.startswith("import time:") or "|" not in line or "cumulative" in line:
                continue
            _, cumulative, name = line.split("|")
            if not name.startswith(" ") or name.startswith("  "):
                continue  # nested: counted in its importer's cumulative time
            modules.append((name.strip(), int(cumulative) / 1e6))
        total = sum(seconds for _, seconds in modules)
        if best is None or total < best[0]:
            best = (total, sorted(modules, key=lambda m: -m[1])[:top])
    assert best is not None
    return best


def _bare(env: dict) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    return time.perf_counter() - started


if __name__ == "__main__":
    raise SystemExit(main())
