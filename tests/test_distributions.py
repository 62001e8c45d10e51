"""Distributions: sample means against their ``mean``, parameter validation, text round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

from sim.core.distributions import (
    SPEC_HELP, Constant, Distribution, Empirical, Exponential, LogNormal, TruncatedNormal, Uniform,
    parse_distribution,
)
from sim.core.errors import ParameterError

N = 20_000
HYPO = settings(derandomize=True, deadline=None, max_examples=150, database=None)


def rng(seed: int = 12345) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


def assert_mean_in_ci(sample: np.ndarray, expected: float, z: float = 4.0) -> None:
    """``expected`` lies within ``z`` standard errors (from the sample's own std) of the sample mean."""
    se = sample.std(ddof=1) / math.sqrt(len(sample))
    assert abs(sample.mean() - expected) <= z * se, (sample.mean(), expected, se)


# --- sample means ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "dist",
    [
        Uniform(1.0, 3.0),
        Uniform(0.0, 0.001),
        Exponential(2.0),
        Exponential(0.1),
        TruncatedNormal(1.0, 2.0),   # heavily truncated: mean well above mu
        TruncatedNormal(-2.0, 1.0),  # mostly truncated
        TruncatedNormal(5.0, 1.0),   # barely truncated
        LogNormal(0.0, 0.5),
        LogNormal.from_mean(0.2, 1.5),
        Empirical([1.0, 2.0, 3.0, 10.0]),
        Empirical([0.0, 0.5]),
    ],
    ids=repr,
)
def test_sample_mean_matches_mean(dist: Distribution) -> None:
    sample = dist.bind(rng()).samples(N)
    assert sample.shape == (N,)
    assert np.all(sample >= 0)
    assert_mean_in_ci(sample, dist.mean)


def test_constant_always_its_value_even_unbound() -> None:
    d = Constant(2.5)
    assert d.mean == 2.5
    assert d.sample() == 2.5  # a constant needs no random stream
    assert set(d.bind(rng()).samples(100)) == {2.5}


def test_uniform_stays_in_bounds_and_covers_them() -> None:
    sample = Uniform(1.0, 3.0).bind(rng()).samples(N)
    assert sample.min() >= 1.0 and sample.max() <= 3.0
    assert sample.min() < 1.01 and sample.max() > 2.99


def test_exponential_variance_matches() -> None:
    # exponential: std == mean; check the std estimate is within a generous CI (CV of s^2 ~ sqrt(8/n))
    sample = Exponential(4.0).bind(rng(7)).samples(N)
    assert sample.std(ddof=1) == pytest.approx(0.25, rel=4 * math.sqrt(8 / N) / 2)


def test_empirical_only_resamples_its_values_uniformly() -> None:
    values = [1.0, 2.0, 3.0, 10.0]
    sample = Empirical(values).bind(rng(3)).samples(N)
    assert set(np.unique(sample)) == set(values)
    counts = np.array([(sample == v).sum() for v in values])
    # each value has probability 1/4: chi-square test at a very small alpha
    assert stats.chisquare(counts).pvalue > 1e-4


# --- truncated normal --------------------------------------------------------------------------
@pytest.mark.parametrize("mu,sigma", [(1.0, 2.0), (-2.0, 1.0), (0.0, 1.0), (3.0, 0.5), (-4.9, 1.0)])
def test_truncated_normal_mean_formula_matches_scipy(mu: float, sigma: float) -> None:
    expected = stats.truncnorm(a=(0 - mu) / sigma, b=np.inf, loc=mu, scale=sigma).mean()
    # 1 - Phi(alpha) loses a few digits to cancellation far in the tail (mu = -4.9 sigma): 1e-7 is ample
    assert TruncatedNormal(mu, sigma).mean == pytest.approx(expected, rel=1e-7)


def test_truncated_normal_zero_sigma_is_constant() -> None:
    d = TruncatedNormal(1.5, 0.0)
    assert d.mean == 1.5
    assert set(d.bind(rng()).samples(50)) == {1.5}


@settings(HYPO, max_examples=60)
@given(sigma=st.floats(0.01, 3), z=st.floats(-3, 3), seed=st.integers(0, 2**32 - 1))
def test_truncated_normal_never_negative(sigma: float, z: float, seed: int) -> None:
    d = TruncatedNormal(z * sigma, sigma)
    sample = d.bind(rng(seed)).samples(2000)
    assert sample.min() >= 0


