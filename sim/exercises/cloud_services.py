"""Checks of notebook 01 (Firebase Realtime Database vs AWS AppSync)."""

from __future__ import annotations

import sim
from sim.components import appsync as asx
from sim.components import realtime_tree as rt
from sim.exercises import NOT_ANSWERED, exercise, is_number, not_yet, passed

#: Exercise 3: offered write rates (per second) and the p99 wait before commit that "hurts" (s).
EX3_RATES = (600.0, 800.0, 900.0, 1000.0, 1100.0, 1200.0, 1500.0)
EX3_P99_LIMIT_S = 0.25


@exercise("01.1", "presence rules", "my_rules")
def presence_rules(spec):
    if spec is None:
        raise not_yet(NOT_ANSWERED)
    try:
        rules = rt.Rules(spec)
    except (rt.RuleError, TypeError, AttributeError, ValueError) as err:
        raise not_yet(f"the rules do not load: {err}") from None
    node = ("presence", "r1", "ann")
    cases = [
        ("ann writes true on her node", lambda: rules.can_write(node, {"uid": "ann"}, None, rt.set_in(None, node, True)), True),
        ("ann writes a string", lambda: rules.can_write(node, {"uid": "ann"}, None, rt.set_in(None, node, "yes")), False),
        ("bob writes ann's node", lambda: rules.can_write(node, {"uid": "bob"}, None, rt.set_in(None, node, True)), False),
        ("signed-out write", lambda: rules.can_write(node, None, None, rt.set_in(None, node, True)), False),
        ("bob reads the room", lambda: rules.can_read(("presence", "r1"), {"uid": "bob"}, None), True),
        ("signed-out read", lambda: rules.can_read(("presence", "r1"), None, None), False),
    ]
    try:
        wrong = [name for name, got, want in cases if got() != want]
    except rt.RuleError as err:
        raise not_yet(f"a rule expression does not evaluate: {err}") from None
    if wrong:
        raise not_yet(f"wrong for: {', '.join(wrong)}")
    return passed("reads, writes and validation as asked")


@exercise("01.2", "an enhanced subscription filter", "my_filter")
def subscription_filter(spec):
    if spec is None:
        raise not_yet(NOT_ANSWERED)
    try:
        asx.check_filter(spec)
    except asx.FilterError as err:
        raise not_yet(f"AppSync would refuse it: {err}") from None
    cases = [({"value": 150, "title": "cpu"}, True), ({"value": 100, "title": "cpu"}, True),
             ({"value": 99, "title": "cpu"}, False), ({"value": 5, "title": "!disk"}, True),
             ({"value": 5, "title": "disk!"}, False), ({"title": "!x"}, True), ({}, False)]
    wrong = [c for c, want in cases if asx.filter_matches(spec, c) != want]
    if wrong:
        raise not_yet(f"wrong for the updates {wrong}")
    return passed("the right updates go through")


def first_rate_over(seed: int) -> float | None:
    table = sim.run("cloud-sync", seed=seed, service="rtdb", workload="dashboard", users=2, duration_s=6.0,
                    write_rates=EX3_RATES, write_burst_s=2.0, depths=(1,)).series["write_limit"]
    rows = table[(table.service == "rtdb") & (table.commit_wait_p99_s > EX3_P99_LIMIT_S)].sort_values("offered_rate")
    return float(rows.offered_rate.iloc[0]) if len(rows) else None


@exercise("01.3", "where the write ceiling starts to hurt", "my_rate, seed=SEED")
def write_ceiling(rate, seed=1):
    if rate is None:
        raise not_yet(NOT_ANSWERED)
    if not is_number(rate):
        raise not_yet(f"expected a number of writes per second, got {rate!r}")
    if float(rate) not in EX3_RATES:
        raise not_yet(f"the answer is one of EX3_RATES, got {rate!r}")
    want = first_rate_over(seed)
    if want is None or float(rate) != want:
        raise not_yet("look at commit_wait_p99_s of the rtdb rows" +
                      (": at that rate the p99 is not yet above 0.25 s" if want is not None and rate < want
                       else ": a lower rate already exceeds 0.25 s" if want is not None else ""))
    return passed(f"{want:g} writes per second")
