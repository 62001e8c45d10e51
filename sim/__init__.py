"""A discrete-event simulator for a course on real-time systems.

Layers, each knowing only those below it: ``sim.core`` (context, distributions, network,
metrics, parameters, registry), ``sim.components`` (servers, clients and the other real
systems), ``sim.scenarios`` (one module per course question), and the presentation
(``sim.cli``, ``sim.course`` and the notebooks).

Quick use::

    import sim
    result = sim.run("queue", seed=1, arrival_rate=0.9)
    result.summary
    table = sim.sweep("queue", grid={"servers": [1, 2]}, seeds=range(20), workers=2)
    sim.sweep_summary(table)  # mean and 95 % confidence interval across seeds

``import sim`` stays light (the command line starts in a few hundredths of a second): the
registry imports its heavy parts when a scenario is looked up, and the names in ``_LAZY``
load on first use (PEP 562).
"""

__version__ = "0.1.0"

from sim.core.registry import add_source, get, list_scenarios, run, set_locator  # noqa: E402

add_source("sim.scenarios")  # the core never imports the scenarios itself: it is told where they are


def _locate(name: str) -> str | None:
    from sim import catalog  # its cache says which module registers ``name``: import that one alone

    return catalog.module_of(name)


set_locator(_locate)

# public name -> module that defines it (imported on first access); None: a submodule
_LAZY = {"theory": None, "sweep": "sim.sweeps", "sweep_summary": "sim.sweeps"}

__all__ = ["__version__", "get", "list_scenarios", "run", "sweep", "sweep_summary", "theory"]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'sim' has no attribute {name!r}")
    import importlib

    module = _LAZY[name]
    value = importlib.import_module(f"sim.{name}") if module is None else getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