def test_truncated_normal_deep_truncation_samples_quickly() -> None:
    import signal

    class TooSlow(Exception):
        pass

    def alarm(signum, frame):
        raise TooSlow("first sample took more than 1 s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        value = TruncatedNormal(-4.9, 1.0).bind(rng()).sample()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert value >= 0


def test_truncated_normal_zero_sigma_is_exactly_mu() -> None:
    assert TruncatedNormal(0.0, 0.0).bind(rng()).samples(10).tolist() == [0.0] * 10


# --- lognormal ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mean,cv", [(1.0, 0.0), (2.0, 0.5), (0.05, 1.0), (300.0, 3.0)])
def test_lognormal_from_mean(mean: float, cv: float) -> None:
    d = LogNormal.from_mean(mean, cv)
    assert d.mean == pytest.approx(mean, rel=1e-12)
    assert d.sigma == pytest.approx(math.sqrt(math.log(1 + cv * cv)), rel=1e-12)
    # the coefficient of variation of a lognormal is sqrt(exp(sigma^2) - 1)
    assert math.sqrt(math.exp(d.sigma**2) - 1) == pytest.approx(cv, abs=1e-12)


def test_lognormal_from_mean_samples_have_that_log_mean_and_sigma() -> None:
    d = LogNormal.from_mean(2.0, 0.5)
    logs = np.log(d.bind(rng(5)).samples(N))
    assert_mean_in_ci(logs, d.mu)  # log of a lognormal is exactly normal: a clean CI
    assert logs.std(ddof=1) == pytest.approx(d.sigma, rel=4 * math.sqrt(1 / (2 * N)))


@pytest.mark.parametrize("mean,cv,param", [(0.0, 1.0, "lognormal.mean"), (-1.0, 1.0, "lognormal.mean"),
                                           (1.0, -0.1, "lognormal.cv")])
def test_lognormal_from_mean_rejects(mean: float, cv: float, param: str) -> None:
    with pytest.raises(ParameterError) as err:
        LogNormal.from_mean(mean, cv)
    assert err.value.parameter == param


# --- binding and reproducibility -----------------------------------------------------------
def test_unbound_sample_raises() -> None:
    for d in (Uniform(0, 1), Exponential(1), TruncatedNormal(1, 1), LogNormal(0, 1), Empirical([1, 2])):
        with pytest.raises(RuntimeError, match="not bound"):
            d.sample()


def test_bind_returns_a_copy_and_leaves_original_unbound() -> None:
    d = Exponential(3.0)
    bound = d.bind(rng())
    assert bound is not d and bound == d
    bound.sample()
    with pytest.raises(RuntimeError):
        d.sample()


def test_same_stream_seed_same_numbers_and_sample_matches_samples() -> None:
    d = LogNormal(0.0, 1.0)
    a = d.bind(rng(42)).samples(3000)          # spans several internal blocks
    b_bound = d.bind(rng(42))
    b = np.array([b_bound.sample() for _ in range(3000)])
    assert np.array_equal(a, b)
    c = d.bind(rng(43)).samples(3000)
    assert not np.array_equal(a, c)


def test_two_bindings_to_separate_generators_do_not_share_buffers() -> None:
    d = Uniform(0, 1)
    x, y = d.bind(rng(1)), d.bind(rng(1))
    first = [x.sample() for _ in range(5)]
    assert [y.sample() for _ in range(5)] == first


# --- validation ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make,param",
    [
        (lambda: Exponential(-1.0), "exponential.rate"),
        (lambda: Exponential(0.0), "exponential.rate"),
        (lambda: Exponential(math.inf), "exponential.rate"),
        (lambda: Exponential(math.nan), "exponential.rate"),
        (lambda: Exponential(True), "exponential.rate"),
        (lambda: Constant(-0.5), "constant.value"),
        (lambda: Uniform(-1.0, 1.0), "uniform.low"),
        (lambda: Uniform(2.0, 1.0), "uniform.high"),
        (lambda: TruncatedNormal(1.0, -0.1), "normal.sigma"),
        (lambda: TruncatedNormal(-1.0, 0.0), "normal.mu"),
        (lambda: TruncatedNormal(-21.0, 1.0), "normal.mu"),
        (lambda: TruncatedNormal(math.nan, 1.0), "normal.mu"),
        (lambda: LogNormal(0.0, -1.0), "lognormal.sigma"),
        (lambda: Empirical([]), "empirical.values"),
        (lambda: Empirical([1.0, -2.0]), "empirical.values"),
    ],
)
def test_bad_parameters_raise_naming_the_parameter(make, param: str) -> None:
    with pytest.raises(ParameterError) as err:
        make()
    assert err.value.parameter == param
    assert str(err.value).startswith(param + ": ")


def test_uniform_high_message_says_what_is_allowed() -> None:
    with pytest.raises(ParameterError, match=r"uniform\.high: must be a number >= low \(2"):
        Uniform(2.0, 1.0)


def test_parameter_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Exponential(-1)


