"""``python -m sim live`` without a Prometheus server: the wall-clock run ends in exactly the
state of the ordinary run of the same seed (the model is deterministic; only the pauses differ)."""

from __future__ import annotations

import json

from sim.core import Context
from sim.core.registry import get
from sim.monitoring.live import serve
from sim.scenarios import q5_monitoring

SETTINGS = {"clients": "60", "servers": "3", "crash_at": "3", "downtime": "2", "horizon": "8"}


def test_a_live_run_ends_where_the_ordinary_run_of_its_seed_ends(tmp_path, capsys):
    out = tmp_path / "final.json"
    assert serve("monitoring-incident", SETTINGS, seed=3, speed=200, port=0, out=out) == 0
    assert "simulated 8 s" in capsys.readouterr().out
    live = json.loads(out.read_text())
    params = get("monitoring-incident").params_type.from_strings(SETTINGS)
    ctx = Context(3)
    q5_monitoring.build(ctx, params)
    ctx.env.run(until=params.horizon)
    ordinary = [{"name": n, "labels": lab, "value": v} for n, _k, lab, v in ctx.metrics._rows()]
    assert live["simulated_s"] == 8.0
    assert live["samples"] == ordinary
    assert any(s["name"] == "client_reconnections_total" and s["value"] > 0 for s in ordinary)
