"""Access to the presets in the project's ``data/`` folder (each preset cites its source)."""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


@lru_cache(maxsize=None)
def _read(name: str) -> dict:
    with open(DATA_DIR / f"{name}.json", encoding="utf-8") as f:
        return {k: v for k, v in json.load(f).items() if not k.startswith("_")}


def load(name: str) -> dict:
    """The JSON file ``data/NAME.json`` as a dict (keys starting with ``_`` are comments).

    Each call gets its own copy: a caller that changes it cannot change what others read."""
    return copy.deepcopy(_read(name))
