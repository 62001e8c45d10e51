"""Params: declared fields give validation, text parsing, describe() rows and a JSON record."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import pytest

from sim.core.distributions import SPEC_HELP, Constant, Distribution, Exponential, Uniform
from sim.core.errors import ParameterError
from sim.core.params import ParamInfo, Params, param


@dataclass(frozen=True)
class Demo(Params):
    clients: int = param(10, help="Number of clients", ge=1)
    rate: float = param(2.0, help="Arrival rate", unit="1/s", gt=0, le=1000)
    limit: int | None = param(None, help="Connection limit", ge=0, none_means="unlimited")
    policy: str = param("fifo", help="Queue discipline", choices=("fifo", "lifo"))
    verbose: bool = param(False, help="Chatty output")
    service: Distribution = param(Exponential(1.0), help="Service time", unit="s")
    sizes: tuple[int, ...] = param((1, 2), help="Cluster sizes", ge=1)
    label: str = param("run", help="Free text")
    secret: int = param(0, help="Not on the command line", cli=False)


@dataclass(frozen=True)
class Cross(Params):
    low: float = param(1.0, help="low", ge=0)
    high: float = param(2.0, help="high", ge=0)

    def validate(self) -> None:
        if self.high < self.low:
            raise ParameterError("high", f"must be >= low ({self.low}), got {self.high}")


def error(**kwargs) -> ParameterError:
    with pytest.raises(ParameterError) as err:
        Demo(**kwargs)
    return err.value


# --- construction and validation ---------------------------------------------------------------
def test_defaults_are_valid_and_frozen() -> None:
    d = Demo()
    assert (d.clients, d.rate, d.limit, d.policy, d.verbose, d.sizes) == (10, 2.0, None, "fifo", False, (1, 2))
    assert d.service == Exponential(1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.clients = 3  # type: ignore[misc]


def test_coercions() -> None:
    d = Demo(clients=3.0, rate=5, sizes=[4, 5], limit=7.0)
    assert d.clients == 3 and type(d.clients) is int
    assert d.rate == 5.0 and type(d.rate) is float
    assert d.sizes == (4, 5) and type(d.sizes) is tuple
    assert d.limit == 7 and type(d.limit) is int
    assert Demo(sizes=range(1, 4)).sizes == (1, 2, 3)


@pytest.mark.parametrize(
    "kwargs,field,message",
    [
        ({"clients": 0}, "clients", "must be an integer >= 1, got 0"),
        ({"clients": 2.5}, "clients", "must be an integer >= 1, got 2.5"),
        ({"clients": True}, "clients", "must be an integer >= 1, got True"),
        ({"clients": "3"}, "clients", "must be an integer >= 1, got '3'"),
        ({"clients": None}, "clients", "must be set (none is not allowed)"),
        ({"rate": 0}, "rate", "must be a number > 0 and <= 1000, got 0.0"),
        ({"rate": 1000.5}, "rate", "must be a number > 0 and <= 1000, got 1000.5"),
        ({"rate": float("nan")}, "rate", "must be a number > 0 and <= 1000, got nan"),
        ({"rate": float("inf")}, "rate", "> 0 and <= 1000, got inf"),
        ({"limit": -1}, "limit", "must be an integer >= 0, or none (unlimited), got -1"),
        ({"limit": 1.5}, "limit", "must be an integer >= 0, or none (unlimited), got 1.5"),
        ({"policy": "random"}, "policy", "must be one of fifo, lifo, got 'random'"),
        ({"policy": 1}, "policy", "must be one of fifo, lifo, got 1"),
        ({"label": 5}, "label", "must be a string, got 5"),
        ({"verbose": 1}, "verbose", "must be true or false, got 1"),
        ({"verbose": "yes"}, "verbose", "must be true or false, got 'yes'"),
        ({"service": "exponential:2"}, "service", f"must be a distribution ({SPEC_HELP}), got 'exponential:2'"),
        ({"service": 2.0}, "service", "must be a distribution"),
        ({"sizes": ()}, "sizes", "must be a non-empty list of int, got ()"),
        ({"sizes": 3}, "sizes", "must be a non-empty list of int, got 3"),
        ({"sizes": (1, 0)}, "sizes", "must be ints >= 1, got 0"),
        ({"sizes": (1, 2.5)}, "sizes", "must be ints >= 1, got 2.5"),
        ({"sizes": None}, "sizes", "must be set"),
    ],
)
def test_validation_names_field_and_allowed(kwargs, field: str, message: str) -> None:
    err = error(**kwargs)
    assert err.parameter == field
    assert message in err.message, err.message
    assert str(err).startswith(f"{field}: ")


def test_infinite_float_message_is_grammatical() -> None:
    assert "must be a finite number > 0 and <= 1000, got inf" in error(rate=float("inf")).message


def test_validation_on_replace() -> None:
    d = Demo()
    assert d.replace(clients=4).clients == 4
    assert d.clients == 10
    with pytest.raises(ParameterError) as err:
        d.replace(policy="lifo", clients=-5)
    assert err.value.parameter == "clients"


def test_cross_field_validate_runs_on_creation_and_replace() -> None:
    assert Cross(low=1, high=1).high == 1.0
    with pytest.raises(ParameterError, match=r"high: must be >= low"):
        Cross(low=3, high=2)
    with pytest.raises(ParameterError, match=r"high: must be >= low"):
        Cross().replace(low=5)
    with pytest.raises(ParameterError, match=r"high: must be >= low"):
        Cross.from_strings({"low": "9"})


# --- from_strings ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "values,expected",
    [
        ({"limit": "none"}, {"limit": None}),
        ({"limit": "None"}, {"limit": None}),
        ({"limit": " unlimited "}, {"limit": None}),
        ({"limit": "inf"}, {"limit": None}),
        ({"limit": "50"}, {"limit": 50}),
        ({"clients": "1e2"}, {"clients": 100}),
        ({"clients": "7.0"}, {"clients": 7}),
        ({"rate": "0.5"}, {"rate": 0.5}),
        ({"sizes": "10:50:10"}, {"sizes": (10, 20, 30, 40, 50)}),
        ({"sizes": "10:55:10"}, {"sizes": (10, 20, 30, 40, 50)}),
        ({"sizes": "3:3:1"}, {"sizes": (3,)}),
        ({"sizes": "1,2,3"}, {"sizes": (1, 2, 3)}),
        ({"sizes": " 4, 5 ,6 "}, {"sizes": (4, 5, 6)}),
        ({"sizes": "8"}, {"sizes": (8,)}),
        ({"service": "exponential:2"}, {"service": Exponential(2.0)}),
        ({"service": "uniform:1,3"}, {"service": Uniform(1, 3)}),
        ({"service": "0.5"}, {"service": Constant(0.5)}),
        ({"verbose": "yes"}, {"verbose": True}),
        ({"verbose": "TRUE"}, {"verbose": True}),
        ({"verbose": "on"}, {"verbose": True}),
        ({"verbose": "0"}, {"verbose": False}),
        ({"verbose": "off"}, {"verbose": False}),
        ({"policy": "lifo"}, {"policy": "lifo"}),
        ({"label": " x y "}, {"label": "x y"}),
        ({"clients": "4", "rate": "8"}, {"clients": 4, "rate": 8.0}),
    ],
)
def test_from_strings_parses(values: dict, expected: dict) -> None:
    d = Demo.from_strings(values)
    for name, value in expected.items():
        got = getattr(d, name)
        assert got == value and type(got) is type(value), (name, got)
    untouched = {f.name for f in dataclasses.fields(Demo)} - set(expected)
    for name in untouched:
        assert getattr(d, name) == getattr(Demo(), name)


def test_from_strings_float_range() -> None:
    @dataclass(frozen=True)
    class F(Params):
        loads: tuple[float, ...] = param((0.5,), help="loads", gt=0, lt=1)

    assert F.from_strings({"loads": "0.25:0.75:0.25"}).loads == (0.25, 0.5, 0.75)
    assert F.from_strings({"loads": "0.1,0.9"}).loads == (0.1, 0.9)
    with pytest.raises(ParameterError) as err:
        F.from_strings({"loads": "0.5,1"})
    assert err.value.parameter == "loads" and "floats > 0 and < 1" in err.value.message


def test_from_strings_on_a_base() -> None:
    base = Demo(clients=5, policy="lifo")
    d = Demo.from_strings({"rate": "3"}, base=base)
    assert (d.clients, d.policy, d.rate) == (5, "lifo", 3.0)
    assert base.rate == 2.0


@pytest.mark.parametrize(
    "values,field,message",
    [
        ({"clients": "2.5"}, "clients", "must be an integer, got '2.5'"),
        ({"clients": "many"}, "clients", "must be an integer, got 'many'"),
        ({"clients": "none"}, "clients", "must be an integer, got 'none'"),
        ({"clients": "0"}, "clients", "must be an integer >= 1, got 0"),
        ({"limit": "lots"}, "limit", "must be an integer, or none (unlimited), got 'lots'"),
        ({"rate": "fast"}, "rate", "must be a number, got 'fast'"),
        ({"rate": "inf"}, "rate", "must be a finite"),
        ({"verbose": "maybe"}, "verbose", "must be true or false, got 'maybe'"),
        ({"sizes": "50:10:10"}, "sizes", "must be a list of ints (A,B,C or START:STOP:STEP)"),
        ({"sizes": "1:5:0"}, "sizes", "must be a list of ints"),
        ({"sizes": "1:5"}, "sizes", "must be a list of ints"),
        ({"sizes": "1,x"}, "sizes", "must be a list of ints"),
        # an empty item is a typo, not a shorter list (it used to be dropped silently)
        ({"sizes": "1,,2"}, "sizes", "item 2 of '1,,2' is empty"),
        ({"sizes": "1,"}, "sizes", "item 2 of '1,' is empty"),
        ({"sizes": ",1"}, "sizes", "item 1 of ',1' is empty"),
        # ranges are counted before they are built
        ({"sizes": "1:1000000000:1"}, "sizes", "has 1e+09 items; at most 10000"),
        ({"sizes": "1:inf:1"}, "sizes", "must be a list of ints"),
        ({"clients": "1e400"}, "clients", "must be an integer"),
        ({"clients": "10**400"}, "clients", "must be an integer"),
        ({"clients": "1" + "0" * 400}, "clients", "at most 9.01e+15 in size"),
        ({"rate": "1e400"}, "rate", "must be a finite number"),
        ({"sizes": ""}, "sizes", "must be a non-empty list of int"),
        ({"sizes": "0,1"}, "sizes", "must be ints >= 1, got 0"),
        ({"service": "exponential:-1"}, "service", "must be a rate > 0"),
        ({"service": "gamma:1,2"}, "service", "unknown distribution 'gamma'"),
        ({"policy": "random"}, "policy", "must be one of fifo, lifo"),
    ],
)
def test_from_strings_errors(values: dict, field: str, message: str) -> None:
    with pytest.raises(ParameterError) as err:
        Demo.from_strings(values)
    assert err.value.parameter == field
    assert message in err.value.message, err.value.message


@pytest.mark.parametrize("name", ["bogus", "secret", "Clients"])
def test_from_strings_unknown_parameter(name: str) -> None:
    with pytest.raises(ParameterError) as err:
        Demo.from_strings({name: "1"})
    assert err.value.parameter == name
    assert err.value.message.startswith("unknown parameter")
    known = err.value.message.split("known: ", 1)[1].split(", ")
    assert known == ["clients", "rate", "limit", "policy", "verbose", "service", "sizes", "label"]


def test_scenario_hint_is_included() -> None:
    @dataclass(frozen=True)
    class Hinted(Params):
        n: int = param(1, help="n")

        @classmethod
        def scenario_hint(cls) -> str:
            return "scenario 'x': "

    with pytest.raises(ParameterError, match="unknown parameter; scenario 'x': known: n"):
        Hinted.from_strings({"m": "2"})


# --- describe and to_dict --------------------------------------------------------------------
def test_describe_rows() -> None:
    # bounds shown include what every model can run (issue 16: describe shows the real limits)
    rows = {row.name: row for row in Demo.describe()}
    assert list(rows) == ["clients", "rate", "limit", "policy", "verbose", "service", "sizes", "label"]
    assert all(isinstance(r, ParamInfo) for r in rows.values())
    assert rows["clients"] == ParamInfo("clients", "int", "10", "", ">= 1 (at most 1e+06)", "Number of clients")
    assert rows["rate"] == ParamInfo("rate", "float", "2", "1/s", "> 0 and <= 1000 (at least 1e-09)",
                                     "Arrival rate")
    assert rows["limit"] == ParamInfo("limit", "int", "none", "", ">= 0 (at most 1e+06) or none (unlimited)",
                                      "Connection limit")
    assert rows["policy"] == ParamInfo("policy", "str", "fifo", "", "one of fifo, lifo", "Queue discipline")
    assert rows["verbose"] == ParamInfo("verbose", "bool", "False", "", "true or false", "Chatty output")
    assert rows["service"] == ParamInfo("service", "distribution", "exponential:1", "s", SPEC_HELP, "Service time")
    assert rows["sizes"] == ParamInfo("sizes", "list of int", "1,2", "",
                                      "each >= 1 (at most 1e+06) as A,B,C or START:STOP:STEP (STOP included)",
                                      "Cluster sizes")
    assert rows["label"].allowed == "any"


def test_to_dict_is_jsonable_and_complete() -> None:
    d = Demo(limit=3, sizes=(4, 8), service=Uniform(1, 2), verbose=True)
    out = d.to_dict()
    assert out == {"clients": 10, "rate": 2.0, "limit": 3, "policy": "fifo", "verbose": True,
                   "service": "uniform:1,2", "sizes": [4, 8], "label": "run", "secret": 0}
    assert json.loads(json.dumps(out)) == out
    assert Demo().to_dict()["limit"] is None


def test_to_dict_round_trips_through_from_strings() -> None:
    d = Demo(clients=3, rate=0.5, limit=9, policy="lifo", verbose=True, service=Uniform(0.5, 1.5), sizes=(2, 3))
    texts = {k: ("none" if v is None else ",".join(map(str, v)) if isinstance(v, list) else str(v))
             for k, v in d.to_dict().items() if k != "secret"}
    assert Demo.from_strings(texts) == d


# --- issue 16: numpy scalars, huge numbers, distributions' means, work estimates ----------------
def test_numpy_scalars_are_accepted_as_the_numbers_they_are() -> None:
    import numpy as np

    d = Demo(clients=np.int64(5), rate=np.float32(2.5), sizes=np.array([3, 4]).tolist(), verbose=np.bool_(True),
             limit=np.float64(7.0))
    assert (d.clients, d.rate, d.limit, d.verbose) == (5, 2.5, 7, True)
    assert type(d.clients) is int and type(d.rate) is float and type(d.limit) is int and type(d.verbose) is bool
    assert Demo(sizes=(np.int32(2), np.int64(3))).sizes == (2, 3)
    assert error(clients=np.float64(2.5)).message == "must be an integer >= 1, got 2.5"
    assert error(clients=np.bool_(True)).parameter == "clients"


def test_huge_python_numbers_are_refused_in_one_line() -> None:
    assert "too large for a float" in error(rate=10**400).message
    assert "at most 9.01e+15 in size" in error(clients=10**400).message
    assert len(str(error(clients=10**400))) < 200
    assert "finite" in error(rate=1e308 * 10).message


def test_distribution_bounds_apply_to_the_mean() -> None:
    @dataclass(frozen=True)
    class Lat(Params):
        latency: Distribution = param(Constant(0.02), help="latency", unit="s", ge=1e-4)

    assert Lat(latency=Uniform(0.0, 0.01)).latency.mean == 0.005
    with pytest.raises(ParameterError) as err:
        Lat.from_strings({"latency": "constant:0"})
    assert err.value.parameter == "latency" and "mean >= 0.0001 s" in err.value.message
    with pytest.raises(ParameterError) as err:
        Lat.from_strings({"latency": "exponential:5e-324"})
    assert "finite mean" in err.value.message
    assert "with mean >= 0.0001" in Lat.describe()[0].allowed


def test_work_estimate_refuses_names_the_parameter_and_the_largest_value_unless_forced() -> None:
    from sim.core.params import REASONABLE_SECONDS, WorkError, WorkModel

    @dataclass(frozen=True)
    class Big(Params):
        work = WorkModel(seconds_at_defaults=1.0, factors=("clients", "horizon"))
        clients: int = param(1000, help="clients", ge=1)
        horizon: float = param(10.0, help="time", unit="s", gt=0)

    Big(clients=1000 * int(REASONABLE_SECONDS)).check_work()  # exactly the budget: runs
    with pytest.raises(WorkError) as err:
        Big(clients=10**9).check_work()
    assert err.value.parameter == "clients"
    assert "about 1e+06 s" in err.value.message and f"is {1000 * int(REASONABLE_SECONDS)}" in err.value.message
    with pytest.raises(WorkError) as err:
        Big(clients=2000, horizon=1e6).check_work()  # the product counts; horizon grew most
    assert err.value.parameter == "horizon" and "is 3e+03" in err.value.message
    Big(clients=10**9).check_work(force=True)
