"""The scenario registry: kebab-case names -> functions ``(params, seed) -> Result``.

The core knows no scenario: the modules that hold scenarios are named to it with
:func:`add_source` (``sim/__init__`` names ``sim.scenarios``; another package can name its
own), and are imported, which registers their scenarios through :func:`scenario`, the first
time a scenario is looked up. A source that is a package is imported with every module under
it (names starting with ``_`` excepted). A locator (:func:`set_locator`, e.g. the CLI's cached
catalog) may say which module defines a name, so that looking one scenario up imports that
module alone rather than every scenario (seconds of numpy, pandas, scipy, pycrdt, lark ...).
"""

from __future__ import annotations

import importlib
import operator
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Generic, TypeVar

from sim.core.errors import ParameterError, UnknownScenarioError

if TYPE_CHECKING:  # imported where used: `import sim` (and the CLI's start-up) stays free of numpy
    from sim.core.params import Params
    from sim.core.result import Result

P = TypeVar("P", bound="Params")
DEFAULT_SEED = 1  # the one default seed of sim.run, Scenario.run and the command line
_KEBAB = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Scenario(Generic[P]):
    """A registered scenario."""

    name: str
    description: str
    params_type: type[P]
    function: Callable[[P, int], Result]

    def run(self, params: P | None = None, seed: int = DEFAULT_SEED, force: bool = False) -> Result:
        """Run with ``params`` (default: the defaults) and ``seed``.

        A run estimated to take far too long (``Params.check_work``) is refused unless ``force``.
        """
        if params is None:
            params = self.params_type()
        if not isinstance(params, self.params_type):
            raise TypeError(f"{self.name} takes {self.params_type.__name__}, got {type(params).__name__}")
        try:
            valid = not isinstance(seed, bool) and operator.index(seed) >= 0  # ints and numpy integers
        except TypeError:
            valid = False
        if not valid:
            raise ParameterError("seed", f"must be an integer >= 0, got {seed!r}")
        seed = operator.index(seed)
        params.check_work(force)
        result = self.function(params, seed)
        if result.scenario != self.name or result.seed != seed or result.params != params:
            raise RuntimeError(f"scenario {self.name} returned a result for another run")
        return result


_REGISTRY: dict[str, Scenario] = {}


def scenario(name: str, params: type[P], description: str):
    """Decorator that registers ``function(params, seed) -> Result`` under ``name``."""
    from sim.core.params import Params

    if not _KEBAB.match(name):
        raise ValueError(f"scenario names are kebab-case, got {name!r}")
    if not (isinstance(params, type) and issubclass(params, Params)):
        raise TypeError(f"params of {name} must be a Params subclass")

    def register(function: Callable[[P, int], Result]) -> Callable[[P, int], Result]:
        if name in _REGISTRY and _REGISTRY[name].function is not function:
            raise ValueError(f"scenario {name!r} is registered twice")
        _REGISTRY[name] = Scenario(name, description, params, function)
        return function

    return register


_SOURCES: list[str] = []
_loaded: set[str] = set()
_locator: Callable[[str], str | None] | None = None


def add_source(module: str) -> None:
    """Name a module (or package) whose import registers scenarios; it is imported on first lookup."""
    if module not in _SOURCES:
        _SOURCES.append(module)


def set_locator(locate: Callable[[str], str | None] | None) -> None:
    """``locate(name)`` -> the module that registers scenario ``name`` (None: unknown, load everything)."""
    global _locator
    _locator = locate


def _load() -> None:
    import pkgutil

    for source in _SOURCES:
        if source not in _loaded:
            module = importlib.import_module(source)
            if hasattr(module, "__path__"):  # a package: every module under it, in name order
                found = pkgutil.walk_packages(module.__path__, f"{source}.")
                for name in sorted(m.name for m in found if not m.name.rpartition(".")[2].startswith("_")):
                    importlib.import_module(name)
            _loaded.add(source)


def get(name: str) -> Scenario:
    """The scenario called ``name``; :class:`UnknownScenarioError` lists the known ones."""
    if name not in _REGISTRY and _locator is not None:
        try:
            module = _locator(name)
            if module is not None:
                importlib.import_module(module)
        except Exception:  # a stale or broken locator is only a shortcut: fall back to loading everything
            pass
    if name not in _REGISTRY:
        _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownScenarioError(name, sorted(_REGISTRY)) from None


def list_scenarios() -> list[Scenario]:
    """Every registered scenario, by name."""
    _load()
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]


def run(name: str, params: Params | None = None, seed: int = DEFAULT_SEED, force: bool = False, **changes) -> Result:
    """Run scenario ``name``; ``changes`` override fields of ``params`` (or of the defaults).

    ``force=True`` runs even what the work estimate refuses (``Params.check_work``).
    """
    sc = get(name)
    base = params if params is not None else sc.params_type()
    if changes:
        unknown = sorted(set(changes) - set(base.to_dict()))
        if unknown:
            raise ParameterError(unknown[0], f"unknown parameter of {name}; known: {', '.join(base.to_dict())}")
        base = base.replace(**changes)
    return sc.run(base, seed, force=force)
