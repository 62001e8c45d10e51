"""A server that processes requests with a pool of workers and holds persistent connections.

Two faces of the same machine, used by different scenarios:

* **requests** (``submit``): ``workers`` serve jobs one at a time, each for a service time
  drawn from ``service_time``; at most ``capacity`` jobs are in the system (in service plus
  waiting), further ones are *blocked*. This is the M/M/c/K station of queueing theory.
* **connections** (over a :class:`~sim.core.network.Network`): clients send a handshake, the
  server admits at most ``admission_rate`` handshakes per second (token bucket of
  ``admission_burst``) and at most ``max_connections`` at once, answers heartbeats, and
  accounts ``memory_per_connection_bytes`` for each open connection.

A server can crash or shut down gracefully (close frames with a code), and restart. A crash
of the *process* leaves the host's kernel running: it resets every TCP connection (clients see
1006 at once) and refuses new handshakes until the restart. A crash of the *host* is silence:
clients notice only by heartbeat timeout and their handshakes time out.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import simpy

from sim.core.context import Context
from sim.core.distributions import Distribution
from sim.core.errors import ParameterError
from sim.core.network import Message, Network
from sim.core.timer import Timer
from sim.components import frames


HOLD = "hold"
"""What a gate's ``admit`` returns to keep a handshake waiting (it answers later).

