"""The Grafana dashboard of data/grafana follows the dashboard JSON model, and every panel's
PromQL parses and selects only metrics the monitoring-incident scenario exports."""

from __future__ import annotations

import itertools

import pytest

from sim.monitoring import dashboard
from sim.monitoring.query import metric_names, parse

PANEL_TYPES = {"timeseries", "stat", "gauge", "bargauge", "table", "heatmap", "text", "row", "histogram"}


@pytest.fixture(scope="module")
def dash() -> dict:
    return dashboard.load()


def test_top_level_fields_of_the_json_model(dash) -> None:
    for key, kind in {"uid": str, "title": str, "tags": list, "timezone": str, "editable": bool, "graphTooltip": int,
                      "panels": list, "time": dict, "schemaVersion": int, "version": int, "refresh": str,
                      "templating": dict, "annotations": dict}.items():
        assert isinstance(dash[key], kind), key
    assert dash["id"] is None  # set by Grafana's database when saved
    assert 8 <= len(dash["uid"]) <= 40
    assert dash["graphTooltip"] in (0, 1, 2)
    assert set(dash["time"]) == {"from", "to"}
    assert isinstance(dash["templating"]["list"], list) and isinstance(dash["annotations"]["list"], list)


def test_panels_sit_on_the_24_column_grid_without_overlap(dash) -> None:
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    cells = {}
    for p in dash["panels"]:
        assert p["type"] in PANEL_TYPES and p["title"]
        g = p["gridPos"]
        assert all(isinstance(g[k], int) and g[k] >= 0 for k in "xywh")
        assert g["x"] + g["w"] <= 24 and g["w"] >= 1 and g["h"] >= 1
        for x, y in itertools.product(range(g["x"], g["x"] + g["w"]), range(g["y"], g["y"] + g["h"])):
            assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
            cells[(x, y)] = p["title"]
        steps = p["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps[0]["value"] is None  # the base step of Grafana's thresholds
        values = [s["value"] for s in steps[1:]]
        assert values == sorted(values)
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs))


def test_the_three_key_metrics_are_on_the_dashboard(dash) -> None:
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
    assert "server_connections" in exprs
    assert "histogram_quantile(0.99" in exprs and "message_latency_seconds_bucket" in exprs
    assert "client_reconnections_total" in exprs


def test_every_query_parses_and_selects_exported_metrics(dash) -> None:
    from sim.core import Context
    from sim.scenarios.q5_monitoring import MonitoringIncidentParams, _Fleet

    ctx = Context(1)
    _Fleet(ctx, MonitoringIncidentParams(clients=2, servers=2))
    exported = set(ctx.metrics.to_frame()["name"])
    n = 0
    for panel, targets in dashboard.queries(dash, 15.0):
        for _legend, expr in targets:
            parse(expr)  # raises on a syntax error
            assert metric_names(expr) and metric_names(expr) <= exported, (panel["title"], expr)
            n += 1
    assert n >= 6
    with pytest.raises(ValueError, match="not PromQL"):
        parse("sum(rate(server_connections[1m])")
