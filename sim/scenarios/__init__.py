"""Scenarios: one module per course question, plus ``queue`` to validate the simulator.

Importing this package registers every scenario (see :mod:`sim.core.registry`): each module
in this folder is imported, so a new scenario module needs no edit here.
"""

import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    importlib.import_module(f"{__name__}.{_module}")
