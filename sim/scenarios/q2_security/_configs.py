"""Configurations of defences named on the command line: ``none,a,b+c,all``."""

from __future__ import annotations

from sim.core import ParameterError


def parse_configs(text: str, names: tuple[str, ...], parameter: str) -> tuple[tuple[str, frozenset[str]], ...]:
    """``"none,a,b+c,all"`` -> ``(("none", {}), ("a", {a}), ("b+c", {b, c}), ("all", {every name}))``.

    Labels list the names in ``names`` order; repeats are dropped; an unknown name raises
    :class:`ParameterError` for ``parameter``."""
    configs: list[tuple[str, frozenset[str]]] = []
    for item in (s.strip() for s in text.split(",")):
        if item == "none":
            chosen: frozenset[str] = frozenset()
        elif item == "all":
            chosen = frozenset(names)
        else:
            parts = [x.strip() for x in item.split("+")]
            if not parts or any(x not in names for x in parts):
                raise ParameterError(parameter, f"must be configurations separated by commas, each none, all or "
                                                f"names of {', '.join(names)} joined by +; got {item!r}")
            chosen = frozenset(parts)
        label = item if item in ("none", "all") else "+".join(x for x in names if x in chosen)
        if label not in [c for c, _ in configs]:
            configs.append((label, chosen))
    return tuple(configs)
