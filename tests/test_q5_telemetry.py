"""5C: JSON logs and OpenTelemetry traces of monitoring-incident, in simulated time."""

from __future__ import annotations

import json

import pytest
import simpy

from sim.monitoring.telemetry import RunLog, Tracer
from sim.scenarios.q5_monitoring import MonitoringIncidentParams, simulate

SMALL = dict(clients=300, message_rate=40.0, horizon=120.0, crash_at=47.0, downtime=20.0, telemetry=True,
             trace_every=20, scrape_intervals=(15.0,))


@pytest.fixture(scope="module")
def run():
    p = MonitoringIncidentParams(**SMALL)
    return p, *simulate(p, seed=2, replication=0)


def test_every_span_but_the_root_has_a_parent_and_children_nest_in_time(run) -> None:
    _p, _rows, tables = run
    spans = tables["spans"]
    assert len(spans) > 0
    by_id = spans.set_index("span_id")
    for trace_id, trace in spans.groupby("trace_id"):
        roots = trace[trace.parent_id == ""]
        assert len(roots) == 1, trace_id
        assert roots.iloc[0]["name"] == "gateway publish"
        for _, span in trace[trace.parent_id != ""].iterrows():
            parent = by_id.loc[span.parent_id]
            assert parent.trace_id == trace_id
            assert parent.start_s <= span.start_s <= span.end_s <= parent.end_s + 1e-9
    assert set(spans.name) == {"gateway publish", "broker route", "node process", "node queue wait", "network deliver"}


def test_tail_sampling_keeps_the_slow_messages(run) -> None:
    p, _rows, tables = run
    roots = tables["spans"][tables["spans"].parent_id == ""]
    slow = tables["latencies"][tables["latencies"].latency_s > 1.0]
    assert len(slow) > 0 and (roots.duration_s > 1.0).sum() == len(slow)
    # a slow one spent its time in the broker's backlog (its client was reconnecting), not in the node
    slow_trace = roots[roots.duration_s > 1.0].iloc[0].trace_id
    spans = tables["spans"][tables["spans"].trace_id == slow_trace].set_index("name")
    assert bool(spans.loc["broker route", "broker.backlogged"])
    assert spans.loc["broker route", "duration_s"] > 0.9 * spans.loc["gateway publish", "duration_s"]


def test_logs_are_json_in_simulated_time(run) -> None:
    p, rows, tables = run
    records = [json.loads(line) for line in tables["logs"]["line"]]
    times = [r["ts"] for r in records]
    assert times == sorted(times)
    assert records[0]["msg"] == "node process crashed" and records[0]["ts"] == p.crash_at
    lost = [r for r in records if r["msg"] == "client connection lost"]
    back = [r for r in records if r["msg"] == "client reconnected"]
    assert len(lost) == len(back) == rows[0]["disconnected_by_crash"]
    assert {r["reason"] for r in lost} == {"reset"} and all(r["server"] == "node-0" for r in lost)
    assert all(r["server"] != "node-0" and r["down_s"] > 0 for r in back)
    assert rows[0]["log_bytes_per_s"] > 0 and rows[0]["trace_bytes_per_s"] > 0


def test_same_seed_same_logs_and_trace_ids() -> None:
    p = MonitoringIncidentParams(**{**SMALL, "horizon": 70.0, "downtime": 10.0})
    a = simulate(p, seed=9, replication=0)[1]
    b = simulate(p, seed=9, replication=0)[1]
    assert a["logs"].equals(b["logs"])
    assert a["spans"].equals(b["spans"])


def test_run_log_and_tracer_alone() -> None:
    import numpy as np

    env = simpy.Environment()
    log = RunLog(env, "t")
    env.timeout(2.5).callbacks.append(lambda _e: log.info("hello", client="c1"))
    env.run()
    assert log.records() == [{"ts": 2.5, "level": "INFO", "logger": "t", "msg": "hello", "client": "c1"}]
    tracer = Tracer(np.random.default_rng(1))
    root = tracer.record("a", 1.0, 3.0)
    tracer.record("b", 1.5, 2.0, parent=root)
    frame = tracer.frame()
    assert frame.start_s.tolist() == [1.0, 1.5] and frame.parent_id.tolist() == ["", frame.span_id.tolist()[0]]
    assert tracer.bytes() > 0
