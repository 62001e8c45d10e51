"""The alerting rules of ``data/prometheus/alerts.yml``, evaluated on simulated scrapes.

Prometheus evaluates each rule every ``evaluation_interval``: when the expression returns at
least one sample the alert becomes *pending* (``activeAt`` = that evaluation), and *firing*
once it has stayed pending for ``for`` (at the first evaluation with ``t - activeAt >= for``);
an evaluation with no sample resets it (rules/alerting.go). So the delay between an incident
and a firing alert is up to one scrape interval (the sample is taken) plus one evaluation
interval (the rule looks) plus ``for``, and can be forever if the scrapes never see it.

Simplifications: one alert per rule (no per-series alerts), no ``keep_firing_for``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable

from sim.monitoring.query import Store, instant_query

RULES_FILE = "prometheus/alerts.yml"


@dataclass(frozen=True)
class Rule:
    """One alerting rule."""

    name: str
    expr: str
    for_s: float
    labels: dict
    annotations: dict


def rules_path():
    """``data/prometheus/alerts.yml`` inside the installed package."""
    from sim.data import _presets_dir

    return _presets_dir() / RULES_FILE


def parse_duration(text: str | int | float) -> float:
    """A Prometheus duration (``30s``, ``1m``, ``1h30m``, ``500ms``) in seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


def load_rules(path=None) -> list[Rule]:
    """Every alerting rule of the file (default: the project's ``alerts.yml``)."""
    import yaml

    text = (path if path is not None else rules_path()).read_text(encoding="utf-8")
    rules = []
    for group in yaml.safe_load(text)["groups"]:
        for r in group["rules"]:
            if "alert" in r:
                rules.append(Rule(r["alert"], r["expr"], parse_duration(r.get("for", "0s")),
                                  dict(r.get("labels", {})), dict(r.get("annotations", {}))))
    return rules


def states(rule: Rule, store: Store, times: Iterable[float]) -> list[tuple[float, str]]:
    """``(evaluation time, inactive|pending|firing)`` at each evaluation."""
    out, active_at = [], math.nan
    for t in times:
        result = instant_query(store, rule.expr, t)
        has = bool(result) if isinstance(result, dict) else False
        if not has:
            active_at = math.nan
            out.append((t, "inactive"))
            continue
        if math.isnan(active_at):
            active_at = t
        out.append((t, "firing" if t - active_at >= rule.for_s else "pending"))
    return out


def first_firing(rule: Rule, store: Store, times: Iterable[float], after: float = -math.inf) -> float:
    """The first evaluation time ``>= after`` at which ``rule`` fires (``nan``: never)."""
    for t, state in states(rule, store, times):
        if state == "firing" and t >= after:
            return t
    return math.nan
