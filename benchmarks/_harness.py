"""What the size-by-size benchmarks share: a fresh interpreter per size (optionally timing another
checkout through PYTHONPATH), its JSON measurement, and the verdict against a size's targets."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time


def child_env(tree: str | None) -> tuple[dict, str | None]:
    """Environment and working directory for the child: ``tree`` (a checkout) first on the path, if given."""
    env, cwd = dict(os.environ), None
    if tree:
        cwd = os.path.abspath(tree)
        env["PYTHONPATH"] = cwd
    return env, cwd


def measure(script: str, args: list[str], env: dict, cwd: str | None) -> dict:
    """Run ``script --child ... --spawned-at T`` in a fresh interpreter; its last stdout line is the JSON result."""
    spawned = time.time()
    done = subprocess.run([sys.executable, os.path.abspath(script), *args, "--spawned-at", repr(spawned)], env=env,
                          cwd=cwd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def verdict(m: dict, wall_target: float | None, mib_target: float | None) -> tuple[bool, str]:
    """Whether the run meets its wall and peak-memory targets, and a note saying so (empty without targets)."""
    ok, parts = True, []
    if wall_target is not None:
        parts.append(f"wall <= {wall_target:g} s: {'ok' if m['wall_s'] <= wall_target else 'OVER'}")
        ok &= m["wall_s"] <= wall_target
    if mib_target is not None:
        parts.append(f"peak <= {mib_target:g} MiB: {'ok' if m['peak_mib'] <= mib_target else 'OVER'}")
        ok &= m["peak_mib"] <= mib_target
    return ok, (f"  ({'; '.join(parts)})" if parts else "")


def count_instructions(script: str, args: list[str], env: dict, cwd: str | None) -> int:
    """Machine instructions the child executes, imports included (valgrind's cachegrind, about 50x
    slower than the run): unlike times, within about 1 % from one run to the next on a noisy shared
    machine, so a before/after of a small change (``--tree``) is measured, not guessed."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    done = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                           sys.executable, os.path.abspath(script), *args, "--spawned-at", repr(time.time())],
                          env=env, cwd=cwd, check=True, capture_output=True, text=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"valgrind printed no instruction count:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))
