"""Fuzz: every scenario's declared parameters refuse bad values in one line, never a traceback.

Hypothesis picks a scenario, one of its parameters and a value that is wrong for that
parameter's declaration (outside its bounds, not of its type, a malformed list or
distribution, a number too large for a float...). Through the CLI it must exit 2 with one
line on stderr naming the parameter; through ``sim.run`` the same values (and numpy scalars,
huge Python integers) must raise :class:`ParameterError`, never another exception.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import typing

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import sim
from sim.cli import main
from sim.core import ParameterError
from sim.core.distributions import Distribution
from sim.core.params import _hint_parts
from sim.core.registry import list_scenarios

SCENARIOS = {sc.name: sc for sc in list_scenarios()}
FIELDS = [(name, f.name) for name, sc in SCENARIOS.items() for f in dataclasses.fields(sc.params_type)
          if f.metadata.get("cli", True)]

GARBAGE = ["", " ", "abc", "1,,2", "1,", ",", "nan", "-nan", "1e400", "-1e400", "10**400", "0x10", "1..2", "1:2",
           "1:2:0", "5:1:1", "1:1000000000:1", "\u00e9", "1;2", "None,1", "true,false", "--1", "1e", "∞"]
BAD_DISTRIBUTIONS = ["constant:-1", "uniform:2,1", "uniform:-1,1", "foo:1", "exponential:0", "exponential:-2",
                     "constant:nan", "constant:inf", "normal:1", "lognormal:1,-1", "empirical:", "exponential:5e-324",
                     "constant:1e400", "uniform:0,inf", "empirical:1,,2", ":", "constant:"]


def _hint(scenario: str, field: str):
    return typing.get_type_hints(SCENARIOS[scenario].params_type)[field]


def _meta(scenario: str, field: str) -> dict:
    return next(f.metadata for f in dataclasses.fields(SCENARIOS[scenario].params_type) if f.name == field)


def _out_of_bounds(meta: dict, integral: bool) -> list[str]:
    """Numbers just outside the declared bounds (as text)."""
    out = []
    step = 1 if integral else 1e-9
    for key, sign in (("ge", -1), ("gt", 0), ("le", 1), ("lt", 0)):
        bound = meta.get(key)
        if bound is None:
            continue
        if key == "ge":
            out.append(repr(bound - step if integral else bound - max(abs(bound), 1) * 1e-6))
        elif key == "le":
            out.append(repr(bound + step if integral else bound + max(abs(bound), 1) * 1e-6))
        else:
            out.append(repr(int(bound) if integral and float(bound).is_integer() else bound))
    return out


@st.composite
def bad_setting(draw):
    scenario, field = draw(st.sampled_from(FIELDS))
    base, optional = _hint_parts(_hint(scenario, field))
    meta = _meta(scenario, field)
    candidates = list(GARBAGE)
    if isinstance(base, type) and issubclass(base, Distribution):
        candidates += BAD_DISTRIBUTIONS
    elif meta.get("choices"):
        candidates += ["not-a-choice", meta["choices"][0].upper() + "x"]
    elif base is bool:
        candidates += ["maybe", "2", "yes please"]
    elif base in (int, float) or typing.get_origin(base) is tuple:
        integral = base is int or (typing.get_origin(base) is tuple and typing.get_args(base)[0] is int)
        candidates += _out_of_bounds(meta, integral) + ["inf", "-inf"] * (not optional)
        if integral:
            candidates += ["1.5", "1e300" + "0" * 0, "9" * 30]
    text = draw(st.sampled_from(candidates))
    return scenario, field, text


def _accepted(scenario: str, field: str, text: str) -> bool:
    try:
        SCENARIOS[scenario].params_type.from_strings({field: text})
    except ParameterError:
        return False
    return True


@settings(derandomize=True, deadline=None, max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(bad_setting())
def test_every_bad_cli_value_exits_2_with_one_line(case):
    scenario, field, text = case
    if _accepted(scenario, field, text):
        return  # e.g. "inf" for a parameter where none means unlimited; nothing to refuse
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(["run", scenario, "--set", f"{field}={text}"])
    lines = err.getvalue().strip().splitlines()
    assert code == 2, (scenario, field, text, err.getvalue())
    assert len(lines) == 1 and "Traceback" not in err.getvalue(), lines
    assert lines[0].startswith("python -m sim: error: "), lines
    assert field in lines[0] or "--set" in lines[0], lines  # the parameter is named


PY_BAD = [10**400, -(10**400), math.nan, math.inf, -math.inf, "12", [], [1, None], (math.nan,), object(), 1 + 2j,
          np.float64("nan"), np.array([1, 2]), b"1", {"a": 1}]
PY_GOOD_NUMPY = [np.int64(2), np.int32(3), np.float64(2.0), np.float32(1.5), np.uint8(4)]


@settings(derandomize=True, deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIELDS), st.sampled_from(PY_BAD + PY_GOOD_NUMPY))
def test_python_values_raise_parameter_error_or_are_accepted(where, value):
    scenario, field = where
    params_type = SCENARIOS[scenario].params_type
    try:
        params = dataclasses.replace(params_type(), **{field: value})
    except ParameterError as err:
        assert err.parameter and len(str(err)) < 400 and "\n" not in str(err)
        return
    # accepted: then it is stored as a plain Python value of the declared kind
    stored = getattr(params, field)
    assert not isinstance(stored, np.generic), (scenario, field, type(stored))


@pytest.mark.parametrize("scenario", ["reconnect-storm", "push-vs-webhook"])
@pytest.mark.parametrize("latency", ["constant:0", "uniform:0,0.00005"])
def test_a_latency_that_would_freeze_the_clock_is_refused(scenario, latency):
    """Zero latency made `reconnect-storm --set clients=500 --set latency=constant:0` run for ever at t = 10 s."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["run", scenario, "--set", "latency=" + latency])
    assert code == 2 and err.getvalue().count("\n") == 1
    assert "latency: must have a mean >= 0.0001 s" in err.getvalue()


@pytest.mark.parametrize("scenario, changes, parameter", [
    ("reconnect-storm", dict(clients=10**9), "clients"),
    ("crdt-convergence", dict(operations=10**8), "operations"),
    ("rolling-update", dict(pods=10**308), "pods"),       # it used to blame horizon with "must be > inf"
    ("rolling-update", dict(pods=1e308), "pods"),
    ("queue", dict(arrival_rate=5e-324), "arrival_rate"),
    ("broker-fanout", dict(retention_check_interval=5e-324), "retention_check_interval"),
    ("autoscaling", dict(target_connections=5e-324), "target_connections"),
    ("broker-fanout", dict(message_bytes=10**15), "message_bytes"),
])
def test_legal_looking_extremes_are_refused_naming_the_parameter(scenario, changes, parameter):
    with pytest.raises(ParameterError) as err:
        sim.run(scenario, **changes)
    assert err.value.parameter == parameter and "\n" not in str(err.value)


def test_force_runs_what_the_estimate_refuses():
    from sim.core.params import WorkError

    with pytest.raises(WorkError) as err:
        sim.run("queue", customers=10**9)
    assert "the largest value that runs in about 600 s is" in str(err.value) and "force=True" in str(err.value)
    # force skips only the estimate; a short run of the same kind goes through
    assert len(sim.run("queue", customers=200, force=True).summary) == 1