A gate is any object with ``admit(server, client, data) -> None | HOLD | reason`` (None: go on
to the server's own limits; a reason string: refuse), ``opened(server, client)``,
``refused(server, client, result)`` (the server's own limits refused after the gate let it
through), ``closed(server, client)`` and ``activity(server, client)`` (a frame from a connected
client)."""


class Job:
    """One request through a server; times are simulated seconds (``nan`` until they happen)."""

    __slots__ = ("arrived_at", "started_at", "finished_at", "outcome", "payload", "on_done", "_service_end")

    def __init__(self, payload: Any = None, on_done: Callable[["Job"], None] | None = None) -> None:
        self.payload = payload
        self.on_done = on_done
        """Called with the job when it completes, is blocked or is lost in a crash."""
        self.arrived_at = self.started_at = self.finished_at = float("nan")
        self.outcome = ""
        """``completed``, ``blocked`` (system full), ``refused`` (server down) or ``lost`` (crash)."""
        self._service_end: Timer | None = None
        """The end of its service while a worker serves it (cancelled if the server goes down)."""

    @property
    def wait(self) -> float:
        """Time spent waiting for a worker, in seconds."""
        return self.started_at - self.arrived_at

    @property
    def response_time(self) -> float:
        """Time in the system (wait plus service), in seconds."""
        return self.finished_at - self.arrived_at


@dataclass(frozen=True)
class ServerSpec:
    """How a server is built; validated on creation."""

    workers: int = 1
    """Jobs served at the same time (c)."""
    capacity: int | None = None
    """Most jobs in the system, in service plus waiting (K); None means unlimited."""
    service_time: Distribution | None = None
    """Service time of one job, in seconds (required to ``submit`` jobs)."""
    max_connections: int | None = None
    """Most connections open at once; None means unlimited."""
    admission_rate: float | None = None
    """Handshakes admitted per second (token bucket); None means unlimited."""
    admission_burst: int = 1
    """Token bucket size: handshakes admitted back to back after a quiet period."""
    memory_base_bytes: int = 0
    """Memory of the process without connections, in bytes."""
    memory_per_connection_bytes: int = 0
    """Memory held for each open connection (buffers, session state), in bytes."""

    def __post_init__(self) -> None:
        _int(self.workers, "workers", 1)
        if self.capacity is not None:
            _int(self.capacity, "capacity", self.workers, f"an integer >= workers ({self.workers}), or unlimited")
        if self.max_connections is not None:
            _int(self.max_connections, "max_connections", 1)
        if self.admission_rate is not None and not (
            isinstance(self.admission_rate, (int, float)) and self.admission_rate > 0
        ):
            raise ParameterError("admission_rate", f"must be a rate > 0 per second, got {self.admission_rate!r}")
        _int(self.admission_burst, "admission_burst", 1)
        _int(self.memory_base_bytes, "memory_base_bytes", 0)
        _int(self.memory_per_connection_bytes, "memory_per_connection_bytes", 0)


def _int(value: Any, name: str, low: int, allowed: str | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ParameterError(name, f"must be {allowed or f'an integer >= {low}'}, got {value!r}")


class Server:
    """A server named ``name`` (also its network address); see the module docstring."""

    def __init__(self, ctx: Context, name: str, spec: ServerSpec = ServerSpec(), network: Network | None = None,
                 on_data: Callable[["Server", str, Any], None] | None = None,
                 on_connect: Callable[["Server", str], None] | None = None, gate: Any = None) -> None:
        self.ctx = ctx
        self.env: simpy.Environment = ctx.env
        self.name = name
        self.spec = spec
        self.network = network
        self.on_data = on_data
        """Application hook: ``on_data(server, client, payload)`` for each data frame received."""
        self.on_connect = on_connect
        """Application hook: ``on_connect(server, client)`` after each accepted handshake."""
        self.gate = gate
        """Optional front door (a proxy, a CDN edge, an auth check) that sees every handshake first;
        see :data:`HOLD` and ``sim.components.security.gateway``. None: every handshake goes
        straight to the server's own limits."""
        self.up = True
        # requests
        self._service = spec.service_time.bind(ctx.rng(f"server.{name}.service")) if spec.service_time else None
        self._queue: deque[Job] = deque()
        self._busy = 0
        self._serving: dict[Job, None] = {}  # ordered, unlike a set: crash notifications stay deterministic
        self._capacity = spec.capacity if spec.capacity is not None else float("inf")
        self.stats_since = 0.0
        """Jobs that arrived before this time are left out of the statistics (warm-up)."""
        # connections
        self.connections: dict[str, float] = {}
        """Open connections: client name -> time it was accepted."""
        self._tokens = float(spec.admission_burst)
        self._tokens_at = 0.0

        m, labels = ctx.metrics, {"server": name}
        self._m_jobs = m.counter("server_jobs_total", "Jobs by outcome", ("server", "outcome"))
        self._m_arrivals = m.counter("server_job_arrivals_total", "Jobs that arrived", ("server",)).labels(**labels)
        self._m_wait = m.histogram("server_queue_wait_seconds", "Time jobs waited for a worker", ("server",)).labels(**labels)
        self._m_response = m.histogram("server_response_seconds", "Time jobs spent in the system", ("server",)).labels(**labels)
        self._m_in_system = m.gauge("server_jobs_in_system", "Jobs in service or waiting", ("server",)).labels(**labels)
        self._m_queued = m.gauge("server_jobs_queued", "Jobs waiting for a worker", ("server",)).labels(**labels)
        self._m_busy = m.gauge("server_busy_workers", "Workers serving a job", ("server",)).labels(**labels)
        self._m_completed = self._m_jobs.labels(server=name, outcome="completed")
        self._m_blocked = self._m_jobs.labels(server=name, outcome="blocked")
        self._m_conn = m.gauge("server_connections", "Open connections", ("server",), track=True).labels(**labels)
        self._m_memory = m.gauge("server_memory_bytes", "Memory in use", ("server",)).labels(**labels)
        handshakes = m.counter("server_handshakes_total", "Handshakes by result", ("server", "result"))
        self._m_handshakes = {r: handshakes.labels(server=name, result=r)
                              for r in ("accepted", "refused_full", "refused_rate", "refused_down", "refused_gate")}
        self._m_ignored = m.counter("server_frames_ignored_total", "Data frames from clients not connected here",
                                    ("server",)).labels(**labels)
        self._m_memory.set(spec.memory_base_bytes)
        if network is not None:
            network.attach(name, self._on_message)

    # ==================================================================== requests =====
    def submit(self, job: Job) -> bool:
        """Offer ``job``; True if it entered the system (it completes later), False if turned away."""
        now = self.env.now
        job.arrived_at = now
        counted = now >= self.stats_since
        if counted:
            self._m_arrivals.inc()
        if self._service is None:
            raise RuntimeError(f"server {self.name} has no service_time: it cannot serve jobs")
        if not self.up:
            job.outcome = "refused"
            if counted:
                self._m_jobs.labels(server=self.name, outcome="refused").inc()
            self._notify(job)
            return False
        in_system = self._busy + len(self._queue)
        if in_system >= self._capacity:
            job.outcome = "blocked"
            if counted:
                self._m_blocked.inc()
            self._notify(job)
            return False
        self._m_in_system.set(in_system + 1)
        if self._busy < self.spec.workers:
            self._start(job)
        else:
            self._queue.append(job)
            self._m_queued.set(len(self._queue))
        return True

    def _start(self, job: Job) -> None:
        self._busy += 1
        self._serving[job] = None
        self._m_busy.set(self._busy)
        job.started_at = self.env.now
        if job.arrived_at >= self.stats_since:
            self._m_wait.observe(job.started_at - job.arrived_at)
        job._service_end = Timer(self.env, self._service.sample(), lambda: self._finish(job))

    def _finish(self, job: Job) -> None:
        job._service_end = None
        job.finished_at = self.env.now
        job.outcome = "completed"
        self._busy -= 1
        self._serving.pop(job, None)
        if job.arrived_at >= self.stats_since:
            self._m_completed.inc()
            self._m_response.observe(job.finished_at - job.arrived_at)
        queue = self._queue
        if queue:
            nxt = queue.popleft()
            self._m_queued.set(len(queue))
            self._start(nxt)
        else:
            self._m_busy.set(self._busy)
        self._m_in_system.set(self._busy + len(queue))
        self._notify(job)

    @staticmethod
    def _notify(job: Job) -> None:
        if job.on_done is not None:
            job.on_done(job)

    def request(self, payload: Any = None) -> simpy.Event:
        """Submit a job and return an event that fires with the finished :class:`Job`."""
        event = self.env.event()
        self.submit(Job(payload, on_done=event.succeed))
        return event

    @property
    def jobs_in_system(self) -> int:
        return self._busy + len(self._queue)

    def reset_statistics(self) -> None:
        """End of warm-up: counters, histograms and time averages start afresh, and jobs that
        arrived before now are left out even when they finish later."""
        self.stats_since = self.env.now
        for key, child in self._m_jobs.children().items():
            if key[0] == self.name:
                child.reset()
        for series in (self._m_arrivals, self._m_wait, self._m_response, *self._m_handshakes.values()):
            series.reset()
        for gauge in (self._m_in_system, self._m_queued, self._m_busy, self._m_conn, self._m_memory):
            gauge.reset_average()

    # ================================================================= connections =====
    def _on_message(self, msg: Message) -> None:
        kind, data = msg.payload
        client = msg.src
        if not self.up:  # only the kernel answers: connection refused
            if kind == frames.CONNECT:
                self._m_handshakes["refused_down"].cell._value += 1.0
                self.network.send(self.name, client, (frames.REFUSE, "refused_down"), frames.HANDSHAKE_BYTES)
            return
        if kind == frames.CONNECT:
            if client in self.connections:  # a reconnect the server had not noticed: replace the old one
                self._forget(client)
            gate = self.gate
            if gate is not None:
                verdict = gate.admit(self, client, data)
                if verdict == HOLD:
                    return  # the gate answers later: resume_handshake() or refuse_handshake()
                if verdict is not None:
                    self.refuse_handshake(client, verdict)
                    return
            self._complete_handshake(client)
        elif kind == frames.PING:
            if client in self.connections:
                if self.gate is not None:
                    self.gate.activity(self, client)
                self._send(client, frames.PONG, None)
        elif kind == frames.DATA:
            if self.gate is not None and client in self.connections:
                self.gate.activity(self, client)
            if client not in self.connections:
                self._m_ignored.inc()  # e.g. sent on a connection the server has already dropped
            elif self.on_data is not None:
                self.on_data(self, client, data)
        elif kind == frames.CLOSE:
            self._forget(client)

    def resume_handshake(self, client: str) -> None:
        """Go on with a handshake the gate held (e.g. after NGINX's ``limit_req`` delay)."""
        if self.up:
            self._complete_handshake(client)

    def refuse_handshake(self, client: str, reason: str) -> None:
        """Refuse a handshake on the gate's behalf (``reason`` travels in the refusal)."""
        self._m_handshakes["refused_gate"].inc()
        self._send(client, frames.REFUSE, reason, frames.HANDSHAKE_BYTES)

    def _complete_handshake(self, client: str) -> None:
        """The server's own limits: ``max_connections``, then the admission token bucket (a
        storm's every handshake comes here, so the bucket is written out in place)."""
        spec = self.spec
        limit = spec.max_connections
        rate = spec.admission_rate
        if limit is not None and len(self.connections) >= limit:
            result = "refused_full"
        elif rate is None:
            result = "accepted"
        else:
            now = self.env.now
            self._tokens = tokens = min(spec.admission_burst, self._tokens + (now - self._tokens_at) * rate)
            self._tokens_at = now
            if tokens >= 1:
                self._tokens = tokens - 1
                result = "accepted"
            else:
                result = "refused_rate"
        self._m_handshakes[result].cell._value += 1.0
        if result == "accepted":
            self.connections[client] = self.env.now
            self._connections_changed()
            self.network.send(self.name, client, (frames.ACCEPT, None), frames.HANDSHAKE_BYTES)
            if self.gate is not None:
                self.gate.opened(self, client)
            if self.on_connect is not None:
                self.on_connect(self, client)
        else:
            if self.gate is not None:
                self.gate.refused(self, client, result)
            self.network.send(self.name, client, (frames.REFUSE, result), frames.HANDSHAKE_BYTES)

    def adopt(self, *clients: str) -> None:
        """Count each of ``clients`` as connected without a handshake (see
        :meth:`Client.adopt_connection`); the gauges move once for them all."""
        now = self.env.now
        connections = self.connections
        for client in clients:
            connections[client] = now
        self._connections_changed()

    def _forget(self, client: str) -> None:
        if self.connections.pop(client, None) is not None:
            self._connections_changed()
            if self.gate is not None:
                self.gate.closed(self, client)

    def _connections_changed(self) -> None:
        n = len(self.connections)
        self._m_conn.set(n)
        self._m_memory.set(self.spec.memory_base_bytes + n * self.spec.memory_per_connection_bytes)

    def _send(self, client: str, kind: str, data: Any, size_bytes: int = frames.FRAME_HEADER_BYTES) -> None:
        assert self.network is not None
        self.network.send(self.name, client, (kind, data), size_bytes)

    def send_to(self, client: str, payload: Any, size_bytes: int = 0) -> bool:
        """Push a data frame to a connected client; False if it is not connected here."""
        if not self.up or client not in self.connections:
            return False
        self._send(client, frames.DATA, payload, frames.FRAME_HEADER_BYTES + size_bytes)
        return True

    def close(self, client: str, code: int = frames.NORMAL_CLOSURE) -> bool:
        """Close one connection with a close frame carrying ``code`` (e.g. a max connection age);
        False if ``client`` is not connected here."""
        if not self.up or client not in self.connections:
            return False
        self._send(client, frames.CLOSE, code)
        self._forget(client)
        return True

    def drop(self, client: str) -> bool:
        """Forget a connection without a frame (an idle timeout found the client silent); False if
        ``client`` is not connected here."""
        if client not in self.connections:
            return False
        self._forget(client)
        return True

    @property
    def memory_bytes(self) -> int:
        return self.spec.memory_base_bytes + len(self.connections) * self.spec.memory_per_connection_bytes

    # =============================================================== failures =========
    def crash(self, *, host: bool = False) -> None:
        """Die at once: jobs and connections are lost, no close frame is sent.

        A process crash (default) leaves the kernel to reset each connection and refuse
        handshakes; ``host=True`` is a dead machine: nothing answers at all.
        """
        if self.up and not host and self.network is not None:
            for client in self.connections:
                self._send(client, frames.RESET, None)
        self._go_down(detach=host)

    def shutdown(self, code: int = frames.GOING_AWAY) -> None:
        """Close every connection with a close frame carrying ``code``, then go down."""
        for client in list(self.connections):
            self._send(client, frames.CLOSE, code)
        self._go_down(detach=False)

    def _go_down(self, detach: bool) -> None:
        if not self.up:
            return
        self.up = False
        lost = [*self._serving, *self._queue]
        for job in self._serving:  # services in progress never finish
            job._service_end.cancel()
            job._service_end = None
        self._serving.clear()
        self._queue.clear()
        self._busy = 0
        for gauge in (self._m_in_system, self._m_queued, self._m_busy):
            gauge.set(0)
        gone = list(self.connections) if self.gate is not None else ()
        self.connections.clear()
        self._connections_changed()
        for client in gone:
            self.gate.closed(self, client)
        if detach and self.network is not None:
            self.network.detach(self.name)
        counter = self._m_jobs.labels(server=self.name, outcome="lost")
        for job in lost:
            job.outcome = "lost"
            counter.inc()
            self._notify(job)

    def restart(self) -> None:
        """Come back up, empty, with a full admission bucket."""
        if self.up:
            return
        self.up = True
        self._tokens, self._tokens_at = float(self.spec.admission_burst), self.env.now
        if self.network is not None and not self.network.is_attached(self.name):
            self.network.attach(self.name, self._on_message)

    def schedule_outage(self, at: float, downtime: float, *, graceful: bool = False, host: bool = False,
                        code: int = frames.SERVICE_RESTART) -> simpy.Process:
        """Crash (or shut down gracefully with ``code``) at ``at`` s and restart ``downtime`` s later;
        ``host=True`` makes the crash a dead host rather than a dead process."""
        if at < self.env.now:
            raise ParameterError("crash_at", f"must not be in the past (now is {self.env.now} s), got {at}")
        if not downtime >= 0:
            raise ParameterError("downtime", f"must be a number of seconds >= 0, got {downtime!r}")

        def outage(env: simpy.Environment):
            yield env.timeout(at - env.now)
            self.shutdown(code) if graceful else self.crash(host=host)
            yield env.timeout(downtime)
            self.restart()

        return self.env.process(outage(self.env))
