"""The simulation core: context and random streams, the environment and its timer calendar,
distributions, network, metrics, parameters, results and the scenario registry. Nothing here knows about a real system.

The names below are imported on first use (PEP 562): ``from sim.core.errors import UserError``
(the command line's first import) does not pull in numpy, pandas or scipy.
"""

# public name -> submodule of sim.core that defines it
_LAZY = {
    "Context": "context",
    **dict.fromkeys(["Environment", "RealtimeEnvironment"], "environment"),
    **dict.fromkeys(["Constant", "Distribution", "Empirical", "Exponential", "LogNormal", "TruncatedNormal",
                     "Uniform", "parse_distribution"], "distributions"),
    **dict.fromkeys(["ParameterError", "UnknownScenarioError", "UserError"], "errors"),
    "Metrics": "metrics",
    **dict.fromkeys(["LinkSpec", "Message", "Network"], "network"),
    **dict.fromkeys(["Params", "expand_names", "param"], "params"),
    "Result": "result",
    "mean_ci": "stats",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'sim.core' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"sim.core.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
