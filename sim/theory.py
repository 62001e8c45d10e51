"""Closed-form results the simulations are checked against (queueing theory).

Notation: arrival rate λ, service rate μ per server, c servers, K places in the system
(in service plus waiting), offered load a = λ/μ, utilisation ρ = λ/(cμ). Times in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class QueueMetrics:
    """Steady-state means of an M/M/c/K station."""

    wq: float
    """Mean wait in queue, s."""
    w: float
    """Mean time in system, s."""
    lq: float
    """Mean number waiting."""
    l: float  # noqa: E741
    """Mean number in system."""
    utilization: float
    """Share of time a server is busy."""
    blocking_probability: float
    """Share of arrivals turned away because the system is full."""
    throughput: float
    """Admitted (and served) customers per second, λ(1 - P_block)."""


def erlang_b(c: int, a: float) -> float:
    """Erlang B: probability that all ``c`` servers are busy in M/M/c/c with offered load ``a``."""
    b = 1.0
    for k in range(1, c + 1):  # the stable recurrence B(k) = a B(k-1) / (k + a B(k-1))
        b = a * b / (k + a * b)
    return b


def erlang_c(c: int, a: float) -> float:
    """Erlang C: probability that an arrival waits in M/M/c (needs a < c)."""
    if a >= c:
        return 1.0
    b = erlang_b(c, a)
    return c * b / (c - a * (1 - b))


def mm1(arrival_rate: float, service_rate: float) -> QueueMetrics:
    """M/M/1: Wq = ρ/(μ − λ)."""
    return mmck(arrival_rate, service_rate, 1, None)


def mmck(arrival_rate: float, service_rate: float, servers: int, capacity: int | None) -> QueueMetrics:
    """M/M/c/K (``capacity=None`` is M/M/c); ``nan`` everywhere when M/M/c is unstable (ρ >= 1)."""
    lam, mu, c = arrival_rate, service_rate, servers
    a = lam / mu
    if capacity is None:
        rho = a / c
        if rho >= 1:
            nan = math.nan
            return QueueMetrics(nan, nan, nan, nan, 1.0, 0.0, c * mu)
        pw = erlang_c(c, a)
        wq = pw / (c * mu - lam)
        lq = lam * wq
        return QueueMetrics(wq, wq + 1 / mu, lq, lq + a, rho, 0.0, lam)
    if capacity < c:
        raise ValueError(f"capacity ({capacity}) must be >= servers ({c})")
    # p_n proportional to a^n/n! for n <= c and a^n/(c! c^(n-c)) above; built in logs for large K.
    log_terms = []
    for n in range(capacity + 1):
        if n <= c:
            log_terms.append(n * math.log(a) - math.lgamma(n + 1) if a > 0 else (0.0 if n == 0 else -math.inf))
        else:
            log_terms.append(log_terms[c] + (n - c) * math.log(a / c))
    top = max(log_terms)
    weights = [math.exp(t - top) for t in log_terms]
    total = math.fsum(weights)
    p = [w / total for w in weights]
    l = math.fsum(n * pn for n, pn in enumerate(p))
    lq = math.fsum((n - c) * pn for n, pn in enumerate(p) if n > c)
    blocking = p[capacity]
    throughput = lam * (1 - blocking)
    w = l / throughput if throughput > 0 else math.nan
    wq = lq / throughput if throughput > 0 else math.nan
    return QueueMetrics(wq, w, lq, l, throughput / (c * mu), blocking, throughput)
