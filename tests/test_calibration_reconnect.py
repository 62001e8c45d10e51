"""The real WebSocket server of the calibration, and a small calibration of ``reconnect-storm``.

Every real process listens on 127.0.0.1, exits by itself after a time limit and is killed by a
finalizer (or by the runner's ``finally``) even when a test fails.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("websockets", reason="websockets is not installed (pip install -r requirements.txt)")

from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import InvalidStatus  # noqa: E402

from sim.calibration import reconnect as rc  # noqa: E402
from sim.calibration.command import DEFAULT_DIR  # noqa: E402
from sim.core.errors import ParameterError  # noqa: E402

SERVER = Path(rc.__file__).with_name("ws_server.py")


class Control:
    """Drives a ws_server child process through its stdin/stdout protocol."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.port = self.expect("listening")["port"]

    def expect(self, event: str) -> dict:
        for _ in range(100):  # bounded: the server answers each command with one line
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("ws_server exited")
            message = json.loads(line)
            if message["event"] == event:
                return message
        raise RuntimeError(f"no {event!r} from ws_server")

    def send(self, reply: str, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self.expect(reply)


@pytest.fixture
def ws_server(request):
    proc = subprocess.Popen([sys.executable, "-I", str(SERVER), "--time-limit", "60"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)

    def stop():
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)

    request.addfinalizer(stop)
    return Control(proc)


def _open(port: int):
    return connect(f"ws://127.0.0.1:{port}/", open_timeout=5, ping_interval=None, compression=None, proxy=None)


def test_server_admission_reset_refusal_and_restart(ws_server):
    """503 past the bucket, RST on crash (1006 at once), ECONNREFUSED while down, back after restart."""

    async def scenario():
        ws_server.send("admission", cmd="admission", rate=0.001, burst=2)  # two tokens, no refill to speak of
        first, second = await _open(ws_server.port), await _open(ws_server.port)
        with pytest.raises(InvalidStatus) as refused:
            await _open(ws_server.port)
        assert refused.value.response.status_code == 503
        ws_server.send("crashed", cmd="crash")
        async with asyncio.timeout(2):  # a reset is noticed at once, not by a timeout
            await first.wait_closed()
            await second.wait_closed()
        assert first.close_code == 1006  # no close frame: abnormal closure
        with pytest.raises(ConnectionRefusedError):
            await _open(ws_server.port)
        ws_server.send("restarted", cmd="restart")  # the bucket is full again
        again = await _open(ws_server.port)
        again.transport.abort()
        report = ws_server.send("report", cmd="report")
        assert [ok for _, ok in report["handshakes"]] == [True, True, False, True]

    asyncio.run(scenario())


def test_setup_validation_names_the_parameter():
    with pytest.raises(ParameterError, match="clients"):
        rc.StormSetup(clients=0)
    with pytest.raises(ParameterError, match="strategy"):
        rc.StormSetup(strategy="bogus")
    with pytest.raises(ParameterError, match="downtime"):
        rc.StormSetup(downtime=-1)


def test_small_calibration_agrees_within_the_measured_run_to_run_spread():
    """One real storm (200 clients, a few seconds) against the model with the same parameters.

    The tolerance is not chosen here: ``data/calibration/reconnect-storm-ci.json`` holds eight
    repeated real runs of this very setup (``python -m sim calibrate reconnect-storm --clients 200
    ... --repeat 8 --name reconnect-storm-ci``), each against its model run; the tolerance is three
    standard deviations of their relative differences, and for the KS distance the largest KS
    distance between two of those real runs.
    """
    stored = json.loads((DEFAULT_DIR / "reconnect-storm-ci.json").read_text())
    entry = stored["strategies"]["full_jitter"]
    setup = rc.StormSetup(strategy="full_jitter", seed=101, **stored["setup"])
    real = rc.run_real(setup)
    assert real.affected == setup.clients and real.gave_up == 0
    assert len(real.reconnect_s) == setup.clients  # every reset client came back
    summary = rc.real_summary(real)
    assert summary["refused_down"] > 0  # clients did knock while the server was down
    # the real server's token bucket holds: no more than burst + rate * t admitted in t seconds
    restart = setup.crash_at + real.downtime_s
    admitted = sorted(t - restart for t, ok in real.server_handshakes if ok)
    assert admitted and all(k + 1 <= setup.admission_burst + setup.admission_rate * t + 1
                            for k, t in enumerate(admitted))
    runs = rc.run_model(setup, real.handshake_s, rc.model_downtime([real]), range(1, 1 + stored["model_seeds"]))
    model = rc.model_summary(runs)
    tolerance = {row["metric"]: row["tolerance"] for row in entry["rows"]}
    for metric in ("reconnect_p50_s", "reconnect_p99_s"):
        difference = rc.relative(summary[metric], model[metric])
        assert abs(difference) <= tolerance[metric], (metric, summary[metric], model[metric], tolerance[metric])
    ks = rc.ks_distance(real.reconnect_s, np.concatenate([r["reconnect_s"] for r in runs]))
    assert ks <= tolerance["ks_distance"]


def test_stored_results_read_back_for_the_notebooks():
    """The notebooks show stored results without a server: they load and their captions hold numbers."""
    from sim.calibration import stored

    for name in ("reconnect-storm", "reconnect-storm-ci"):
        result = stored.load(name)
        assert {"date_utc", "python", "websockets", "platform"} <= set(result["machine"])
        table = stored.storm_table(result)
        assert set(table["metric"]) >= {"reconnect_p50_s", "reconnect_p99_s", "ks_distance"}
        assert "real clients" in stored.storm_caption(result)
    redis_result = stored.load("broker-fanout")
    assert "redis_server" in redis_result["machine"]
    assert "Stream" in stored.broker_caption(redis_result)
