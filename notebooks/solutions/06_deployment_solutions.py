"""Solutions to the exercises of ``notebooks/06_deployment.ipynb``.

Plain functions, so that tests can call them; each docstring says what it returns.
Run this file to print the answers: ``python notebooks/solutions/06_deployment_solutions.py``.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from fractions import Fraction
from typing import Sequence

import sim
from sim.components.autoscaler import HpaSpec, HpaState, hpa_step
from sim.components.load_balancer import ClientKey, nginx_chash_points
from sim.components.node_limits import NginxLimits


# --- Exercise 1: keys moved when a node is added -------------------------------------------------
def moved_share(n: int, consistent: bool) -> float:
    """Expected share of keys remapped when one node is added to ``n``.

    Consistent hashing: only the keys the new node now owns move; by symmetry it owns
    ``1/(n+1)`` of the ring in expectation. Modulo hashing: a key ``h`` stays only if
    ``h mod n == h mod (n+1)``, i.e. ``h mod n(n+1) < n``, probability ``1/(n+1)`` for a
    uniform hash, so ``n/(n+1)`` move.
    """
    return 1 / (n + 1) if consistent else n / (n + 1)


def _ring(n: int, virtual_nodes: int) -> list[tuple[int, int]]:
    """NGINX's ring for ``node-0 .. node-{n}``: (point, owner) sorted, equal points kept once."""
    points = sorted((h, i) for i in range(n + 1) for h in nginx_chash_points(f"node-{i}", virtual_nodes))
    return [pt for j, pt in enumerate(points) if j == 0 or pt[0] != points[j - 1][0]]


def ring_share_of_new_node(n: int, virtual_nodes: int = 160) -> float:
    """Exact share of the 32-bit ring that node ``node-{n}`` takes when added to ``node-0 .. node-{n-1}``
    (NGINX's ``hash $key consistent`` ring: ``virtual_nodes`` CRC32 points per node, a key goes to the
    first point at or after its CRC32)."""
    points = _ring(n, virtual_nodes)
    size = 2**32
    share = 0
    for j, (p, owner) in enumerate(points):
        if owner == n:  # the arc (previous point, p] belongs to the new node
            prev = points[j - 1][0] if j > 0 else points[-1][0] - size
            share += p - prev
    return share / size


def keys_moved_on_ring(n: int, clients: int, virtual_nodes: int = 160) -> int:
    """How many of the keys ``client-0 .. client-{clients-1}`` land on the new node's arcs (and so move)."""
    points = _ring(n, virtual_nodes)
    hashes = [h for h, _ in points]
    moved = 0
    for c in range(clients):
        h = ClientKey(f"client-{c}", 0).key_crc32
        i = bisect_left(hashes, h) % len(points)
        moved += points[i][1] == n
    return moved


def simulated_moved(n: int, clients: int = 2_000, *, seed: int = 1) -> dict[str, float]:
    """``keys_moved_fraction`` of ``load-balancing`` for the consistent and modulo policies."""
    r = sim.run("load-balancing", seed=seed, clients=clients, nodes=n, nat_share=0.0,
                policy="consistent_hash,modulo_hash", bins=(10,), bins_replications=1)
    return dict(zip(r.summary.policy, r.summary.keys_moved_fraction))


# --- Exercise 2: the HPA's next replica count ----------------------------------------------------
EX2_CONNECTIONS = (130, 120, 95, 155)


def hpa_recommendation(connections: Sequence[float], target: float, tolerance: float) -> int:
    """The HPA's recommendation for ready pods reporting ``connections`` (no pod starting):
    the current count ``len(connections)`` if ``|1 - ratio| <= tolerance``, else
    ``ceil(sum / target)``, where ``ratio = mean / target``. Exact arithmetic (no float rounding)."""
    total = sum(Fraction(repr(float(v))) for v in connections)
    target_f, tol = Fraction(repr(float(target))), Fraction(repr(float(tolerance)))
    ratio = total / len(connections) / target_f
    if abs(1 - ratio) <= tol:
        return len(connections)
    q = total / target_f
    return -((-q.numerator) // q.denominator)


def exercise_2_by_hand() -> int:
    """For (130, 120, 95, 155), target 100, tolerance 0.1: mean 125, ratio 1.25, ceil(500/100) = 5."""
    return hpa_recommendation(EX2_CONNECTIONS, 100.0, 0.1)


# --- Exercise 3: how fast can the HPA scale up? --------------------------------------------------
def scale_up_sequence(start: int = 2, syncs: int = 4, max_replicas: int = 20, pods: int = 4,
                      percent: int = 100) -> list[int]:
    """Replica counts after each of ``syncs`` syncs (one per 15 s period) when the metric asks for
    far more pods: each period allows the larger of ``+percent %`` (rounded up) and ``+pods``, capped."""
    out, current = [], start
    for _ in range(syncs):
        current = min(max_replicas, max(current + pods, -((-current * (100 + percent)) // 100)))
        out.append(current)
    return out


def simulated_scale_up(start: int = 2, syncs: int = 4, max_replicas: int = 20) -> list[int]:
    """The same sequence from the simulator's :func:`hpa_step` with the documented defaults."""
    spec = HpaSpec(target=100.0, min_replicas=1, max_replicas=max_replicas)
    state, current, out = HpaState(), start, []
    for k in range(syncs):
        decision, state = hpa_step(spec, state, spec.sync_period * k, current, [1e5] * current)
        current = decision.desired
        out.append(current)
    return out


# --- Exercise 4: how many nodes behind a stock NGINX? ---------------------------------------------
def nodes_needed(clients: int, imbalance: float, worker_connections: int = 512) -> int:
    """Fewest nodes ``n`` with ``clients / n * imbalance`` (the busiest node) at most what one NGINX
    worker with ``worker_connections`` slots proxies: ``(worker_connections - 2) // 2`` WebSockets,
    two slots each after the two the worker keeps for itself (its listening socket, its channel
    to the master). So ``n = ceil(clients * imbalance / room)``."""
    room = (worker_connections - 2) // 2
    assert room == NginxLimits(worker_connections=worker_connections).proxied_websockets()
    return math.ceil(clients * imbalance / room)


# --- What the notebook's answer cells hold, by exercise (python -m sim grade's tests use it) ----------
def answers(exercise: str, seed: int = 1) -> dict:
    """The names the notebook's answer cells define for ``exercise`` (``"06.1"``), solved."""
    return {"06.1": {"my_moved_share": moved_share},
            "06.2": {"my_ex2_by_hand": exercise_2_by_hand(), "my_hpa_recommendation": hpa_recommendation},
            "06.3": {"my_scale_up": scale_up_sequence()},
            "06.4": {"my_nodes_needed": nodes_needed}}[exercise]


if __name__ == "__main__":
    for n in (2, 4, 8, 16, 32):
        print(f"exercise 1: N = {n}: consistent {moved_share(n, True):.3f} (this ring {ring_share_of_new_node(n):.3f}),"
              f" modulo {moved_share(n, False):.3f}; simulated {simulated_moved(n)}")
    print("exercise 2:", exercise_2_by_hand())
    print("exercise 3:", scale_up_sequence(), simulated_scale_up())
    print("exercise 4:", {f"{c:,} clients x {i:g}, worker_connections {w}": nodes_needed(c, i, w)
                          for c, i, w in ((100_000, 1.0, 512), (100_000, 2.5, 512), (100_000, 1.0, 10_240))})
