"""Scenarios: one module per course question, plus ``queue`` to validate the simulator.

Importing this package registers every scenario (see :mod:`sim.core.registry`).
"""

from sim.scenarios import queue  # noqa: F401
