"""Solutions to the exercises of ``notebooks/00_simulator_primer.ipynb``.

Plain functions, so that tests can call them; each docstring says what it returns.
Run this file to print the answers: ``python notebooks/solutions/00_simulator_primer_solutions.py``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import sim


# --- Exercise 1: Erlang B ---------------------------------------------------------------------
def erlang_b_formula(c: int, a: float) -> float:
    """Erlang B straight from its definition: (a^c / c!) / sum_{k=0..c} a^k / k!."""
    return (a**c / math.factorial(c)) / math.fsum(a**k / math.factorial(k) for k in range(c + 1))


class Exercise1(NamedTuple):
    formula: float
    """B(c, a) from the formula."""
    simulated: float
    """Blocking probability of the simulated M/M/c/c (mean over replications)."""
    ci_low: float
    ci_high: float
    """95 % confidence interval of ``simulated``."""


def exercise_1(c: int = 3, arrival_rate: float = 2.5, service_rate: float = 1.0, *, seed: int = 1,
               customers: int = 20_000, replications: int = 10) -> Exercise1:
    """Erlang B for ``c`` lines and offered load a = λ/μ, by formula and by simulating M/M/c/c."""
    result = sim.run("queue", seed=seed, arrival_rate=arrival_rate, service_rate=service_rate, servers=c,
                     capacity=c, customers=customers, replications=replications)
    row = result.summary.iloc[0]
    return Exercise1(
        formula=erlang_b_formula(c, arrival_rate / service_rate),
        simulated=float(row["blocking_probability"]),
        ci_low=float(row["blocking_probability_ci_low"]),
        ci_high=float(row["blocking_probability_ci_high"]),
    )


# --- Exercise 2: how many servers? -------------------------------------------------------------
def exercise_2(arrival_rate: float = 5.0, service_rate: float = 2.0, target_s: float = 0.1, *, seed: int = 1,
               customers: int = 20_000, replications: int = 10, max_servers: int = 50) -> int:
    """Smallest number of servers whose simulated mean wait in queue is below ``target_s`` seconds,
    with the whole 95 % confidence interval below it (a conservative decision).

    Starts at the first stable size (c > λ/μ): below it the queue grows without bound.
    """
    first = math.floor(arrival_rate / service_rate) + 1
    for c in range(first, max_servers + 1):
        result = sim.run("queue", seed=seed, arrival_rate=arrival_rate, service_rate=service_rate, servers=c,
                         customers=customers, replications=replications)
        if result.summary["wq_ci_high"].iloc[0] < target_s:
            return c
    raise ValueError(f"no number of servers up to {max_servers} gives Wq < {target_s} s")


def exercise_2_theory(arrival_rate: float = 5.0, service_rate: float = 2.0, target_s: float = 0.1,
                      max_servers: int = 50) -> int:
    """The same answer from M/M/c theory (``sim.theory.mmck``), to check :func:`exercise_2`."""
    from sim import theory

    for c in range(1, max_servers + 1):
        if theory.mmck(arrival_rate, service_rate, c, None).wq < target_s:  # nan (unstable) compares False
            return c
    raise ValueError(f"no number of servers up to {max_servers} gives Wq < {target_s} s")


# --- What the notebook's answer cells hold, by exercise (python -m sim grade's tests use it) ----------
def answers(exercise: str, seed: int = 1, customers: int = 20_000) -> dict:
    """The names the notebook's answer cells define for ``exercise`` (``"00.1"``), solved
    (``customers`` per replication of the simulations: fewer is faster and noisier)."""
    if exercise == "00.1":
        return {"my_erlang_b": erlang_b_formula,
                "my_simulated_blocking": exercise_1(seed=seed, customers=customers).simulated}
    if exercise == "00.2":
        return {"my_servers": exercise_2(seed=seed, customers=customers)}
    raise KeyError(exercise)


if __name__ == "__main__":
    print("exercise 1:", exercise_1())
    print("exercise 2:", exercise_2(), "servers (theory:", exercise_2_theory(), ")")
