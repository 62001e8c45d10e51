"""Probability distributions of durations and sizes, with validated parameters.

A distribution is a small immutable description (``Exponential(rate=2.0)``) that can be bound
to a random stream (``dist.bind(ctx.rng("arrivals"))``); the bound copy has ``sample()``.
Samples are drawn from numpy in blocks and handed out one at a time, which keeps a scalar
draw about as cheap as Python's ``random`` while staying reproducible from the seed.
"""

from __future__ import annotations

import math
from itertools import chain, islice
from typing import Callable, Iterator, Sequence

import numpy as np

from sim.core.errors import ParameterError

_BLOCK = 1024


class Distribution:
    """Base class: subclasses define ``mean``, ``_draw(rng, n)`` and ``spec()``."""

    name: str = ""
    __slots__ = ("_rng", "_stream")

    def __init__(self) -> None:
        self._rng: np.random.Generator | None = None
        self._stream: Iterator[float] | None = None

    # --- description --------------------------------------------------------------------
    @property
    def mean(self) -> float:
        raise NotImplementedError

    def spec(self) -> str:
        """The text form accepted by :func:`parse_distribution`, e.g. ``exponential:2``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec()!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.spec() == self.spec()  # type: ignore[union-attr]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.spec()))

    def __str__(self) -> str:
        return self.spec()

    # --- sampling -----------------------------------------------------------------------
    def bind(self, rng: np.random.Generator) -> "Distribution":
        """A copy of this distribution that draws from ``rng``."""
        clone = object.__new__(type(self))
        for cls in type(self).__mro__:
            for slot in getattr(cls, "__slots__", ()):
                if hasattr(self, slot):
                    setattr(clone, slot, getattr(self, slot))
        clone._rng = rng
        # the values, block after block of _BLOCK draws, as one iterator: its __next__ is a C call,
        # which a storm's millions of latency draws prefer to a Python method (see sampler)
        clone._stream = chain.from_iterable(clone._blocks())
        return clone

    def _blocks(self) -> Iterator[list[float]]:
        rng = self._rng
        while True:
            yield self._draw(rng, _BLOCK).tolist()

    def sample(self) -> float:
        """One value. The distribution must have been bound to a random stream."""
        stream = self._stream
        if stream is None:
            raise RuntimeError(f"{self!r} is not bound to a random stream: use .bind(ctx.rng(name))")
        return next(stream)

    def sampler(self) -> Callable[[], float]:
        """A function that draws the next value, as :meth:`sample` does, from the same stream but
        without a Python call per value (for hot paths)."""
        if type(self).sample is not Distribution.sample:  # e.g. Constant: its own sample(), no stream
            return self.sample
        if self._stream is None:
            return self.sample  # raises the unbound error on first use
        return self._stream.__next__

    def samples(self, n: int) -> np.ndarray:
        """``n`` values at once (from the same stream as :meth:`sample`)."""
        if type(self).sample is not Distribution.sample:  # e.g. Constant: its own sample(), no stream
            return np.array([self.sample() for _ in range(n)], dtype=float)
        stream = self._stream
        if stream is None:
            raise RuntimeError(f"{self!r} is not bound to a random stream: use .bind(ctx.rng(name))")
        return np.fromiter(islice(stream, n), dtype=float, count=n)

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError


def _num(value: float) -> str:
    """Shortest text that reads back as exactly ``value`` (so a saved spec reproduces a run)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _check(name: str, value: float, ok: bool, allowed: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok:
        raise ParameterError(name, f"must be {allowed}, got {value!r}")
    return float(value)


class Constant(Distribution):
    """Always ``value``."""

    name = "constant"
    __slots__ = ("value",)

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = _check("constant.value", value, value >= 0, "a number >= 0")

    @property
    def mean(self) -> float:
        return self.value

    def spec(self) -> str:
        return f"constant:{_num(self.value)}"

    def sample(self) -> float:
        return self.value

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value)


class Uniform(Distribution):
    """Uniform on ``[low, high]``."""

    name = "uniform"
    __slots__ = ("low", "high")

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        self.low = _check("uniform.low", low, low >= 0, "a number >= 0")
        self.high = _check("uniform.high", high, high >= low, f"a number >= low ({low})")

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    def spec(self) -> str:
        return f"uniform:{_num(self.low)},{_num(self.high)}"

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, n)


class Exponential(Distribution):
    """Exponential with ``rate`` events per second (mean ``1/rate``)."""

    name = "exponential"
    __slots__ = ("rate",)

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = _check("exponential.rate", rate, rate > 0, "a rate > 0 (per second)")

    @property
    def mean(self) -> float:
        return 1.0 / self.rate

    def spec(self) -> str:
        return f"exponential:{_num(self.rate)}"

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(1.0 / self.rate, n)


def _phi(x: float) -> float:
    return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def _cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


