"""``reconnect-storm`` against a real WebSocket server on loopback.

The real side: one :mod:`sim.calibration.ws_server` process (the ``websockets`` library, the
model's admission rule), and ``clients`` real WebSocket clients in this process, each running
the project's own :class:`~sim.components.backoff.Backoff` policy on real time, exactly as
:class:`~sim.components.resilient_client.ResilientClient` does on simulated time:
``next_delay`` before each attempt, ``connected`` after an accepted handshake, ``disconnected``
when the connection is lost. All clients connect (warm-up, no admission limit), the server is
crashed (listener closed, connections reset), restarted ``downtime`` seconds later with the
token bucket full, and every attempt, refusal and reconnection is recorded with
:func:`time.monotonic`.

The model side: the ``reconnect-storm`` scenario with the same clients (one server), strategy,
backoff parameters, admission rate and burst, the measured downtime, and the *measured*
loopback handshake time as its round trip (``latency`` = half of each measured handshake,
resampled).

Times in the records are seconds in the model's frame: 0 is ``crash_at`` seconds before the
crash command was sent, so bins of one second line up with the model's.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sim.calibration.ws_server import HOST, raise_open_file_limit
from sim.components.backoff import make_backoff
from sim.core.errors import ParameterError

#: The jittered textbook strategies, for which the issue's 15 % goal applies.
JITTERED = ("full_jitter", "equal_jitter", "decorrelated_jitter")
#: Most real clients one run may start (each holds two file descriptors on this machine).
MAX_CLIENTS = 5_000


@dataclass(frozen=True)
class StormSetup:
    """Parameters shared by the real run and the model run (times in seconds)."""

    clients: int = 1_000
    strategy: str = "full_jitter"
    backoff_base: float = 0.1
    backoff_multiplier: float = 2.0
    backoff_cap: float = 2.0
    admission_rate: float = 200.0
    admission_burst: int = 20
    crash_at: float = 1.0
    downtime: float = 2.0
    time_limit: float = 30.0
    """Seconds after the restart by which every client must be back (the model's horizon too)."""
    backlog: int = 100
    """The server's listen backlog (asyncio's default)."""
    seed: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.clients, bool) or not isinstance(self.clients, int) or not 1 <= self.clients <= MAX_CLIENTS:
            raise ParameterError("clients", f"must be an integer from 1 to {MAX_CLIENTS}, got {self.clients!r}")
        for name in ("backoff_base", "backoff_cap", "admission_rate", "crash_at", "time_limit"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ParameterError(name, f"must be a number > 0, got {value!r}")
        if not (isinstance(self.downtime, (int, float)) and 0 <= self.downtime <= 60):
            raise ParameterError("downtime", f"must be seconds from 0 to 60, got {self.downtime!r}")
        if not (isinstance(self.time_limit, (int, float)) and self.time_limit <= 600):
            raise ParameterError("time_limit", f"must be at most 600 s, got {self.time_limit!r}")
        if isinstance(self.admission_burst, bool) or not isinstance(self.admission_burst, int) or self.admission_burst < 1:
            raise ParameterError("admission_burst", f"must be an integer >= 1, got {self.admission_burst!r}")
        if isinstance(self.backlog, bool) or not isinstance(self.backlog, int) or self.backlog < 1:
            raise ParameterError("backlog", f"must be an integer >= 1, got {self.backlog!r}")
        self.policy()  # an unknown strategy or bad backoff value fails here, in one line

    def policy(self):
        return make_backoff(self.strategy, base=self.backoff_base, multiplier=self.backoff_multiplier,
                            cap=self.backoff_cap)


@dataclass
class RealStorm:
    """What one real storm recorded (times in the model's frame, see the module docstring)."""

    setup: StormSetup
    handshake_s: list[float]
    """Uncontended loopback handshakes measured before the storm (TCP connect + HTTP upgrade)."""
    downtime_s: float
    """From the crash command to the server listening again, as it happened."""
    reconnect_s: list[float] = field(default_factory=list)
    """For each client that came back: seconds from noticing the loss to being connected again."""
    attempts: list[tuple[float, float, str]] = field(default_factory=list)
    """Every reconnection attempt: (start, duration, outcome)."""
    server_handshakes: list[tuple[float, bool]] = field(default_factory=list)
    """Every handshake the server decided after the restart: (time, admitted)."""
    lateness_s: list[float] = field(default_factory=list)
    """For every attempt, how late it started after its backoff delay (the event loop's timer
    granularity and, mostly, its queue of other work), in the order of ``attempts``' starts."""
    lost_s: list[float] = field(default_factory=list)
    """When each client noticed the reset (the crash command was sent at ``crash_at``)."""
    affected: int = 0
    gave_up: int = 0
    wall_s: float = 0.0
    load_average: float = math.nan
    """The machine's 1-minute load average at the end of the run (other work competes for the CPUs)."""


# ----------------------------------------------------------------------------- the server
class ServerProcess:
    """The :mod:`~sim.calibration.ws_server` child process; always killed on exit."""

    def __init__(self, backlog: int, open_files: int, time_limit: float) -> None:
        # the file itself, not ``-m sim.calibration...``: importing the ``sim`` package costs seconds
        self.args = [sys.executable, "-I", str(Path(__file__).with_name("ws_server.py")), "--backlog", str(backlog),
                     "--open-files", str(open_files), "--time-limit", str(time_limit)]
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    async def __aenter__(self) -> "ServerProcess":
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = await asyncio.create_subprocess_exec(*self.args, stdin=asyncio.subprocess.PIPE,
                                                         stdout=asyncio.subprocess.PIPE, env=env,
                                                         limit=2**26)
        try:
            self.port = (await self._expect("listening", 20.0))["port"]
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def _expect(self, event: str, timeout: float) -> dict:
        assert self.proc is not None and self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"the WebSocket server process exited (status {self.proc.returncode})")
                message = json.loads(line)
                if message.get("event") == event:
                    return message

    async def command(self, reply: str, timeout: float = 10.0, **cmd) -> dict:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()
        return await self._expect(reply, timeout)

    async def __aexit__(self, *exc) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        try:
            if proc.stdin is not None and not proc.stdin.is_closing():
                proc.stdin.write(b'{"cmd": "quit"}\n')
                proc.stdin.close()
            await asyncio.wait_for(proc.wait(), 5.0)
        except (TimeoutError, OSError, ConnectionError):
            pass
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


