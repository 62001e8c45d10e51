"""``load-balancing``: which balancer policy keeps WebSocket sessions where their state lives?

The course (6A) says WebSocket connections « doivent rester collées (sticky) au même nœud, sinon
perte de session ». Here N clients open long-lived connections through one balancer to
``nodes`` stateful nodes; each node keeps the sessions it created in memory. Then every client
loses its connection once (a network change, a laptop waking up) and reconnects after
``offline_time``: a reconnect routed to another node finds no session there unless an external
session store is configured. Every policy runs on the same seed (common random numbers).

Per policy: the connection imbalance (max / mean per node), sessions lost on reconnect, the
effect of NAT (``clients_per_nat`` clients share one public address: NGINX's ``ip_hash`` sends
them all to one node), and the share of clients a keyed policy remaps when one node is added
or marked down (consistent hashing ≈ 1/(N+1), modulo hashing ≈ N/(N+1)). The ``balls_into_bins``
series runs n clients into n nodes with one random choice and with two, next to the theory.

Simplifications: routing is instantaneous (no handshake on a network: this scenario is about
where connections land, the ``rolling-update`` scenario models the handshakes); connection
opening and closing times are drawn in advance, since the policies do not change them, and
replayed in time order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim.components.load_balancer import (
    CLOSE, KEYED, OPEN, POLICIES, REOPEN, ClientKeys, LoadBalancer, Sessions, SessionStore, max_load_theory,
)
from sim.core.params import WorkModel
from sim.core import expand_names, Constant, Context, Distribution, ParameterError, Params, Result, Uniform, param
from sim.core.registry import scenario
from sim.core.replication import replicate, replications_param

_OPEN, _DROP, _RECONNECT = 0, 1, 2
SESSION_STORES = ("off", "on")
SUMMARY_COLUMNS = ("imbalance", "max_connections", "min_connections", "imbalance_after_reconnects", "reconnects",
                   "sessions_kept", "sessions_fetched", "sessions_lost", "sessions_lost_fraction", "fetch_p99_s",
                   "keys_moved_fraction", "keys_moved_on_node_down_fraction", "ideal_moved_fraction", "simulated_s")
"""Per policy and store: the mean over replications, with a 95 % interval (``*_ci_low``, ``*_ci_high``)."""


@dataclass(frozen=True)
class LoadBalancingParams(Params):
    """Parameters of ``load-balancing``."""
    work = WorkModel(seconds_at_defaults=1.0, factors=('clients',))  # measured, see check_work

    clients: int = param(10_000, ge=1, help="clients, each holding one long-lived connection")
    nodes: int = param(20, ge=1, help="stateful nodes behind the balancer")
    policy: str = param("all", help="balancing policy, several separated by commas, or 'all': "
                                    + ", ".join(POLICIES))
    clients_per_nat: int = param(250, ge=1, help="clients sharing one public IPv4 address behind a NAT")
    nat_share: float = param(0.25, ge=0, le=1, help="share of the clients that are behind a NAT (the others "
                                                    "each have their own address)")
    ramp: float = param(60.0, gt=0, unit="s", help="clients open their connections at uniform times in [0, ramp)")
    reconnect_window: float = param(60.0, gt=0, unit="s",
                                    help="after the ramp, each client drops once at a uniform time in this window")
    offline_time: Distribution = param(Uniform(0.5, 5.0), unit="s", help="time from a drop to the reconnect")
    session_store: str = param("off", help="sessions also in an external store, e.g. Redis (on), or only in node "
                                           "memory (off); both separated by a comma, or 'all'")
    store_latency: Distribution = param(Constant(0.001), unit="s",
                                        help="round trip to fetch a session from the store (assumed, same zone)")
    virtual_nodes: int = param(160, ge=1, help="consistent_hash: ring points per node (NGINX ketama uses 160)")
    bins: tuple[int, ...] = param((10, 100, 1000, 10_000), ge=3,
                                  help="balls-into-bins check: n clients into n nodes, for each n")
    bins_replications: int = param(5, ge=1, help="balls-into-bins check: runs averaged for each n")
    replications: int = replications_param()

    def validate(self) -> None:
        self.policies()
        self.stores()
        if self.nat_share > 0 and self.clients_per_nat > self.clients:
            raise ParameterError("clients_per_nat", f"must be <= clients ({self.clients}) when nat_share > 0, "
                                                    f"got {self.clients_per_nat}")

    def policies(self) -> tuple[str, ...]:
        """The policies this run compares, in order."""
        return expand_names("policy", self.policy, POLICIES)

    def stores(self) -> tuple[bool, ...]:
        """Without (False) and/or with (True) a session store, in order."""
        return tuple(s == "on" for s in expand_names("session_store", self.session_store, SESSION_STORES))


def client_addresses(p: LoadBalancingParams, ctx: Context) -> np.ndarray:
    """A public IPv4 address (32-bit int) per client: NAT groups share one, the others draw their own."""
    rng = ctx.rng("addresses")
    behind = int(round(p.nat_share * p.clients))
    groups = math.ceil(behind / p.clients_per_nat) if behind else 0
    nat_ips = rng.integers(0, 2**32, size=groups, dtype=np.int64)
    own = rng.integers(0, 2**32, size=p.clients - behind, dtype=np.int64)
    shared = np.repeat(nat_ips, p.clients_per_nat)[:behind]
    return np.concatenate([shared, own])


def calendar(p: LoadBalancingParams, ctx: Context) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every open, drop and reconnect as (times, kinds, clients), in time order."""
    n = p.clients
    opens = ctx.rng("arrivals").uniform(0.0, p.ramp, n)
    drops = p.ramp + ctx.rng("drops").uniform(0.0, p.reconnect_window, n)
    reconnects = drops + p.offline_time.bind(ctx.rng("offline")).samples(n)
    times = np.concatenate([opens, drops, reconnects])
    kinds = np.repeat(np.array([_OPEN, _DROP, _RECONNECT], dtype=np.int8), n)
    clients = np.tile(np.arange(n), 3)
    order = np.argsort(times, kind="stable")
    return times[order], kinds[order], clients[order]


