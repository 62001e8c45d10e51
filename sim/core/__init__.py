"""The simulation core: context and random streams, distributions, network, metrics,
parameters, results and the scenario registry. Nothing here knows about a real system."""

from sim.core.context import Context
from sim.core.distributions import (
    Constant, Distribution, Empirical, Exponential, LogNormal, TruncatedNormal, Uniform, parse_distribution,
)
from sim.core.errors import ParameterError, UnknownScenarioError, UserError
from sim.core.metrics import Metrics
from sim.core.network import LinkSpec, Message, Network
from sim.core.params import Params, expand_names, param
from sim.core.result import Result
from sim.core.stats import mean_ci

__all__ = [
    "Constant", "Context", "Distribution", "Empirical", "Exponential", "LinkSpec", "LogNormal", "Message",
    "Metrics", "Network", "ParameterError", "Params", "Result", "TruncatedNormal", "Uniform", "UnknownScenarioError",
    "UserError", "expand_names", "mean_ci", "param", "parse_distribution",
]
