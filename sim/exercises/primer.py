"""Checks of notebook 00 (simulator primer)."""

from __future__ import annotations

from sim import theory
from sim.exercises import NOT_ANSWERED, call, close, exercise, is_number, not_yet, passed

#: Exercise 1: the simulated M/M/c/c and how far its blocking may be from Erlang B (noise of a short run).
EX1_LINES, EX1_LOAD, EX1_TOLERANCE = 3, 2.5, 0.02
#: Exercise 2: arrivals and service per second, and the target mean wait in queue (s).
EX2_ARRIVAL_RATE, EX2_SERVICE_RATE, EX2_TARGET_S = 5.0, 2.0, 0.1


@exercise("00.1", "Erlang B", "my_erlang_b, my_simulated_blocking")
def erlang_b(formula, simulated):
    cases = [(1, 0.5), (2, 1.0), (3, 2.5), (5, 4.0), (10, 7.3)]
    answers = [call(formula, c, a, name="my_erlang_b") for c, a in cases]
    if all(v is None for v in answers) and simulated is None:
        raise not_yet(NOT_ANSWERED)
    parts = []
    wrong = [(c, a) for v, (c, a) in zip(answers, cases) if not close(v, theory.erlang_b(c, a))]
    parts.append("formula right" if not wrong else
                 ("formula not answered yet" if all(v is None for v in answers) else
                  f"formula not yet (wrong for c, a = {wrong[0]}: compare with the formula above)"))
    target = theory.erlang_b(EX1_LINES, EX1_LOAD)
    if simulated is None:
        parts.append("simulation not answered yet")
    elif not is_number(simulated):
        parts.append(f"simulation not yet: expected a probability, got {simulated!r}")
    elif abs(float(simulated) - target) >= EX1_TOLERANCE:
        parts.append(f"simulation not yet: {float(simulated):.4f} is too far from the M/M/3/3 of the statement "
                     "(servers=3, capacity=3, λ = 2.5/s, μ = 1/s?)")
    else:
        parts.append(f"simulation right ({float(simulated):.4f})")
    if not wrong and parts[1].startswith("simulation right"):
        return passed("; ".join(parts))
    raise not_yet("; ".join(parts))


def smallest_servers(lam: float = EX2_ARRIVAL_RATE, mu: float = EX2_SERVICE_RATE, target_s: float = EX2_TARGET_S,
                     most: int = 1_000) -> int:
    """Smallest c whose M/M/c mean wait in queue is below ``target_s`` (theory; unstable sizes give nan)."""
    for c in range(1, most + 1):
        if theory.mmck(lam, mu, c, None).wq < target_s:
            return c
    raise ValueError("no size found")


@exercise("00.2", "how many servers?", "my_servers")
def servers(answer):
    if answer is None:
        raise not_yet(NOT_ANSWERED)
    if isinstance(answer, bool) or not is_number(answer) or float(answer) != int(answer) or answer < 1:
        raise not_yet(f"the answer is a whole number of servers >= 1, got {answer!r}")
    want = smallest_servers()
    if int(answer) < want:
        raise not_yet(f"with {int(answer)} servers the mean wait is not below {EX2_TARGET_S:g} s "
                      "(is the queue even stable?)")
    if int(answer) > want:
        raise not_yet("fewer servers would already meet the target: is the whole interval below it?")
    return passed(f"{want} servers")
