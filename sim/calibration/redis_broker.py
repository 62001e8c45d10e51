"""``broker-fanout``'s brokers against a real ``redis-server`` on loopback.

A ``redis-server`` (the Debian package) is started on 127.0.0.1 and a free port with its own
configuration (no persistence, no snapshot, its own directory), and **redis-py** clients play:

1. **Pub/Sub, slow subscriber.** A publisher publishes ``rate`` messages of ``message_bytes``
   per second on one channel; a fast subscriber reads everything at once, a slow one reads
   ``slow_read_rate`` bytes per second. ``client-output-buffer-limit pubsub`` is set as in
   ``data/brokers.json`` (32mb 8mb 60) or to a small value. A monitor polls ``CLIENT LIST`` to
   see when the server closes the slow subscriber (and its ``omem``); Redis' own log line
   confirms it. Then the slow subscriber reads what is left in its socket and counts what it
   got; missed = published - received.
2. **Pub/Sub, absent subscriber.** A subscriber unsubscribes for a while and comes back: it
   receives none of what was published meanwhile (at most once, nothing stored).
3. **Stream with a consumer group.** The same absence against ``XADD`` / ``XREADGROUP`` /
   ``XACK``: the consumer comes back and reads from its group's last delivered id, and its
   pending (read but not acknowledged) entries are read again from id ``0`` — at least once.

The model side: the same publication times replayed into the model's
:class:`~sim.components.broker.PubSubBroker` (when does it cut the slow subscriber, how much does
it miss), and the ``broker-fanout`` scenario with the same rates and limits (pubsub and log).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sim.calibration.local import HOST, free_port, stop
from sim.core.errors import ParameterError


class RedisUnavailable(RuntimeError):
    """``redis-server`` is not installed (the one reason a Redis calibration is skipped)."""


def redis_server_path() -> str:
    path = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)
    if path is None:
        raise RedisUnavailable("redis-server is not installed (Debian: apt-get install -y redis-server)")
    return path


def redis_version(path: str | None = None) -> str:
    out = subprocess.run([path or redis_server_path(), "--version"], capture_output=True, text=True, timeout=10).stdout
    found = re.search(r"v=(\S+)", out)
    return found.group(1) if found else out.strip()


def _die_with_parent() -> None:
    """In the child, before exec: the kernel kills it (SIGKILL) if the process that started it dies,
    so a redis-server never outlives a killed test run."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1


def _watchdog(proc: subprocess.Popen, time_limit: float) -> None:
    """Kill ``proc`` after ``time_limit`` seconds whatever happens (a daemon timer thread)."""
    timer = threading.Timer(time_limit, lambda: proc.poll() is None and proc.kill())
    timer.daemon = True
    timer.start()


