"""The alerting rules of data/prometheus: promtool accepts them and their unit tests pass, and the
simulator's evaluator (sim.monitoring.alerts) agrees with promtool on the same synthetic series."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sim.monitoring import alerts
from sim.monitoring.query import Store, instant_query

RULES = Path(__file__).resolve().parent.parent / "data" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")


@needs_promtool
def test_promtool_check_rules() -> None:
    out = subprocess.run([PROMTOOL, "check", "rules", "alerts.yml"], cwd=RULES, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(alerts.load_rules())} rules found" in out.stdout


@needs_promtool
def test_promtool_test_rules() -> None:
    out = subprocess.run([PROMTOOL, "test", "rules", "alerts_test.yml"], cwd=RULES, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def _expand(values: str) -> list[float]:
    """promtool's series notation: 'a+bxN' (N+1 values from a, step b) and 'axN' (a, N+1 times)."""
    out: list[float] = []
    for part in values.split():
        start, _, n = part.partition("x")
        if "+" in start[1:]:
            a, b = start.rsplit("+", 1)
            out += [float(a) + float(b) * k for k in range(int(n) + 1)]
        else:
            out += [float(start)] * (int(n) + 1 if n else 1)
    return out


def _store(test: dict) -> Store:
    import re

    series: dict = {}
    step = alerts.parse_duration(test["interval"])
    for s in test["input_series"]:
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?", s["series"])
        name, body = m.group(1), m.group(2) or ""
        labels = tuple(sorted((k, v) for k, v in re.findall(r'(\w+)="([^"]*)"', body)))
        series.setdefault(name, {})[labels] = [(k * step, v) for k, v in enumerate(_expand(s["values"]))]
    return Store(series)


def test_our_evaluator_agrees_with_the_promtool_unit_tests() -> None:
    import yaml

    spec = yaml.safe_load((RULES / "alerts_test.yml").read_text())
    rules = {r.name: r for r in alerts.load_rules(RULES / "alerts.yml")}
    interval = alerts.parse_duration(spec["evaluation_interval"])
    checked = 0
    for test in spec["tests"]:
        store = _store(test)
        for case in test["alert_rule_test"]:
            rule = rules[case["alertname"]]
            t = alerts.parse_duration(case["eval_time"])
            times = [k * interval for k in range(int(t // interval) + 1)]
            state = alerts.states(rule, store, times)[-1][1]
            assert (state == "firing") == bool(case["exp_alerts"]), (rule.name, t, state)
            checked += 1
    assert checked == 8
    # the p99 promtool prints in the annotation (1.833s), from the same buckets
    latency = _store(spec["tests"][2])
    q = instant_query(latency, "histogram_quantile(0.99, sum by (le) (rate(message_latency_seconds_bucket[2m])))", 270)
    assert q[()] == pytest.approx(0.5 + 2 * 2 / 3)


def test_rules_file_names_only_metrics_the_scenario_exports() -> None:
    from sim.monitoring.query import metric_names

    exported = _exported_sample_names()
    for rule in alerts.load_rules():
        assert metric_names(rule.expr) <= exported, rule.name


def _exported_sample_names() -> set[str]:
    from sim.core import Context
    from sim.scenarios.q5_monitoring import MonitoringIncidentParams, _Fleet

    ctx = Context(1)
    _Fleet(ctx, MonitoringIncidentParams(clients=2, servers=2))
    return set(ctx.metrics.to_frame()["name"])


def test_parse_duration() -> None:
    assert alerts.parse_duration("1h30m") == 5400
    assert alerts.parse_duration("500ms") == 0.5
    assert alerts.parse_duration("0s") == 0
    with pytest.raises(ValueError):
        alerts.parse_duration("5 minutes")