# ----------------------------------------------------------------------------- the clients
def _connect(port: int, timeout: float):
    from websockets.asyncio.client import connect

    # no proxy (websockets reads the environment's), no compression negotiation, no pings
    return connect(f"ws://{HOST}:{port}/", open_timeout=timeout, ping_interval=None, compression=None,
                   proxy=None, close_timeout=1, max_queue=1)


def _failed(state, how: str) -> None:
    """Tell the policy why it is asked for a delay ('lost', 'refused' or 'timeout'), as
    ResilientClient does, where the Backoff protocol has that field."""
    if hasattr(type(state), "failure"):
        state.failure = how


def _outcome(error: BaseException) -> str:
    from websockets.exceptions import InvalidStatus

    if isinstance(error, InvalidStatus):
        return "refused_rate" if error.response.status_code == 503 else "error"
    if isinstance(error, ConnectionRefusedError):
        return "refused_down"
    if isinstance(error, TimeoutError):
        return "timeout"
    return "error"


async def measure_handshakes(port: int, n: int = 50) -> list[float]:
    """Seconds taken by ``n`` sequential WebSocket handshakes on loopback (nothing else running)."""
    times = []
    for _ in range(n):
        start = time.monotonic()
        ws = await _connect(port, 5.0)
        times.append(time.monotonic() - start)
        ws.transport.abort()
    return times


