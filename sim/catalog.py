"""What ``list`` and ``describe`` show, without importing every scenario each time.

Importing the scenarios pulls in numpy, pandas, scipy and pycrdt (seconds on a cold disk).
The catalog (names, descriptions and the ``describe`` table of every scenario) is computed
from the registry once and kept in ``sim/__pycache__/catalog.json``, next to Python's own
bytecode cache, under a fingerprint of every source and data file (path, size, modification
time). Any edit to ``sim/`` or ``data/`` changes the fingerprint and the next call rebuilds
it; where the cache cannot be written the catalog is simply computed each time.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = PACKAGE_DIR.parent / "data"
CACHE_FILE = PACKAGE_DIR / "__pycache__" / "catalog.json"
FORMAT = 2  # bump when the cached structure changes


def fingerprint() -> str:
    """A digest of every ``.py`` file under ``sim/`` and every file under ``data/`` (path, size, mtime)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{FORMAT} {sys.version} {PACKAGE_DIR}".encode())
    # the checkout's data/ (an editable install) or the presets installed inside the package
    for root, suffixes in ((PACKAGE_DIR, (".py", ".json")), (DATA_DIR, None)):
        stack = [root]
        while stack:
            folder = stack.pop()
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                if entry.name.startswith(".") or entry.name == "__pycache__":
                    continue
                if entry.is_dir():
                    stack.append(entry.path)
                elif suffixes is None or entry.name.endswith(suffixes):
                    st = entry.stat()
                    digest.update(f"{entry.path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _compute() -> dict:
    from sim.core.distributions import SPEC_HELP
    from sim.core.registry import list_scenarios

    scenarios = []
    for sc in list_scenarios():
        scenarios.append({"name": sc.name, "description": sc.description, "module": sc.function.__module__,
                          "params": [vars(p) for p in sc.params_type.describe()]})
    return {"distribution_grammar": SPEC_HELP, "scenarios": scenarios}


def load() -> dict:
    """``{"distribution_grammar": str, "scenarios": [{"name", "description", "module", "params": [...]}]}``."""
    key = fingerprint()
    try:
        cached = json.loads(CACHE_FILE.read_text(encoding="utf-8"))
        if cached.get("fingerprint") == key:
            return cached["catalog"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    catalog = _compute()
    try:
        CACHE_FILE.parent.mkdir(exist_ok=True)
        temporary = CACHE_FILE.with_name(f".catalog-{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"fingerprint": key, "catalog": catalog}), encoding="utf-8")
        os.replace(temporary, CACHE_FILE)  # atomic: a concurrent reader sees the old or the new file
    except OSError:
        pass  # a read-only installation: compute each time
    return catalog


def names() -> list[str]:
    return [s["name"] for s in load()["scenarios"]]


def module_of(name: str) -> str | None:
    """The module that registers scenario ``name`` (None if the catalog does not know it): the
    registry's locator, so that ``run NAME`` imports that module, not every scenario."""
    for entry in load()["scenarios"]:
        if entry["name"] == name:
            return entry.get("module")
    return None


def find(name: str) -> dict:
    """The catalog entry of ``name``; :class:`UnknownScenarioError` lists the known ones."""
    catalog = load()
    for entry in catalog["scenarios"]:
        if entry["name"] == name:
            return entry
    from sim.core.errors import UnknownScenarioError

    raise UnknownScenarioError(name, [s["name"] for s in catalog["scenarios"]])
