"""The presets of real systems (each cites its source), read from inside the installed package.

They live in the project's top-level ``data/`` folder, which ``pyproject.toml`` maps into the
package as ``sim.presets`` (``package-dir``), so they are found with :mod:`importlib.resources`
in an editable install, a non-editable ``pip install .`` and a wheel alike.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

PACKAGE = "sim.presets"


def _presets_dir():
    try:
        return resources.files(PACKAGE)
    except ModuleNotFoundError:
        # an editable install made before data/ was mapped into the package: reinstall
        # (`pip install -e .`) to use importlib.resources; meanwhile read the checkout's data/
        return Path(__file__).resolve().parent.parent / "data"


@lru_cache(maxsize=None)
def _read(name: str) -> dict:
    text = (_presets_dir() / f"{name}.json").read_text(encoding="utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def load(name: str) -> dict:
    """The preset ``data/NAME.json`` as a dict (keys starting with ``_`` are comments).

    Each call gets its own copy: a caller that changes it cannot change what others read."""
    return copy.deepcopy(_read(name))


def text(relative_path: str) -> str:
    """A preset that is not JSON (e.g. ``appsync/schema.graphql``), as text."""
    node = _presets_dir()
    for part in relative_path.split("/"):
        node = node / part
    return node.read_text(encoding="utf-8")