class TruncatedNormal(Distribution):
    """Normal(``mu``, ``sigma``) conditioned on being >= 0.

    Drawn by inverting the CDF of the truncated law, so the cost does not grow when most of the
    normal's mass is below zero (rejection sampling would need 1/P(X >= 0) draws per value).
    """

    name = "normal"
    __slots__ = ("mu", "sigma")

    def __init__(self, mu: float, sigma: float) -> None:
        super().__init__()
        self.mu = _check("normal.mu", mu, True, "a finite number")
        self.sigma = _check("normal.sigma", sigma, sigma >= 0, "a number >= 0")
        if self.sigma == 0 and self.mu < 0:
            raise ParameterError("normal.mu", f"must be >= 0 when sigma is 0, got {mu!r}")
        if self.sigma > 0 and self.mu / self.sigma < -20:
            raise ParameterError("normal.mu", f"must be at least -20 sigma ({-20 * self.sigma:g}), got {mu!r}")

    @property
    def mean(self) -> float:
        if self.sigma == 0:
            return self.mu
        alpha = -self.mu / self.sigma
        return self.mu + self.sigma * _phi(alpha) / (1 - _cdf(alpha))

    def spec(self) -> str:
        return f"normal:{_num(self.mu)},{_num(self.sigma)}"

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.sigma == 0:
            return np.full(n, self.mu)
        # X = mu - sigma * Y with Y standard normal conditioned on Y <= mu/sigma; drawing Y from the
        # lower tail keeps full precision even when P(X >= 0) is tiny.
        from scipy.special import ndtr, ndtri  # here: scipy costs a quarter second at start-up

        upper = ndtr(self.mu / self.sigma)
        u = 1.0 - rng.random(n)  # in (0, 1]: never ndtri(0) = -inf
        return np.maximum(self.mu - self.sigma * ndtri(u * upper), 0.0)


class LogNormal(Distribution):
    """exp(Normal(``mu``, ``sigma``)): ``mu`` and ``sigma`` are those of the logarithm.

    ``LogNormal.from_mean(mean, cv)`` builds one from its mean and coefficient of variation.
    """

    name = "lognormal"
    __slots__ = ("mu", "sigma")

    def __init__(self, mu: float, sigma: float) -> None:
        super().__init__()
        self.mu = _check("lognormal.mu", mu, True, "a finite number")
        self.sigma = _check("lognormal.sigma", sigma, sigma >= 0, "a number >= 0")
        try:
            math.exp(self.mu + self.sigma**2 / 2)
        except OverflowError:
            raise ParameterError("lognormal.sigma", f"is too large for mu={mu!r}: the mean overflows") from None

    @classmethod
    def from_mean(cls, mean: float, cv: float) -> "LogNormal":
        _check("lognormal.mean", mean, mean > 0, "a number > 0")
        _check("lognormal.cv", cv, cv >= 0, "a number >= 0")
        sigma2 = math.log(1 + cv * cv)
        return cls(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))

    @property
    def mean(self) -> float:
        return math.exp(self.mu + self.sigma**2 / 2)

    def spec(self) -> str:
        return f"lognormal:{_num(self.mu)},{_num(self.sigma)}"

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(self.mu, self.sigma, n)


class Empirical(Distribution):
    """Resamples the observed ``values`` (each equally likely)."""

    name = "empirical"
    __slots__ = ("values",)

    def __init__(self, values: Sequence[float]) -> None:
        super().__init__()
        if len(values) == 0:
            raise ParameterError("empirical.values", "must hold at least one value")
        self.values = tuple(_check("empirical.values", v, v >= 0, "numbers >= 0") for v in values)

    @property
    def mean(self) -> float:
        return math.fsum(self.values) / len(self.values)

    def spec(self) -> str:
        return "empirical:" + ",".join(_num(v) for v in self.values)

    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(np.asarray(self.values), n)


KINDS: dict[str, type[Distribution]] = {
    cls.name: cls for cls in (Constant, Uniform, Exponential, TruncatedNormal, LogNormal, Empirical)
}
_ARITY = {"constant": 1, "uniform": 2, "exponential": 1, "normal": 2, "lognormal": 2}
SPEC_HELP = (
    "constant:V | uniform:LOW,HIGH | exponential:RATE | normal:MU,SIGMA (truncated at 0) | "
    "lognormal:MU,SIGMA | empirical:V1,V2,..."
)


def parse_distribution(text: str, *, parameter: str = "distribution") -> Distribution:
    """Parse ``kind:a,b`` (see ``SPEC_HELP``); a bare number means a constant."""
    text = text.strip()
    kind, _, args = text.partition(":")
    kind = kind.strip().lower()
    try:
        if not args:
            return Constant(float(kind))
        numbers = [float(a) for a in args.split(",")]
    except ValueError:
        raise ParameterError(parameter, f"must be {SPEC_HELP}, got {text!r}") from None
    if kind not in KINDS:
        raise ParameterError(parameter, f"unknown distribution {kind!r}; use {SPEC_HELP}")
    if kind != "empirical" and len(numbers) != _ARITY[kind]:
        raise ParameterError(parameter, f"{kind} takes {_ARITY[kind]} number(s), got {text!r}; use {SPEC_HELP}")
    try:
        return Empirical(numbers) if kind == "empirical" else KINDS[kind](*numbers)
    except ParameterError as err:
        raise ParameterError(parameter, err.message) from None