async def _storm(setup: StormSetup) -> RealStorm:
    raise_open_file_limit(setup.clients + 256)
    policy = setup.policy()
    u = np.random.default_rng(setup.seed).random
    wall = time.monotonic()
    async with ServerProcess(setup.backlog, setup.clients + 256,
                             setup.downtime + setup.time_limit + 120) as server:
        handshakes = await measure_handshakes(server.port)
        record = RealStorm(setup, handshakes, math.nan)
        sockets: list = []
        warm = asyncio.Semaphore(32)
        origin = math.nan  # monotonic time of the model's t = 0, set just before the crash
        all_connected = asyncio.Event()
        crashed = asyncio.Event()
        remaining = setup.clients

        def rel(t: float) -> float:
            return t - origin

        async def client() -> None:
            nonlocal remaining
            async with warm:
                for _ in range(100):  # warm-up: no admission limit yet, retry a reset or two
                    try:
                        ws = await _connect(server.port, 10.0)
                        break
                    except OSError:
                        await asyncio.sleep(0.05)
                else:
                    raise RuntimeError("a client could not connect during warm-up")
            sockets.append(ws)
            state = policy.new_state()
            policy.connected(state, 0.0)  # as the model's clients, connected since t = 0
            last_attempt = 0.0
            remaining -= 1
            if remaining == 0:
                all_connected.set()
            await ws.wait_closed()
            lost = rel(time.monotonic())
            record.lost_s.append(lost)
            if not crashed.is_set():
                raise RuntimeError("a connection closed before the crash")
            policy.disconnected(state, lost)
            _failed(state, "lost")
            while True:
                now = rel(time.monotonic())
                delay = policy.next_delay(state, now, now - last_attempt, u)
                if delay is None:
                    record.gave_up += 1
                    return
                if delay > 0:
                    await asyncio.sleep(delay)
                start = time.monotonic()
                record.lateness_s.append(max(0.0, rel(start) - now - delay))
                last_attempt = rel(start)
                try:
                    ws = await _connect(server.port, policy.connect_timeout)
                except Exception as error:  # a refusal of any kind: back off and try again
                    outcome = _outcome(error)
                    record.attempts.append((last_attempt, time.monotonic() - start, outcome))
                    _failed(state, "timeout" if outcome == "timeout" else "refused")
                    continue
                done = time.monotonic()
                sockets.append(ws)
                record.attempts.append((last_attempt, done - start, "accepted"))
                record.reconnect_s.append(rel(done) - lost)
                policy.connected(state, rel(done))
                return

        tasks = [asyncio.create_task(client()) for _ in range(setup.clients)]
        try:
            async with asyncio.timeout(60.0 + setup.clients / 50):
                await all_connected.wait()
            await asyncio.sleep(0.2)  # let the last handshakes settle
            await server.command("admission", cmd="admission", rate=setup.admission_rate, burst=setup.admission_burst)
            origin = time.monotonic() - setup.crash_at
            crashed.set()
            reply = await server.command("crashed", cmd="crash")
            record.affected = reply["reset"]
            await asyncio.sleep(max(0.0, origin + setup.crash_at + setup.downtime - time.monotonic()))
            reply = await server.command("restarted", cmd="restart")
            record.downtime_s = reply["t"] - origin - setup.crash_at
            _, pending = await asyncio.wait(tasks, timeout=setup.time_limit)
            for task in pending:
                task.cancel()
            for task in tasks:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()
            report = await server.command("report", cmd="report", timeout=30.0)
            restart = origin + setup.crash_at + record.downtime_s
            record.server_handshakes = [(t - origin, ok) for t, ok in report["handshakes"] if t >= restart]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for ws in sockets:
                ws.transport.abort()
    record.wall_s = time.monotonic() - wall
    record.load_average = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    return record


def run_real(setup: StormSetup) -> RealStorm:
    """One real storm (blocks for about ``crash_at`` + ``downtime`` + the reconnection time)."""
    return asyncio.run(_storm(setup))


