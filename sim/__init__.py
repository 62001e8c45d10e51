"""A discrete-event simulator for a course on real-time systems.

Layers, each knowing only those below it: ``sim.core`` (context, distributions, network,
metrics, parameters, registry), ``sim.components`` (servers, clients and the other real
systems), ``sim.scenarios`` (one module per course question), and the presentation
(``sim.cli``, ``sim.course`` and the notebooks).

Quick use::

    import sim
    result = sim.run("queue", seed=1, arrival_rate=0.9)
    result.summary
"""

__version__ = "0.1.0"

from sim import theory  # noqa: E402
from sim.core.registry import add_source, get, list_scenarios, run  # noqa: E402

add_source("sim.scenarios")  # the core never imports the scenarios itself: it is told where they are

__all__ = ["__version__", "get", "list_scenarios", "run", "theory"]
