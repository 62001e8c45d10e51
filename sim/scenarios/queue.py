"""``queue``: an M/M/c/K station, to check the simulator against queueing theory.

Customers arrive as a Poisson process, are served by the same :class:`Server` component the
other scenarios use, and wait, or are turned away when the system is full. Each replication is
an independent run (its own random streams); the summary reports means over replications with
95 % Student-t confidence intervals next to the analytic values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from sim import theory
from sim.components.server import Job, Server, ServerSpec
from sim.core.params import WorkModel
from sim.core import Context, Exponential, ParameterError, Params, Result, param
from sim.core.registry import scenario
from sim.core.replication import replicate, replications_param


@dataclass(frozen=True)
class QueueParams(Params):
    """Parameters of the ``queue`` scenario."""
    work = WorkModel(seconds_at_defaults=1.6, factors=('customers',))  # measured, see check_work

    arrival_rate: float = param(0.8, unit="1/s", gt=0, help="λ: mean arrivals per second (Poisson process)")
    service_rate: float = param(1.0, unit="1/s", gt=0, help="μ: jobs one server completes per second (exponential)")
    servers: int = param(1, ge=1, help="c: servers working in parallel")
    capacity: int | None = param(None, ge=1, none_means="unlimited",
                                 help="K: most customers in the system, in service plus waiting")
    customers: int | None = param(20_000, ge=1, none_means="no limit",
                                  help="stop after this many arrivals after the warm-up")
    duration: float | None = param(None, gt=0, unit="s", none_means="no limit",
                                   help="stop this many seconds after the warm-up")
    warmup: float = param(100.0, ge=0, unit="s", help="time left out of the statistics, from an empty start")
    replications: int = replications_param(10)

    def validate(self) -> None:
        if self.capacity is not None and self.capacity < self.servers:
            raise ParameterError("capacity", f"must be >= servers ({self.servers}) or none, got {self.capacity}")
        if self.customers is None and self.duration is None:
            raise ParameterError("customers", "and duration cannot both be none: the run would never stop")

    @property
    def rho(self) -> float:
        """Offered utilisation λ/(cμ)."""
        return self.arrival_rate / (self.servers * self.service_rate)


COLUMNS = ("wq", "w", "lq", "l", "utilization", "blocking_probability", "throughput")
"""Measured in each replication, averaged with a confidence interval, and compared with theory."""


def simulate_once(p: QueueParams, seed: int, replication: int) -> dict[str, float]:
    """One replication: time averages over [warm-up, last counted arrival], job means over its customers."""
    ctx = Context(seed, replication=replication)
    env = ctx.env
    server = Server(ctx, "server", ServerSpec(workers=p.servers, capacity=p.capacity,
                                              service_time=Exponential(p.service_rate)))
    interarrival = Exponential(p.arrival_rate).bind(ctx.rng("arrivals"))
    arrivals_done = env.event()
    limit = p.customers if p.customers is not None else math.inf
    stop_at = p.warmup + p.duration if p.duration is not None else math.inf

    def arrivals(env):
        counted = 0
        warm = p.warmup == 0
        if warm:
            server.reset_statistics()
        while True:
            t = env.now + interarrival.sample()
            if not warm and t >= p.warmup:
                yield env.timeout(p.warmup - env.now)
                server.reset_statistics()
                warm = True
            if t >= stop_at:
                yield env.timeout(stop_at - env.now)
                break
            yield env.timeout(t - env.now)
            server.submit(Job())
            if warm:
                counted += 1
                if counted >= limit:
                    break
        arrivals_done.succeed(counted)

    env.process(arrivals(env))
    env.run(until=arrivals_done)
    end = env.now
    m = ctx.metrics
    span = end - server.stats_since
    averages = {name: m[name].labels(server="server").time_average(end)
                for name in ("server_jobs_in_system", "server_jobs_queued", "server_busy_workers")}
    env.run()  # no more arrivals: let every counted customer finish
    arrived = m["server_job_arrivals_total"].labels(server="server").value
    blocked = m["server_jobs_total"].labels(server="server", outcome="blocked").value
    wait = m["server_queue_wait_seconds"].labels(server="server")
    response = m["server_response_seconds"].labels(server="server")
    return {
        "customers": arrived,
        "observed_s": span,
        "wq": wait.sum / wait.count if wait.count else math.nan,
        "w": response.sum / response.count if response.count else math.nan,
        "lq": averages["server_jobs_queued"],
        "l": averages["server_jobs_in_system"],
        "utilization": averages["server_busy_workers"] / p.servers,
        "blocking_probability": blocked / arrived if arrived else math.nan,
        "throughput": response.count / span if span > 0 else math.nan,
    }


@scenario("queue", QueueParams, "primer: M/M/c/K queue checked against queueing theory (Erlang B/C, Little's law)")
def run_queue(p: QueueParams, seed: int) -> Result:
    reps = replicate(p.replications, lambda r: simulate_once(p, seed, r))
    measured = reps.summary([], COLUMNS).iloc[0]
    th = theory.mmck(p.arrival_rate, p.service_rate, p.servers, p.capacity)
    row: dict[str, float | int | None] = {
        "arrival_rate": p.arrival_rate, "service_rate": p.service_rate, "servers": p.servers,
        "capacity": p.capacity if p.capacity is not None else math.inf, "rho": p.rho,
        "replications": p.replications, "customers": reps.rows["customers"].mean(),
    }
    for col in COLUMNS:
        for name in (col, f"{col}_ci_low", f"{col}_ci_high"):
            row[name] = measured[name]
        row[f"{col}_theory"] = getattr(th, col)
    return Result("queue", seed, p, pd.DataFrame([row]), {"replications": reps.rows})