# ----------------------------------------------------------------------------- the model
def model_downtime(reals: list[RealStorm]) -> float:
    """The downtime to give the model so that, as in the real runs, the restart comes that long
    after the clients *noticed* the reset.

    The real clients notice it a little after the crash command (the command's trip to the server,
    then one event loop waking up to a thousand resets, one after the other: ``lost_s``); the
    model's clients notice one one-way latency after the crash. Giving the model the nominal
    downtime would make every real reconnection look shorter by that delay.
    """
    values = []
    for r in reals:
        latency = float(np.median(r.handshake_s)) / 2
        values.append(r.setup.crash_at + r.downtime_s - float(np.median(r.lost_s)) + latency)
    return float(np.mean(values))


def bench_round_trips(real: RealStorm) -> list[float]:
    """What each real attempt cost the bench: its lateness after the backoff delay plus its duration.

    Given to the model as its round trip (instead of an idle handshake), it folds the bench's
    event-loop queueing into the network: the model then stands for *this* bench, where one loop
    plays every client, rather than for clients on separate machines."""
    durations = [d for _, d, _ in sorted(real.attempts)]
    lateness = real.lateness_s
    n = min(len(durations), len(lateness))
    return [durations[i] + lateness[i] for i in range(n)] or list(real.handshake_s)


def run_model(setup: StormSetup, handshake_s: list[float], downtime_s: float, seeds: range) -> list[dict]:
    """The ``reconnect-storm`` scenario with the real run's parameters, once per seed
    (``downtime_s`` from :func:`model_downtime`)."""
    import sim
    from sim.core import Empirical

    latency = Empirical([t / 2 for t in handshake_s])
    runs = []
    for seed in seeds:
        result = sim.run("reconnect-storm", seed=seed, clients=setup.clients, servers=1, strategy=setup.strategy,
                         backoff_base=setup.backoff_base, backoff_multiplier=setup.backoff_multiplier,
                         backoff_cap=setup.backoff_cap, crash_at=setup.crash_at, downtime=round(downtime_s, 6),
                         admission_rate=setup.admission_rate, admission_burst=setup.admission_burst,
                         latency=latency, horizon=setup.crash_at + downtime_s + setup.time_limit)
        per_second = result.series["per_second"]
        runs.append({
            "reconnect_s": result.series["reconnect_times"]["reconnect_s"].to_numpy(),
            "attempts_per_s": per_second["attempts"].to_numpy(),
            "summary": result.summary.iloc[0].to_dict(),
        })
    return runs


# ----------------------------------------------------------------------------- comparing
METRICS = ("reconnect_p50_s", "reconnect_p99_s", "reconnect_max_s", "peak_attempts_per_s", "refused_attempts",
           "attempts")