# --- parsing ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text,expected",
    [
        ("exponential:2", Exponential(2.0)),
        ("  Exponential : 2 ", Exponential(2.0)),
        ("uniform:1,3", Uniform(1.0, 3.0)),
        ("normal:1,0.5", TruncatedNormal(1.0, 0.5)),
        ("lognormal:-1,0.25", LogNormal(-1.0, 0.25)),
        ("empirical:1,2,2,5", Empirical([1, 2, 2, 5])),
        ("constant:0.5", Constant(0.5)),
        ("0.25", Constant(0.25)),
        ("3", Constant(3.0)),
    ],
)
def test_parse(text: str, expected: Distribution) -> None:
    d = parse_distribution(text)
    assert type(d) is type(expected) and d == expected
    assert d.mean == pytest.approx(expected.mean)


@pytest.mark.parametrize(
    "dist",
    [Constant(0), Constant(1.5), Uniform(0, 2), Exponential(2), Exponential(0.001), TruncatedNormal(1, 0.5),
     TruncatedNormal(-1, 2), LogNormal(-2, 0.75), Empirical([0.5, 1, 1, 4])],
    ids=repr,
)
def test_parse_round_trips_spec(dist: Distribution) -> None:
    back = parse_distribution(dist.spec())
    assert type(back) is type(dist)
    assert back == dist
    assert back.spec() == dist.spec()
    assert back.mean == dist.mean


# values with at most six significant digits, which ``spec()`` (``%g``) renders exactly
_nice = st.integers(0, 999_999).map(lambda k: k / 1000)
_nice_pos = st.integers(1, 999_999).map(lambda k: k / 1000)


@st.composite
def nice_distributions(draw) -> Distribution:
    kind = draw(st.sampled_from(["constant", "uniform", "exponential", "normal", "lognormal", "empirical"]))
    if kind == "constant":
        return Constant(draw(_nice))
    if kind == "uniform":
        a, b = sorted((draw(_nice), draw(_nice)))
        return Uniform(a, b)
    if kind == "exponential":
        return Exponential(draw(_nice_pos))
    if kind == "normal":
        sigma = draw(_nice_pos)
        mu = draw(st.integers(-min(4 * int(sigma * 1000), 999_999), 999_999).map(lambda k: k / 1000))
        return TruncatedNormal(mu, sigma)
    if kind == "lognormal":
        sigma = draw(st.integers(0, 5000).map(lambda k: k / 1000))
        return LogNormal(draw(st.integers(-999_999, 999_999).map(lambda k: k / 100_000)), sigma)
    return Empirical(draw(st.lists(_nice, min_size=1, max_size=8)))


@HYPO
@given(nice_distributions())
def test_parse_round_trips_spec_property(dist: Distribution) -> None:
    back = parse_distribution(dist.spec())
    assert type(back) is type(dist)
    for slot in type(dist).__slots__:
        assert getattr(back, slot) == getattr(dist, slot), slot
    assert back.mean == pytest.approx(dist.mean, rel=1e-12)


def test_spec_round_trip_keeps_full_precision() -> None:
    # e.g. LogNormal.from_mean gives parameters with many digits; Params.to_dict() records spec()
    d = LogNormal.from_mean(0.1, 1.0)
    back = parse_distribution(d.spec())
    assert (back.mu, back.sigma) == (d.mu, d.sigma)


def test_distinct_parameters_are_not_equal() -> None:
    assert Exponential(1.0) != Exponential(1.0000001)


def test_lognormal_huge_sigma_is_rejected_or_has_infinite_mean() -> None:
    try:
        d = LogNormal(0.0, 40.0)
    except ParameterError:
        return
    assert d.mean == math.inf


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("poisson:3", "unknown distribution 'poisson'"),
        ("exponential:1,2", "exponential takes 1 number(s)"),
        ("uniform:1", "uniform takes 2 number(s)"),
        ("normal:1,2,3", "normal takes 2 number(s)"),
        ("lognormal:1", "lognormal takes 2 number(s)"),
        ("constant:1,2", "constant takes 1 number(s)"),
        ("exponential:abc", "must be constant:V"),
        ("exponential:", "must be constant:V"),
        ("fast", "must be constant:V"),
        ("", "must be constant:V"),
        ("exponential:-2", "must be a rate > 0"),
        ("uniform:3,1", "must be a number >= low"),
        ("normal:1,-1", "must be a number >= 0"),
        ("empirical:1,-1", "numbers >= 0"),
        ("constant:nan", "must be"),
        ("exponential:inf", "must be a rate > 0"),
    ],
)
def test_parse_errors_name_the_parameter(text: str, fragment: str) -> None:
    with pytest.raises(ParameterError) as err:
        parse_distribution(text, parameter="service_time")
    assert err.value.parameter == "service_time"
    assert fragment in err.value.message


def test_parse_error_lists_the_accepted_forms() -> None:
    with pytest.raises(ParameterError) as err:
        parse_distribution("weibull:1,2")
    assert err.value.parameter == "distribution"
    assert SPEC_HELP in err.value.message
