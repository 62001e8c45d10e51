"""The Grafana dashboard of ``data/grafana/realtime-dashboard.json``, drawn with matplotlib.

Grafana itself is not installable here; its dashboard is JSON (the dashboard JSON model,
https://grafana.com/docs/grafana/latest/dashboards/json-model/): panels on a 24-column grid,
each with PromQL ``targets``. :func:`draw` evaluates every target on simulated scrapes with
:mod:`sim.monitoring.query` and draws the panels where the grid puts them, thresholds as lines.

Grafana's ``$__rate_interval`` is ``max($__interval + scrape interval, 4 * scrape interval)``;
here (one point per scrape) it is ``4 * scrape interval``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Iterable

DASHBOARD_FILE = "grafana/realtime-dashboard.json"
UNITS = {"s": "seconds", "short": "", "reqps": "per second"}


def load(path=None) -> dict:
    """The dashboard JSON (default: the project's)."""
    if path is None:
        from sim.data import _presets_dir

        path = _presets_dir() / DASHBOARD_FILE
    return json.loads(path.read_text(encoding="utf-8"))


def expand(expr: str, scrape_interval_s: float) -> str:
    """A panel's expression with Grafana's interval variables replaced by a PromQL duration."""
    rate_interval = f"{int(round(4 * scrape_interval_s * 1000))}ms"
    return re.sub(r"\$(__rate_interval|\{__rate_interval\}|__interval|\{__interval\})", rate_interval, expr)


def queries(dashboard: dict, scrape_interval_s: float) -> list[tuple[dict, list[tuple[str, str]]]]:
    """``(panel, [(legendFormat, expanded expr), ...])`` for every panel with targets."""
    out = []
    for panel in dashboard["panels"]:
        targets = [(t.get("legendFormat", ""), expand(t["expr"], scrape_interval_s)) for t in panel.get("targets", [])]
        if targets:
            out.append((panel, targets))
    return out


def _legend(fmt: str, labels: str) -> str:
    pairs = dict(re.findall(r'(\w+)="([^"]*)"', labels))
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: pairs.get(m.group(1), ""), fmt) or labels


def draw(dashboard: dict, store, times: Iterable[float], scrape_interval_s: float, *, truth=None, marks=()):
    """A matplotlib figure of the dashboard's panels evaluated on ``store`` at ``times``.
    ``truth``: optional ``{panel title: (x, y, label)}``, a step function drawn in grey under the panel's lines;
    ``marks``: times to draw as vertical dotted lines (e.g. the crash)."""
    import matplotlib.pyplot as plt

    from sim.monitoring.query import range_query

    times = list(times)
    panels = queries(dashboard, scrape_interval_s)
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p, _ in panels) // 8
    fig, axes = plt.subplots(rows, 2, figsize=(12, 3.6 * rows), squeeze=False)
    for panel, targets in panels:
        g = panel["gridPos"]
        ax = axes[g["y"] // 8][g["x"] // 12]
        if truth and panel["title"] in truth:
            x, y, label = truth[panel["title"]]
            ax.step(x, y, where="post", color="0.7", lw=1, label=label, zorder=0)
        for legend, expr in targets:
            frame = range_query(store, expr, times)
            for labels, group in frame.groupby("labels", sort=True):
                ys = [v if not (isinstance(v, float) and math.isnan(v)) else float("nan") for v in group["value"]]
                ax.plot(group["time_s"], ys, marker=".", label=_legend(legend, labels))
        for step in panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", []):
            if step.get("value") is not None:
                ax.axhline(step["value"], color=step["color"], ls="--", lw=0.8)
        for t in marks:
            ax.axvline(t, color="k", ls=":", lw=0.8)
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
        ax.set_title(panel["title"], fontsize=10)
        ax.set_xlabel("simulated time (s)")
        ax.set_ylabel(UNITS.get(unit, unit))
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(f"{dashboard['title']} — scrape interval {scrape_interval_s:g} s", fontsize=11)
    fig.tight_layout()
    return fig
