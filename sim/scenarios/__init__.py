"""Scenarios: one module per course question, plus ``queue`` to validate the simulator.

The registry imports every module under this package when it needs them all (see
:mod:`sim.core.registry`), so a new scenario module needs no edit here; importing the package
itself imports none of them (``run X`` imports X's module alone).
"""
