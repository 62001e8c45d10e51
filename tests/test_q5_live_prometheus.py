"""A REAL Prometheus server scrapes `python -m sim live monitoring-incident`; its answers are
checked against what the simulator recorded and against sim.monitoring.promql.

Both processes listen on 127.0.0.1 only, on free ports; every wait is bounded; both are stopped
in a finalizer even when an assertion fails. About 25 s in all.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from sim.calibration.local import free_port, stop
from sim.monitoring.promql import histogram_quantile, rate

PROMETHEUS = shutil.which("prometheus")
RULES = Path(__file__).resolve().parent.parent / "data" / "prometheus" / "alerts.yml"
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (apt-get install prometheus)")

LIVE = ["--set", "clients=300", "--set", "servers=3", "--set", "message_rate=40", "--set", "crash_at=9",
        "--set", "downtime=6", "--set", "horizon=24", "--set", "health_check_delay=1", "--speed", "2"]


def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 — 127.0.0.1 only
        return r.read()


def _wait(what: str, check, limit_s: float, every: float = 0.25):
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        try:
            value = check()
            if value:
                return value
        except OSError:
            pass
        time.sleep(every)
    raise AssertionError(f"timed out after {limit_s:g} s waiting for {what}")


@pytest.fixture
def stack(tmp_path, request):
    final = tmp_path / "final.json"
    live = subprocess.Popen([sys.executable, "-m", "sim", "live", "monitoring-incident", *LIVE, "--port", "0",
                             "--linger", "25", "--out", str(final)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    request.addfinalizer(lambda: stop(live))
    line = _wait("the live exporter", lambda: live.stdout.readline(), 30)
    assert line.startswith("serving http://127.0.0.1:"), line
    live_port = int(line.split("127.0.0.1:")[1].split("/")[0])
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {RULES}\n"
        f"scrape_configs:\n  - job_name: sim\n    static_configs:\n      - targets: ['127.0.0.1:{live_port}']\n")
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    request.addfinalizer(lambda: stop(prom))
    base = f"http://127.0.0.1:{prom_port}"
    _wait("Prometheus to be ready", lambda: _get(f"{base}/-/ready").startswith(b"Prometheus"), 30)
    return base, live, final


def _query(base: str, expr: str, at: float | None = None):
    params = {"query": expr, **({"time": f"{at:.3f}"} if at is not None else {})}
    body = json.loads(_get(f"{base}/api/v1/query?{urllib.parse.urlencode(params)}"))
    assert body["status"] == "success", body
    return body["data"]


def _scalar(data) -> float:
    (only,) = data["result"]
    return float(only["value"][1])


def test_real_prometheus_agrees_with_the_simulator(stack) -> None:
    base, live, final = stack
    _wait("the simulation to end", final.exists, 40)
    recorded = json.loads(final.read_text())["samples"]

    def value(name, **labels):
        return sum(s["value"] for s in recorded if s["name"] == name and all(s["labels"].get(k) == v
                                                                              for k, v in labels.items()))

    published = value("messages_published_total")
    delivered = value("message_latency_seconds_count")
    assert delivered > 0

    def final_state_scraped() -> bool:
        # the last publish comes before the last delivery: a scrape between the two has the final
        # publish count but not the final histogram, so both are compared
        got = [_query(base, expr)["result"] for expr in ("messages_published_total",
                                                         "sum(message_latency_seconds_count)")]
        return all(got) and [_scalar({"result": g}) for g in got] == [published, delivered]

    _wait("a scrape of the final state", final_state_scraped, 15)
    at = round(time.time(), 3)

    assert _scalar(_query(base, 'up{job="sim"}', at)) == 1
    # the three key metrics, as stored by Prometheus == as recorded by the simulator
    assert _scalar(_query(base, "sum(server_connections)", at)) == value("server_connections") == 300
    reconnections = value("client_reconnections_total")
    assert reconnections == 100  # node-0's third of the clients
    assert _scalar(_query(base, "client_reconnections_total", at)) == reconnections
    assert _scalar(_query(base, 'client_disconnections_total{reason="reset"}', at)) == \
        value("client_disconnections_total", reason="reset")
    # histogram: every bucket, and histogram_quantile on them == ours on the simulator's buckets
    stored = {r["metric"]["le"]: float(r["value"][1])
              for r in _query(base, "sum by (le) (message_latency_seconds_bucket)", at)["result"]}
    ours = {}
    for s in recorded:
        if s["name"] == "message_latency_seconds_bucket":
            ours[s["labels"]["le"]] = ours.get(s["labels"]["le"], 0) + s["value"]
    assert stored == ours
    for q in (0.5, 0.99):
        theirs = _scalar(_query(base, f"histogram_quantile({q}, sum by (le) (message_latency_seconds_bucket))", at))
        assert theirs == pytest.approx(histogram_quantile(q, ours.items()), rel=1e-12)

    # rate(): Prometheus' own answer == sim.monitoring.promql.rate on the samples Prometheus holds
    # (the 2.x selection rules of the Debian package), over a window that held the storm
    checked = 0
    for window in (20, 30):
        raw = _query(base, f"messages_published_total[{window}s]", at)["result"][0]["values"]
        samples = [(float(t), float(v)) for t, v in raw]
        theirs = _query(base, f"rate(messages_published_total[{window}s])", at)["result"]
        mine = rate(samples, at, window, prometheus=2)
        assert len(samples) >= 2 and theirs
        assert float(theirs[0]["value"][1]) == pytest.approx(mine, rel=1e-9)
        checked += 1
        raw = _query(base, f"client_reconnections_total[{window}s]", at)["result"][0]["values"]
        samples = [(float(t), float(v)) for t, v in raw]
        theirs = _query(base, f"rate(client_reconnections_total[{window}s])", at)["result"]
        mine = rate(samples, at, window, prometheus=2)
        assert float(theirs[0]["value"][1]) == pytest.approx(mine, rel=1e-9, abs=1e-12)
        checked += 1
    assert checked == 4

    # the alerting rules of data/prometheus are loaded and healthy on the real server
    rules = json.loads(_get(f"{base}/api/v1/rules"))["data"]["groups"][0]["rules"]
    assert {r["name"] for r in rules} == {"ConnectionDrop", "ReconnectionStorm", "ConnectionErrors",
                                          "HighMessageLatencyP99"}
    assert all(r["health"] == "ok" for r in rules)
    assert math.isfinite(at)
