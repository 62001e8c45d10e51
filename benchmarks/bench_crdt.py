"""``crdt-convergence`` with pycrdt: 3 replicas × 10,000 edits through the simulated network.

1. The scenario as the CLI runs it (``model=pycrdt``, ``operations=10000``, every other parameter
   at its default: lossy, duplicating, reordering network, a 20 s partition, anti-entropy every
   second, the distinct-states series, the final identity check). Target: <= 2 s of wall time
   for the simulation (imports excluded).
2. pycrdt's own cost for the same edits without the simulator: three ``Doc``s; each recorded
   edit is made on its replica in one transaction, its update captured with ``observe`` and
   applied to the two others at once, in order. That is the floor the simulator adds to.
3. Where the simulated run's time goes: the time spent inside pycrdt's calls (the edits, the
   updates applied, the anti-entropy answers computed and applied, the reads of the contents the
   summary and the distinct-states series need) and the rest, the simulator's own (network,
   events, workload, ledger). The model does more pycrdt work than step 2 (anti-entropy, reads),
   so the ratio of step 1 to step 2 cannot reach 1 however fast the simulator is.

Each measurement is the best of ``--repeat`` runs (the machines are shared and noisy).

    python benchmarks/bench_crdt.py [--operations 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time

from pycrdt import Array, Doc, Map, Text, Transaction

from sim.components.crdt import replica as replica_module
from sim.scenarios.q4_crdt import CrdtConvergenceParams, simulate

TARGET_S = 2.0


def record_and_simulate(params: CrdtConvergenceParams) -> tuple[float, dict, list[tuple]]:
    """Wall time of one simulation, its summary row, and the local edits it made (replica, kind, args)."""
    edits: list[tuple] = []
    cls = replica_module.Replica
    originals = {name: getattr(cls, name) for name in ("insert", "delete", "set_setting", "append_comment")}

    def recorder(name):
        method = originals[name]

        def wrapped(self, *args):
            edits.append((self.name, name, args))
            return method(self, *args)

        return wrapped

    for name in originals:
        setattr(cls, name, recorder(name))
    try:
        started = time.perf_counter()
        row, _, _ = simulate(params, 1, "pycrdt")
        wall = time.perf_counter() - started
    finally:
        for name, method in originals.items():
            setattr(cls, name, method)
    return wall, row, edits


def bare_pycrdt(edits: list[tuple], replicas: int) -> tuple[float, int]:
    """Wall time for the same edits on ``replicas`` Docs exchanging updates directly; bytes of updates."""
    docs = [Doc(client_id=i + 1) for i in range(replicas)]
    parts = [(d.get("text", type=Text), d.get("settings", type=Map), d.get("comments", type=Array)) for d in docs]
    captured: list[bytes] = []
    for d in docs:
        d.observe(lambda event: captured.append(event.update))
    index = {f"replica-{i}": i for i in range(replicas)}
    total = 0
    started = time.perf_counter()
    for name, kind, args in edits:
        i = index[name]
        text, settings, comments = parts[i]
        if kind == "insert":
            text.insert(min(args[0], len(text)), args[1])
        elif kind == "delete":
            if not len(text):
                continue
            del text[min(args[0], len(text) - 1)]
        elif kind == "set_setting":
            settings[args[0]] = args[1]
        else:
            comments.append(args[0])
        update = captured[-1]
        total += len(update)
        for j, other in enumerate(docs):
            if j != i:
                other.apply_update(update)
        captured.clear()
    return time.perf_counter() - started, total


#: pycrdt's methods that call into yrs (each opens or reuses a transaction and commits it).
PYCRDT_CALLS = {
    Doc: ("get_state", "get_update", "apply_update"),
    Text: ("insert", "__delitem__", "__str__", "__len__"),
    Map: ("__setitem__", "__str__", "__len__"),
    Array: ("append", "__str__", "__len__"),
    Transaction: ("__exit__",),  # the commit of a transaction opened around several reads
}


def time_inside_pycrdt(params: CrdtConvergenceParams) -> tuple[float, float, int]:
    """``(wall, seconds inside pycrdt, calls)`` of one simulation, pycrdt's calls timed where they enter.

    A call made inside another (a transaction's commit inside ``insert``) counts once, in the
    outer one. The timing wrappers themselves (~0.3 us a call) fall on the simulator's side.
    """
    inside = [0.0, 0]
    depth = [0]
    clock = time.perf_counter

    def timed(method):
        def wrapped(*args, **kwargs):
            if depth[0]:
                return method(*args, **kwargs)
            depth[0] = 1
            started = clock()
            try:
                return method(*args, **kwargs)
            finally:
                inside[0] += clock() - started
                inside[1] += 1
                depth[0] = 0

        return wrapped

    originals = [(cls, name, cls.__dict__[name]) for cls, names in PYCRDT_CALLS.items() for name in names]
    for cls, name, method in originals:
        setattr(cls, name, timed(method))
    try:
        started = clock()
        simulate(params, 1, "pycrdt")
        wall = clock() - started
    finally:
        for cls, name, method in originals:
            setattr(cls, name, method)
    return wall, inside[0], inside[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--operations", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    params = CrdtConvergenceParams(model="pycrdt", operations=args.operations)

    sims = [record_and_simulate(params) for _ in range(args.repeat)]
    sim_wall = min(w for w, _, _ in sims)
    _, row, edits = sims[0]
    bares = [bare_pycrdt(edits, params.replicas) for _ in range(args.repeat)]
    bare_wall, bare_bytes = min(bares)

    print(f"crdt-convergence, model pycrdt, {params.replicas} replicas x {args.operations:,} edits, seed 1 "
          f"(best of {args.repeat})")
    print(f"  simulated      {sim_wall:6.2f} s wall (target <= {TARGET_S:g} s): "
          f"{'ok' if sim_wall <= TARGET_S else 'OVER'}; {row['simulated_s']:.0f} s of simulated time, "
          f"{row['messages_sent']:,} messages ({row['messages_lost']} lost, {row['messages_cut_by_partition']} cut "
          f"by the partition), converged={row['converged']}, lost characters={row['lost_characters']}")
    print(f"  bare pycrdt    {bare_wall:6.2f} s wall for the same {len(edits):,} edits, each applied to the "
          f"{params.replicas - 1} other Docs at once ({bare_bytes / len(edits):.1f} B per update)")
    print(f"  ratio          {sim_wall / bare_wall:6.2f} x bare pycrdt "
          f"({(sim_wall - bare_wall) / len(edits) * 1e6:.0f} us more per edit)")
    wall, inside, calls = min(time_inside_pycrdt(params) for _ in range(args.repeat))
    print(f"  inside pycrdt  {inside:6.2f} s of that run's {wall:.2f} s ({inside / wall:.0%}, {calls:,} calls: edits, "
          f"updates and anti-entropy answers applied, contents read) = {inside / bare_wall:.2f} x bare pycrdt")
    print(f"  simulator      {wall - inside:6.2f} s of its own ({(wall - inside) / len(edits) * 1e6:.0f} us per edit: "
          f"network, events, workload, ledger): the run is {wall / inside:.2f} x the pycrdt work it does")
    return 0 if sim_wall <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