@contextlib.contextmanager
def redis_server(pubsub_limit: tuple[int, int, int], time_limit: float = 300.0):
    """A private ``redis-server`` on 127.0.0.1; yields ``(port, log_path)``; always stopped.

    ``pubsub_limit`` is ``(hard_bytes, soft_bytes, soft_seconds)`` of ``client-output-buffer-limit
    pubsub``. The server gets no persistence (``save ""``, ``appendonly no``) and its own directory.
    """
    import redis

    path = redis_server_path()
    hard, soft, seconds = pubsub_limit
    workdir = Path(tempfile.mkdtemp(prefix="sim-redis-"))
    proc = None
    try:
        for _ in range(5):  # a free port can be taken between the probe and the bind: try another
            port = free_port()
            log = workdir / "redis.log"
            conf = workdir / "redis.conf"
            conf.write_text("\n".join([
                f"port {port}", f"bind {HOST}", "protected-mode yes", "daemonize no", 'save ""', "appendonly no",
                f"dir {workdir}", f"logfile {log}", "loglevel notice", "databases 1",
                f"client-output-buffer-limit pubsub {hard} {soft} {seconds}", ""]))
            proc = subprocess.Popen([path, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    preexec_fn=_die_with_parent)
            _watchdog(proc, time_limit)
            client = redis.Redis(host=HOST, port=port, socket_timeout=1)
            for _ in range(100):  # up to ~5 s
                if proc.poll() is not None:
                    break
                try:
                    if client.ping():
                        break
                except redis.exceptions.ConnectionError:
                    time.sleep(0.05)
            else:
                raise RuntimeError("redis-server did not answer PING within 5 s")
            client.close()
            if proc.poll() is None:
                yield port, log
                return
        raise RuntimeError("redis-server did not start (see its log)")
    finally:
        if proc is not None:
            stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


# ============================================================================ setups =====
@dataclass(frozen=True)
class SlowSubscriberSetup:
    """One pub/sub run with a fast and a slow subscriber (bytes, seconds)."""

    name: str = "small"
    rate: float = 2000.0
    """Messages published per second."""
    message_bytes: int = 1000
    slow_read_rate: float = 50_000.0
    """Bytes per second the slow subscriber reads."""
    hard_bytes: int = 2 * 1024 * 1024
    soft_bytes: int = 512 * 1024
    soft_seconds: int = 1
    duration: float = 10.0
    """Publishing time (the run stops earlier once the slow subscriber is cut and drained)."""

    def __post_init__(self) -> None:
        for key in ("rate", "slow_read_rate", "duration"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ParameterError(key, f"must be a number > 0, got {value!r}")
        if self.duration > 120:
            raise ParameterError("duration", f"must be at most 120 s, got {self.duration}")
        if self.rate * self.message_bytes > 50e6:
            raise ParameterError("rate", "times message_bytes must stay under 50 MB/s on loopback")
        for key in ("message_bytes", "hard_bytes", "soft_bytes", "soft_seconds"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if key == "message_bytes" else 0):
                raise ParameterError(key, f"must be an integer >= 0, got {value!r}")


def preset_setup() -> SlowSubscriberSetup:
    """The limits of ``data/brokers.json`` (redis.conf's 32mb 8mb 60), with rates that reach them."""
    from sim import data

    limit = data.load("brokers")["redis_pubsub"]["client_output_buffer_limit_pubsub"]
    return SlowSubscriberSetup(name="preset", rate=1000.0, message_bytes=10_000, slow_read_rate=200_000.0,
                               hard_bytes=int(limit["hard_bytes"]), soft_bytes=int(limit["soft_bytes"]),
                               soft_seconds=int(limit["soft_seconds"]), duration=20.0)


# ============================================================================ pub/sub =====
@dataclass
class SlowSubscriberRun:
    setup: SlowSubscriberSetup
    publish_s: list[float] = field(default_factory=list)
    """Publication times, seconds from the first publish."""
    fast_received: int = 0
    slow_received: int = 0
    slow_read_at_cut: int = 0
    """Messages the slow subscriber had read when the server closed it."""
    published_at_cut: int = 0
    cut_s: float = math.nan
    """When the monitor saw the slow subscriber gone (polling every 10 ms)."""
    omem_before_cut: int = 0
    """The slow subscriber's output buffer (CLIENT LIST omem) at the last poll before the cut."""
    omem: list[tuple[float, int]] = field(default_factory=list)
    log_line: str = ""
    """Redis' own log line about the disconnection."""


def _payload(seq: int, size: int) -> bytes:
    head = f"{seq}:".encode()
    return head + b"x" * max(0, size - len(head))


def run_slow_subscriber(setup: SlowSubscriberSetup) -> SlowSubscriberRun:
    """Publish at ``setup.rate`` to a fast and a slow subscriber until the slow one is cut (or time is up)."""
    import redis

    limit = (setup.hard_bytes, setup.soft_bytes, setup.soft_seconds)
    record = SlowSubscriberRun(setup)
    with redis_server(limit, time_limit=setup.duration + 120) as (port, log):
        def conn(name: str) -> redis.Redis:
            r = redis.Redis(host=HOST, port=port, socket_timeout=10, client_name=name)
            r.ping()
            return r

        channel = "calibration"
        stop = threading.Event()
        cut = threading.Event()
        start_box: list[float] = []
        errors: list[BaseException] = []
        fast, slow, publisher, monitor = conn("fast"), conn("slow"), conn("publisher"), conn("monitor")
        fast_ps = fast.pubsub(ignore_subscribe_messages=True)
        slow_ps = slow.pubsub(ignore_subscribe_messages=True)
        fast_ps.subscribe(channel)
        slow_ps.subscribe(channel)
        for ps in (fast_ps, slow_ps):  # consume the subscribe confirmations
            for _ in range(50):
                if ps.subscribed and ps.get_message(timeout=0.1) is None:
                    break
        deadline = time.monotonic() + setup.duration + 60

        def read_fast():
            try:
                while not stop.is_set() or record.fast_received < len(record.publish_s):
                    if time.monotonic() > deadline:
                        return
                    if fast_ps.get_message(timeout=0.2) is not None:
                        record.fast_received += 1
            except BaseException as error:  # noqa: BLE001 (reported below)
                errors.append(error)

        def read_slow():
            pause = setup.message_bytes / setup.slow_read_rate
            try:
                while time.monotonic() < deadline:
                    message = slow_ps.get_message(timeout=0.5)
                    if message is None:
                        if cut.is_set() or stop.is_set():
                            # nothing more in the socket: after a cut, EOF comes next
                            with contextlib.suppress(redis.exceptions.ConnectionError, OSError):
                                if slow_ps.get_message(timeout=0.5) is not None:
                                    record.slow_received += 1
                                    continue
                            return
                        continue
                    record.slow_received += 1
                    if not (cut.is_set() or stop.is_set()):
                        time.sleep(pause)  # the slow reader; after the cut, drain what the kernel holds
            except (redis.exceptions.ConnectionError, OSError):
                return  # the server closed the connection and the socket is drained
            except BaseException as error:  # noqa: BLE001
                errors.append(error)

        def watch():
            try:
                while not stop.is_set() and time.monotonic() < deadline:
                    clients = {c.get("name"): c for c in monitor.client_list()}
                    now = time.monotonic()
                    start = start_box[0] if start_box else now
                    if "slow" in clients:
                        omem = int(clients["slow"].get("omem", 0))
                        record.omem.append((now - start, omem))
                        record.omem_before_cut = omem
                    elif start_box:
                        record.cut_s = now - start
                        record.published_at_cut = len(record.publish_s)
                        record.slow_read_at_cut = record.slow_received
                        cut.set()
                        return
                    time.sleep(0.01)
            except BaseException as error:  # noqa: BLE001
                errors.append(error)

        threads = [threading.Thread(target=f, daemon=True) for f in (read_fast, read_slow, watch)]
        for t in threads:
            t.start()
        try:
            start = time.monotonic()
            start_box.append(start)
            period = 1.0 / setup.rate
            seq = 0
            while True:  # every 5 ms, publish what is due in one pipeline (one round trip)
                now = time.monotonic()
                if now - start >= setup.duration or (cut.is_set() and now - start >= record.cut_s + 0.5):
                    break
                due = min(int((now - start) / period) + 1, int(setup.duration * setup.rate))
                if due > seq:
                    pipe = publisher.pipeline(transaction=False)
                    for k in range(seq, due):
                        pipe.publish(channel, _payload(k, setup.message_bytes))
                    pipe.execute()
                    sent = time.monotonic() - start
                    record.publish_s.extend([sent] * (due - seq))
                    seq = due
                time.sleep(0.005)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=setup.duration + 30)
            for c in (fast_ps, slow_ps):
                with contextlib.suppress(Exception):
                    c.close()
            for c in (fast, slow, publisher, monitor):
                with contextlib.suppress(Exception):
                    c.close()
        if errors:
            raise errors[0]
        text = log.read_text(errors="replace") if log.exists() else ""
        lines = [ln for ln in text.splitlines() if "output buffer limits" in ln]
        record.log_line = lines[0].strip() if lines else ""
    return record


def model_slow_subscriber(run: SlowSubscriberRun, latency_s: float = 0.0001) -> dict:
    """The same publication times replayed into the model's ``PubSubBroker``."""
    from sim.components.broker import MESSAGE, PubSubBroker, Publication
    from sim.core import Constant, Context, LinkSpec, Network

    s = run.setup
    ctx = Context(1)
    env = ctx.env
    net = Network(ctx, LinkSpec(latency=Constant(latency_s), fifo=True))
    broker = PubSubBroker(ctx, net, "broker", hard_limit_bytes=s.hard_bytes, soft_limit_bytes=s.soft_bytes,
                          soft_seconds=float(s.soft_seconds))
    got = {"fast": 0, "slow": 0}
    cut_at: list[float] = []

    def handler(name):
        def on(msg):
            kind = msg.payload[0]
            if kind == MESSAGE:
                got[name] += 1
            elif kind == "closed":
                cut_at.append(env.now)
        return on

    for name, rate in (("fast", 1e12), ("slow", s.slow_read_rate)):
        net.attach(name, handler(name))
        broker.subscribe(name, rate)

    def publish(env):
        for i, t in enumerate(run.publish_s):
            yield env.timeout(max(0.0, t - env.now))
            broker.publish(Publication(i, "publisher", i, "publisher", env.now, s.message_bytes))

    env.process(publish(env))
    env.run(until=(run.publish_s[-1] if run.publish_s else 0) + 120)
    published = len(run.publish_s)
    cut = cut_at[0] if cut_at else math.nan
    return {"cut_s": cut, "slow_received": got["slow"], "slow_missed": published - got["slow"],
            "fast_received": got["fast"], "cut_by": next((k for k, v in broker.cut_off.items() if v), ""),
            "published_at_cut": sum(1 for t in run.publish_s if t <= cut) if cut_at else published}


def kernel_held_bytes(run: SlowSubscriberRun) -> int:
    """Bytes published before the cut that had left Redis (not in its omem) but not yet reached the slow
    reader: the socket buffers of the kernel (server send buffer, client receive buffer)."""
    s = run.setup
    return max(0, (run.published_at_cut - run.slow_read_at_cut) * s.message_bytes - run.omem_before_cut)


def model_with_kernel_buffers(run: SlowSubscriberRun) -> dict:
    """The model with the limits raised by the bytes the kernel held (measured in this very run): Redis
    counts only its own output buffer, the model counts the whole backlog. A consistency check of the
    explanation, not an independent prediction."""
    from dataclasses import replace

    k = kernel_held_bytes(run)
    s = run.setup
    shifted = SlowSubscriberRun(replace(s, hard_bytes=s.hard_bytes + k if s.hard_bytes else 0,
                                        soft_bytes=s.soft_bytes + k if s.soft_bytes else 0), run.publish_s)
    return model_slow_subscriber(shifted)


def slow_subscriber_rows(run: SlowSubscriberRun, model: dict) -> list[dict]:
    published = len(run.publish_s)
    real = {"cut_s": run.cut_s, "slow_received": run.slow_received, "slow_missed": published - run.slow_received,
            "fast_received": run.fast_received, "published_at_cut": run.published_at_cut}
    rows = []
    for metric in ("cut_s", "published_at_cut", "slow_received", "slow_missed", "fast_received"):
        m, r = model[metric], real[metric]
        rows.append({"metric": metric, "model": m, "real": r,
                     "relative_difference": (r - m) / m if m else (0.0 if r == m else math.nan)})
    return rows


# ============================================================================ absences =====
def run_absence(port: int, published_before: int = 20, published_away: int = 50, published_after: int = 20,
                unacked: int = 5) -> dict:
    """A subscriber away while messages are published: Pub/Sub delivers none of them; a Stream with a
    consumer group replays them (and redelivers the entries read but not acknowledged before leaving)."""
    import redis

    r = redis.Redis(host=HOST, port=port, socket_timeout=5, decode_responses=True)
    sub = redis.Redis(host=HOST, port=port, socket_timeout=5, decode_responses=True)
    channel, stream, group = "absence", "absence-stream", "nodes"
    ps = sub.pubsub(ignore_subscribe_messages=True)

    def drain(limit: int = 10_000) -> list[str]:
        got = []
        for _ in range(limit):
            message = ps.get_message(timeout=0.2)
            if message is None:
                break
            got.append(message["data"])
        return got

    try:
        # --- Pub/Sub
        ps.subscribe(channel)
        drain()
        for i in range(published_before):
            r.publish(channel, f"before-{i}")
        before = drain()
        ps.unsubscribe(channel)
        drain()
        listeners_while_away = [r.publish(channel, f"away-{i}") for i in range(published_away)]
        ps.subscribe(channel)
        drain()
        for i in range(published_after):
            r.publish(channel, f"after-{i}")
        after = drain()
        pubsub = {"published_while_away": published_away,
                  "received_of_those": sum(m.startswith("away-") for m in before + after),
                  "receivers_counted_by_publish_while_away": sum(listeners_while_away),
                  "received_before": len(before), "received_after": len(after)}
        # --- Stream with a consumer group
        r.delete(stream)
        r.xgroup_create(stream, group, id="$", mkstream=True)
        for i in range(published_before):
            r.xadd(stream, {"m": f"before-{i}"})
        batch = r.xreadgroup(group, "node-1", {stream: ">"}, count=published_before)[0][1]
        acked = [entry_id for entry_id, _ in batch[: published_before - unacked]]
        r.xack(stream, group, *acked)  # the last `unacked` were read but not processed: the node died
        for i in range(published_away):
            r.xadd(stream, {"m": f"away-{i}"})
        pending = r.xreadgroup(group, "node-1", {stream: "0"})[0][1]  # back: first our pending entries
        new = r.xreadgroup(group, "node-1", {stream: ">"})[0][1]      # then what arrived while away
        r.xack(stream, group, *[e for e, _ in pending + new])
        stream_result = {"published_while_away": published_away,
                         "received_of_those": sum(f["m"].startswith("away-") for _, f in new),
                         "redelivered_unacked": len(pending), "unacked_before_leaving": unacked,
                         "pending_after": r.xpending(stream, group)["pending"]}
        return {"pubsub": pubsub, "stream": stream_result}
    finally:
        with contextlib.suppress(Exception):
            ps.close()
        r.close()
        sub.close()


def model_absence(published_away_rate: float = 10.0) -> dict:
    """broker-fanout's two brokers with a subscriber away: what it lost (pubsub) and what the log replays."""
    import sim

    rows = sim.run("broker-fanout", seed=1, nodes=2, subscribers=2, publishers=1, rate=published_away_rate,
                   duration=20.0, restart_at=None, disconnect_at=5.0, disconnect_for=5.0).summary
    out = {}
    for _, row in rows.iterrows():
        out[row["broker"]] = {"disconnected_at_publish": int(row["disconnected_at_publish"]),
                              "lost_disconnected": int(row["lost_disconnected"]), "duplicates": int(row["duplicates"]),
                              "lost": int(row["lost"])}
    return out


# ============================================================================ the command =====
def _fanout_model(setup: SlowSubscriberSetup) -> dict:
    """broker-fanout itself with the same rate, size and limits: 2 nodes, node 1 reads slowly."""
    import sim

    result = sim.run("broker-fanout", seed=1, broker="pubsub", nodes=2, subscribers=2, publishers=1, rate=setup.rate,
                     message_bytes=setup.message_bytes, warmup=0.5, duration=setup.duration, drain=1.0,
                     restart_at=None, disconnect_at=None, slow_node=1, slow_read_rate=setup.slow_read_rate,
                     hard_limit_bytes=setup.hard_bytes, soft_limit_bytes=setup.soft_bytes,
                     soft_seconds=float(setup.soft_seconds), resubscribe_delay=setup.duration + 10)
    row = result.summary.iloc[0]
    table = result.series["subscribers"]
    return {"published": int(row["published"]), "slow_consumer_cutoffs": int(row["slow_consumer_cutoffs"]),
            "lost_in_broker_buffer": int(row["lost_in_broker_buffer"]),
            "slow_subscriber_lost": int(table.iloc[1]["lost"]), "fast_subscriber_lost": int(table.iloc[0]["lost"])}


def command(args) -> int:
    import json

    from sim.calibration.command import _json_default, _table
    from sim.calibration.reconnect import machine

    try:
        path = redis_server_path()
    except RedisUnavailable as error:
        raise ParameterError("broker-fanout", str(error)) from None
    import redis

    stored = {"target": "broker-fanout", "machine": {**machine(), "redis_server": redis_version(path),
                                                     "redis_py": redis.__version__,
                                                     "tcp_rmem": _sysctl("net/ipv4/tcp_rmem"),
                                                     "tcp_wmem": _sysctl("net/ipv4/tcp_wmem")},
              "slow_subscriber": {}}
    for setup in (SlowSubscriberSetup(), preset_setup()):
        print(f"\n== pub/sub slow subscriber, limits {setup.name}: client-output-buffer-limit pubsub "
              f"{setup.hard_bytes} {setup.soft_bytes} {setup.soft_seconds}; {setup.rate:g} msg/s x "
              f"{setup.message_bytes} B, slow reader {setup.slow_read_rate:g} B/s ==", flush=True)
        run = run_slow_subscriber(setup)
        model = model_slow_subscriber(run)
        rows = slow_subscriber_rows(run, model)
        corrected = model_with_kernel_buffers(run)
        rows.append({"metric": "cut_s (model + kernel buffers)", "model": corrected["cut_s"], "real": run.cut_s,
                     "relative_difference": (run.cut_s - corrected["cut_s"]) / corrected["cut_s"]})
        print(_table(rows))
        held = kernel_held_bytes(run)
        print(f"   Redis log: {run.log_line[run.log_line.find('Client'):][:60] or '(no line)'}... "
              f"{run.log_line[-60:]}\n   Redis cut by the {_cut_by(run)} limit; at the cut the slow subscriber had read "
              f"{run.slow_read_at_cut} messages; {held} more bytes were still on their way in the kernel's socket "
              f"buffers (not counted in Redis' omem, last seen {run.omem_before_cut} B); model cut by: {model['cut_by']}")
        stored["slow_subscriber"][setup.name] = {
            "setup": asdict(setup), "rows": rows, "model_cut_by": model["cut_by"], "log_line": run.log_line,
            "slow_read_at_cut": run.slow_read_at_cut, "kernel_held_bytes_at_cut": held,
            "real_cut_by": _cut_by(run),
            "omem_before_cut": run.omem_before_cut, "published": len(run.publish_s),
            "omem": run.omem[:: max(1, len(run.omem) // 200)], "broker_fanout": _fanout_model(setup)}
    with redis_server((0, 0, 0)) as (port, _):
        absence = run_absence(port)
    stored["absence"] = {"real": absence, "model": model_absence()}
    print("\n== a subscriber away while 50 messages are published ==")
    print(f"   real Pub/Sub: received {absence['pubsub']['received_of_those']} of them; "
          f"real Stream + consumer group: {absence['stream']['received_of_those']} replayed, "
          f"{absence['stream']['redelivered_unacked']} unacknowledged entries redelivered")
    m = stored["absence"]["model"]
    print(f"   model pubsub: lost {m['pubsub']['lost_disconnected']} of {m['pubsub']['disconnected_at_publish']} "
          f"published while away; model log: lost {m['log']['lost_disconnected']} of "
          f"{m['log']['disconnected_at_publish']}")
    stem = args.name or "broker-fanout"
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"{stem}.json"
    out.write_text(json.dumps(stored, indent=1, default=_json_default) + "\n")
    plot = args.out / f"{stem}.png"
    plot_slow_subscriber(stored, plot)
    print(f"\n{out}\n{plot}")
    return 0


def _cut_by(run: SlowSubscriberRun) -> str:
    """Which limit Redis applied, read from the omem of its own log line."""
    found = re.search(r"omem=(\d+)", run.log_line)
    if not found:
        return ""
    return "hard" if run.setup.hard_bytes and int(found.group(1)) >= run.setup.hard_bytes else "soft"


def _sysctl(name: str) -> str:
    try:
        return Path("/proc/sys", name).read_text().strip()
    except OSError:
        return ""


def plot_slow_subscriber(stored: dict, path: Path | None = None):
    """The slow subscriber's output buffer (Redis omem) over time, with the real and model cut times."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = list(stored["slow_subscriber"])
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        entry = stored["slow_subscriber"][name]
        t = [p[0] for p in entry["omem"]]
        mb = [p[1] / 2**20 for p in entry["omem"]]
        ax.plot(t, mb, label="real omem (CLIENT LIST)")
        rows = {r["metric"]: r for r in entry["rows"]}
        ax.axvline(rows["cut_s"]["real"], color="C1", ls="--", label=f"real cut {rows['cut_s']['real']:.2f} s")
        ax.axvline(rows["cut_s"]["model"], color="C2", ls=":", label=f"model cut {rows['cut_s']['model']:.2f} s")
        s = entry["setup"]
        for value, label in ((s["hard_bytes"], "hard limit"), (s["soft_bytes"], "soft limit")):
            if value:
                ax.axhline(value / 2**20, color="grey", lw=0.8, ls="-.")
                ax.annotate(label, (0, value / 2**20), fontsize=7, va="bottom")
        ax.set(title=f"limits {name}: {s['hard_bytes'] // 1024} KiB / {s['soft_bytes'] // 1024} KiB / {s['soft_seconds']} s",
               xlabel="time since the first publish (s)", ylabel="slow subscriber's output buffer (MiB)")
        ax.legend(fontsize=7)
    m = stored["machine"]
    fig.suptitle(f"Redis Pub/Sub slow subscriber, model vs real redis-server {m['redis_server']} "
                 f"({m['date_utc']})", fontsize=9)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=90)
        plt.close(fig)
    return fig