def _imbalance(loads: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Max / mean, max and min of each row of per-node loads (NaN imbalance where the mean is 0)."""
    high, low = loads.max(axis=1), loads.min(axis=1)
    mean = loads.sum(axis=1) / loads.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mean > 0, high / mean, math.nan), high, low


def _moved(before: np.ndarray, after: np.ndarray) -> float:
    return float(np.count_nonzero((before < 0) | (after != before)) / len(before))


def population(p: LoadBalancingParams, seed: int, replication: int = 0) -> tuple[ClientKeys, tuple[np.ndarray, ...]]:
    """The clients (as arrays) and their calendar: the same for every policy (common random numbers)."""
    ctx = Context(seed, replication=replication)
    keys = ClientKeys("client-", client_addresses(p, ctx))
    return keys, calendar(p, ctx)


def simulate(p: LoadBalancingParams, seed: int, policy: str, people=None, *, store_on: bool | None = None,
             replication: int = 0) -> tuple[dict, pd.DataFrame]:
    """One policy: summary row and per-second series (``people`` from :func:`population`, to share it).

    The calendar is replayed in one batch (:meth:`LoadBalancer.route_batch`): nothing in this
    scenario changes the balancer's membership or health while connections come and go, and the
    per-second series is read off the per-node counts at each whole second (the state after every
    event before it)."""
    keys, (times, kinds, who) = people if people is not None else population(p, seed, replication)
    store_on = p.stores()[0] if store_on is None else store_on
    ctx = Context(seed, replication=replication)
    names = [f"node-{i}" for i in range(p.nodes)]
    lb = LoadBalancer(ctx, policy, names, virtual_nodes=p.virtual_nodes)
    store = SessionStore(ctx, p.store_latency) if store_on else None
    sessions = Sessions(store)
    for name in names:
        sessions.node_up(name)
    lb_kinds = np.where(kinds == _DROP, CLOSE, np.where(kinds == _OPEN, OPEN, REOPEN))
    node = lb.route_batch(keys, lb_kinds, who)
    connecting = kinds != _DROP
    outcome, delays = sessions.resume_batch(who[connecting], node[connecting], names)
    fetch_delays = delays[outcome == Sessions.OUTCOMES.index("fetched")]

    # per-node connections at each whole second: event at t counted from second floor(t) + 1 on
    horizon = float(times[-1]) if len(times) else 0.0
    steps = int(math.floor(horizon)) + 1 if len(times) else 0
    step = np.floor(times).astype(np.int64)  # row 0 is second 1
    sign = np.where(connecting, 1, -1)
    loads = np.bincount(step * p.nodes + node, weights=sign, minlength=steps * p.nodes)
    loads = np.cumsum(loads.reshape(steps, p.nodes).astype(np.int64), axis=0)
    imbalance, high, low = _imbalance(loads)
    seconds = np.arange(1, steps + 1, dtype=float)
    series = {"time_s": seconds, "imbalance": imbalance, "max_connections": high,
              "connected": loads.sum(axis=1)}
    snapshot: dict[str, float] = {}
    at_ramp = max(1, math.ceil(p.ramp))  # the first second >= ramp: everyone connected, nobody dropped yet
    if at_ramp <= steps:
        k = at_ramp - 1
        snapshot["imbalance"], snapshot["max"], snapshot["min"] = float(imbalance[k]), int(high[k]), int(low[k])
    end_imbalance = float(_imbalance(np.array([[b.active for b in lb.healthy]]))[0][0])

    moved_add = moved_down = math.nan
    if policy in KEYED:
        before = lb.owners(keys)
        lb.add(f"node-{p.nodes}")
        moved_add = _moved(before, lb.owners(keys))
        lb.remove(f"node-{p.nodes}")
        if p.nodes > 1:
            lb.mark_down(names[0])
            moved_down = _moved(before, lb.owners(keys))
    reconnects = p.clients
    counts = sessions.counts
    row = {
        "policy": policy,
        "session_store": store_on,
        "clients": p.clients,
        "nodes": p.nodes,
        "imbalance": snapshot.get("imbalance", math.nan),
        "max_connections": snapshot.get("max", 0),
        "min_connections": snapshot.get("min", 0),
        "imbalance_after_reconnects": end_imbalance,
        "reconnects": reconnects,
        "sessions_kept": counts["kept"],
        "sessions_fetched": counts["fetched"],
        "sessions_lost": counts["lost"],
        "sessions_lost_fraction": counts["lost"] / reconnects,
        "fetch_p99_s": float(np.quantile(fetch_delays, 0.99)) if len(fetch_delays) else math.nan,
        "keys_moved_fraction": moved_add,
        "keys_moved_on_node_down_fraction": moved_down,
        "ideal_moved_fraction": 1 / (p.nodes + 1),
        "simulated_s": horizon,
    }
    return row, pd.DataFrame({"policy": policy, "session_store": store_on, **series})


def balls_into_bins(p: LoadBalancingParams, seed: int) -> pd.DataFrame:
    """n clients into n nodes through the balancer, ``random`` (one choice) vs ``power_of_two``."""
    rows = []
    for n in p.bins:
        maxima = {"random": [], "power_of_two": []}
        for rep in range(p.bins_replications):
            for policy in maxima:
                ctx = Context(seed, replication=rep)
                lb = LoadBalancer(ctx, policy, (f"b{i}" for i in range(n)), name=f"bins-{n}")
                for _ in range(n):
                    lb.opened(lb.route(None))  # type: ignore[arg-type]  # these policies ignore the client
                maxima[policy].append(max(b.active for b in lb.backends))
        one, two = max_load_theory(n)
        rows.append({"n": n, "replications": p.bins_replications,
                     "max_load_one_choice": float(np.mean(maxima["random"])),
                     "max_load_two_choices": float(np.mean(maxima["power_of_two"])),
                     "theory_one_choice": one, "theory_two_choices": two})
    return pd.DataFrame(rows)


@scenario("load-balancing", LoadBalancingParams,
          "Q6: N long-lived connections through one balancer: imbalance, sessions lost on reconnect, NAT and "
          "keys moved per policy (round robin ... consistent hashing, sticky cookie), balls into bins")
def run_load_balancing(p: LoadBalancingParams, seed: int) -> Result:
    def once(r: int):
        people = population(p, seed, r)
        rows, series = zip(*(simulate(p, seed, policy, people, store_on=store, replication=r)
                             for store in p.stores() for policy in p.policies()))
        return list(rows), {"per_second": pd.concat(series, ignore_index=True)}

    reps = replicate(p.replications, once)
    summary = reps.summary(["policy", "session_store"], SUMMARY_COLUMNS, keep=["clients", "nodes"])
    return Result("load-balancing", seed, p, summary,
                  {"replications": reps.rows, **reps.series, "balls_into_bins": balls_into_bins(p, seed)})
