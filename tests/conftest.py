"""Shared test helpers."""

import importlib.util
from pathlib import Path

import pytest

SOLUTIONS = Path(__file__).resolve().parent.parent / "notebooks" / "solutions"


@pytest.fixture(scope="session")
def load_solutions():
    """``load_solutions(name)`` imports ``notebooks/solutions/NAME.py`` (not a package) by its path."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, SOLUTIONS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
