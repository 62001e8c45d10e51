"""``backoff-contention``: N clients fight over one row with optimistic concurrency control.

The experiment of "Exponential Backoff And Jitter" (Marc Brooker, AWS Architecture Blog, 2015;
simulator ``aws-samples/aws-arch-backoff-simulator``). One server holds a single versioned row.
Every client, starting at t = 0:

1. reads the row (a request to the server, which answers at once with the current version);
2. writes it conditionally with the version it read: at the write's arrival the server accepts
   it only if the version is unchanged, and then bumps the version;
3. on a refused write, backs off (the strategy's delay) and starts again at 1;
   on an accepted one, stops.

Every one-way message takes |Normal(10 ms, 2 ms)|. The blog's two measures are the *calls*
(writes sent to the server, reads not counted) and the *completion time* (when the last
client hears that its write succeeded). Without jitter the losers of a round all come back
together and collide again; jitter spreads them out, so fewer writes are wasted.

The model is callbacks on :class:`~sim.core.Network` deliveries (one simpy event per message,
one more per non-zero backoff), no process per client. Each run is an independent replication
(``Context(seed, replication=r)``, through :func:`sim.core.replication.replicate`); replication ``r`` uses the same random streams for every strategy
and client count (common random numbers), so the configurations are compared on equal terms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.components.backoff import Textbook
from sim.core.params import WorkModel
from sim.core import (
    Context, LinkSpec, Message, Network, ParameterError, Params, Result, TruncatedNormal, Uniform, expand_names, param,
)
from sim.core.registry import scenario
from sim.core.replication import replicate, replications_param

#: The strategies of the blog post, in the order of the summary.
STRATEGIES = ("none", "exponential", "full_jitter", "equal_jitter", "decorrelated_jitter")
MULTIPLIER = 2.0
"""Growth of the exponential ceiling, as in the blog (``2 ** n * base``)."""
FIRST_EXPONENT = 1
"""The blog's client counts its first retry as attempt 1: the first ceiling is ``2 * base``."""
SERVER = "server"

MEASURES = ("calls", "completion_ms")
"""What each replication measures; the summary gives their means and confidence intervals."""


@dataclass(frozen=True)
class BackoffContentionParams(Params):
    """Parameters of the ``backoff-contention`` scenario."""
    work = WorkModel(seconds_at_defaults=2.9, factors=('clients', 'clients'))  # measured, see check_work

    clients: tuple[int, ...] = param((10, 25, 50, 100), ge=1,
                                     help="N: clients contending for the row, one configuration per value")
    strategy: str = param("all", help=f"backoff between a refused write and the next read: {', '.join(STRATEGIES)}; "
                                      "several separated by commas, or all")
    replications: int = replications_param(10)
    backoff_base: float = param(0.005, gt=0, unit="s",
                                help="backoff base: first ceiling is 2*backoff_base, later ones double")
    backoff_cap: float = param(2.0, gt=0, unit="s", help="largest backoff (must be >= backoff_base)")
    latency_mean: float = param(0.010, gt=0, unit="s",
                                help="mean of each one-way network delay, Normal(mean, sd) truncated at 0")
    latency_sd: float = param(0.002, ge=0, unit="s", help="standard deviation of each one-way network delay")

    def validate(self) -> None:
        self.strategies  # raises on an unknown name
        if self.backoff_cap < self.backoff_base:
            raise ParameterError("backoff_cap", f"must be >= backoff_base ({self.backoff_base:g} s), "
                                                f"got {self.backoff_cap!r}")

    @property
    def strategies(self) -> tuple[str, ...]:
        """The strategies this run simulates."""
        return expand_names("strategy", self.strategy, STRATEGIES)


def simulate_once(p: BackoffContentionParams, strategy: str, clients: int, seed: int, replication: int) -> dict:
    """One replication: ``clients`` clients from t = 0 until each has written once; returns its counters."""
    ctx = Context(seed, replication=replication)
    env = ctx.env
    # The blog's delay is abs(normalvariate(10, 2)) (folded at 0); ours is truncated at 0. With
    # mean = 5 sd, P(Normal < 0) = Phi(-5) = 2.9e-7, so the two laws coincide to 1e-6 (total
    # variation distance below that probability).
    net = Network(ctx, LinkSpec(latency=TruncatedNormal(p.latency_mean, p.latency_sd)))
    policy = Textbook(strategy, p.backoff_base, MULTIPLIER, p.backoff_cap, first_exponent=FIRST_EXPONENT)
    u = Uniform(0.0, 1.0).bind(ctx.rng("backoff")).sampler()
    names = [f"client{i}" for i in range(clients)]
    states = [policy.new_state() for _ in range(clients)]
    attempt_start = [0.0] * clients
    done_at = [math.nan] * clients
    row = {"version": 0, "calls": 0, "reads": 0, "successes": 0}

    def on_server(msg: Message) -> None:
        kind, client, *rest = msg.payload
        if kind == "read":
            row["reads"] += 1
            net.send(SERVER, msg.src, ("read_ok", client, row["version"]))
        else:  # "write": the version test happens now, at the write's arrival
            row["calls"] += 1
            ok = rest[0] == row["version"]
            if ok:
                row["version"] += 1
                row["successes"] += 1
            net.send(SERVER, msg.src, ("write_ok", client, ok))

    def read(client: int) -> None:
        attempt_start[client] = env.now
        net.send(names[client], SERVER, ("read", client))

    def read_after_backoff(event) -> None:
        read(event.value)

    def on_client(msg: Message) -> None:
        kind, client, value = msg.payload
        if kind == "read_ok":
            net.send(names[client], SERVER, ("write", client, value))
        elif value:
            done_at[client] = env.now
        else:
            delay = policy.next_delay(states[client], env.now, env.now - attempt_start[client], u)
            if delay is None:  # Textbook strategies never give up without max_attempts
                raise RuntimeError(f"{strategy} gave up, which this scenario does not model")
            if delay > 0:
                env.timeout(delay, client).callbacks.append(read_after_backoff)
            else:
                read(client)

    net.attach(SERVER, on_server)
    for client, name in enumerate(names):
        net.attach(name, on_client)
        read(client)
    env.run()  # every client retries until its write succeeds; then nothing is left to happen

    if row["successes"] != clients or any(math.isnan(t) for t in done_at) or net.in_flight:
        raise RuntimeError(f"{strategy} with {clients} clients ended before every client had written")
    return {
        "strategy": strategy, "clients": clients, "calls": row["calls"],
        "completion_ms": max(done_at) * 1000.0, "reads": row["reads"], "successes": row["successes"],
        "final_version": row["version"], "messages": net.sent,
    }


@scenario("backoff-contention", BackoffContentionParams,
          "Q7: N clients racing optimistic writes on one row: calls and completion time per backoff strategy (AWS blog)")
def run_backoff_contention(p: BackoffContentionParams, seed: int) -> Result:
    reps = replicate(p.replications, lambda r: [simulate_once(p, strategy, n, seed, r)
                                                for strategy in p.strategies for n in p.clients])
    summary = reps.summary(["strategy", "clients"], MEASURES)
    return Result("backoff-contention", seed, p, summary, {"replications": reps.rows})