def real_summary(real: RealStorm) -> dict:
    times = np.asarray(real.reconnect_s)
    outcomes = [o for _, _, o in real.attempts]
    bins: dict[int, int] = {}
    for start, _, _ in real.attempts:
        bins[int(start // 1.0)] = bins.get(int(start // 1.0), 0) + 1
    durations = np.asarray([d for _, d, _ in real.attempts]) if real.attempts else np.zeros(0)
    return {
        "reconnect_p50_s": float(np.quantile(times, 0.5)) if len(times) else math.nan,
        "reconnect_p99_s": float(np.quantile(times, 0.99)) if len(times) else math.nan,
        "reconnect_max_s": float(times.max()) if len(times) else math.nan,
        "peak_attempts_per_s": max(bins.values(), default=0),
        "refused_attempts": sum(o in ("refused_rate", "refused_down") for o in outcomes),
        "attempts": len(outcomes),
        "reconnected": len(times),
        "affected": real.affected,
        "gave_up": real.gave_up,
        "refused_rate": outcomes.count("refused_rate"),
        "refused_down": outcomes.count("refused_down"),
        "timed_out": outcomes.count("timeout"),
        "errors": outcomes.count("error"),
        "attempt_p50_ms": float(np.quantile(durations, 0.5) * 1000) if len(durations) else math.nan,
        "attempt_p99_ms": float(np.quantile(durations, 0.99) * 1000) if len(durations) else math.nan,
        "slow_attempts_over_0_9s": int((durations > 0.9).sum()),
        "handshake_median_ms": float(np.median(real.handshake_s) * 1000),
        "downtime_s": real.downtime_s,
        "loss_noticed_after_ms": (float(np.median(real.lost_s)) - real.setup.crash_at) * 1000,
        "loss_spread_ms": (max(real.lost_s) - min(real.lost_s)) * 1000 if real.lost_s else math.nan,
        "load_average_1min": real.load_average,
        **_server_rates(real),
        "timer_lateness_p50_ms": float(np.quantile(real.lateness_s, 0.5) * 1000) if real.lateness_s else math.nan,
        "timer_lateness_p99_ms": float(np.quantile(real.lateness_s, 0.99) * 1000) if real.lateness_s else math.nan,
    }


def _server_rates(real: RealStorm, seconds: int = 3) -> dict:
    """Handshakes the server decided, and admitted, per second in the first ``seconds`` after the
    restart: with a full herd outside, a server limited only by its bucket admits ``admission_rate``."""
    restart = real.setup.crash_at + real.downtime_s
    early = [(t, ok) for t, ok in real.server_handshakes if 0 <= t - restart < seconds]
    return {"server_decisions_per_s_first_3s": len(early) / seconds,
            "server_admitted_per_s_first_3s": sum(ok for _, ok in early) / seconds}


def model_summary(runs: list[dict]) -> dict:
    """The model's metrics over its seeds: quantiles of the pooled times, means of the counts."""
    pooled = np.concatenate([r["reconnect_s"] for r in runs])
    return {
        "reconnect_p50_s": float(np.quantile(pooled, 0.5)),
        "reconnect_p99_s": float(np.quantile(pooled, 0.99)),
        "reconnect_max_s": float(np.mean([r["summary"]["reconnect_max_s"] for r in runs])),
        "peak_attempts_per_s": float(np.mean([r["summary"]["peak_attempts_per_s"] for r in runs])),
        "refused_attempts": float(np.mean([r["summary"]["refused_attempts"] for r in runs])),
        "attempts": float(np.mean([r["summary"]["attempts"] for r in runs])),
    }


def ks_distance(a, b) -> float:
    """Two-sample Kolmogorov–Smirnov statistic: the largest gap between the two empirical CDFs."""
    from scipy.stats import ks_2samp

    return float(ks_2samp(np.asarray(a), np.asarray(b)).statistic)


def relative(real: float, model: float) -> float:
    return (real - model) / model if model else (0.0 if real == model else math.inf)


def comparison(real: RealStorm, model_runs: list[dict]) -> list[dict]:
    """One row per metric: model, real, relative difference (real - model) / model."""
    r, m = real_summary(real), model_summary(model_runs)
    rows = [{"metric": k, "model": m[k], "real": r[k], "relative_difference": relative(r[k], m[k])} for k in METRICS]
    pooled = np.concatenate([run["reconnect_s"] for run in model_runs])
    rows.append({"metric": "ks_distance", "model": 0.0, "real": ks_distance(real.reconnect_s, pooled),
                 "relative_difference": math.nan})
    return rows


def machine() -> dict:
    """Where a calibration was measured: versions and machine, stored with the result."""
    import websockets

    import sim

    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "python": platform.python_version(),
            "sim": sim.__version__, "websockets": websockets.__version__, "platform": platform.platform(),
            "cpus": os.cpu_count(), "load_average_1min": round(load[0], 2)}


def setup_dict(setup: StormSetup) -> dict:
    return asdict(setup)
