"""Server (jobs and connections) and Client over the simulated network, on hand-checked schedules."""

from __future__ import annotations

import math

import pytest

from sim.components import frames
from sim.components.client import CONNECTED, CONNECTING, DISCONNECTED, Client
from sim.components.server import Job, Server, ServerSpec
from sim.core.context import Context
from sim.core.distributions import Constant, Exponential
from sim.core.errors import ParameterError
from sim.core.network import LinkSpec, Network

LATENCY = 0.0625  # exact in binary, so hand-computed times compare exactly


def at(ctx: Context, t: float, fn) -> None:
    ctx.env.timeout(t - ctx.now).callbacks.append(lambda _e: fn())


# ======================================================================= jobs ======
def test_mmck_schedule_by_hand() -> None:
    ctx = Context(0)
    server = Server(ctx, "s", ServerSpec(workers=2, capacity=3, service_time=Constant(1.0)))
    jobs: dict[str, Job] = {}
    done: list[tuple[str, float, str]] = []
    accepted: dict[str, bool] = {}

    def submit(name: str) -> None:
        job = Job(name, on_done=lambda j: done.append((j.payload, ctx.now, j.outcome)))
        jobs[name] = job
        accepted[name] = server.submit(job)

    arrivals = [(0.0, "J1"), (0.0, "J2"), (0.0, "J3"), (0.0, "J4"), (0.5, "J5"), (1.25, "J6"), (1.5, "J7"),
                (1.75, "J8"), (2.125, "J9"), (2.1875, "J10")]
    for t, name in arrivals:
        at(ctx, t, lambda n=name: submit(n))
    in_system = []
    for t in (0.5, 1.1, 1.6, 2.15, 2.5, 3.1, 3.5):
        at(ctx, t, lambda: in_system.append(server.jobs_in_system))
    ctx.run()

    # J1, J2 start at once; J3 waits for the first free worker (t=1); J4 and J5 find 3 jobs in the
    # system; J6 finds 1; J7 queues behind J3 and J6; J8 is blocked; J9 queues and starts when J6
    # ends at 2.25; J10 finds J6, J7, J9 and is blocked.
    expected = {  # name: (outcome, started, finished)
        "J1": ("completed", 0.0, 1.0), "J2": ("completed", 0.0, 1.0), "J3": ("completed", 1.0, 2.0),
        "J4": ("blocked", None, None), "J5": ("blocked", None, None), "J6": ("completed", 1.25, 2.25),
        "J7": ("completed", 2.0, 3.0), "J8": ("blocked", None, None), "J9": ("completed", 2.25, 3.25),
        "J10": ("blocked", None, None),
    }
    arrived = dict((n, t) for t, n in arrivals)
    for name, (outcome, started, finished) in expected.items():
        job = jobs[name]
        assert job.outcome == outcome, name
        assert job.arrived_at == arrived[name]
        assert accepted[name] == (outcome == "completed")
        if started is None:
            assert math.isnan(job.started_at) and math.isnan(job.finished_at)
        else:
            assert (job.started_at, job.finished_at) == (started, finished), name
            assert job.wait == started - arrived[name]
            assert job.response_time == finished - arrived[name]
    assert [jobs[n].wait for n in ("J1", "J2", "J3", "J6", "J7", "J9")] == [0, 0, 1.0, 0, 0.5, 0.125]
    # on_done: once per job, blocked ones at once, in completion order
    assert sorted(d[0] for d in done) == sorted(expected)
    assert [d[0] for d in done if d[2] == "blocked"] == ["J4", "J5", "J8", "J10"]
    assert [(n, t) for n, t, o in done if o == "completed"] == [
        ("J1", 1.0), ("J2", 1.0), ("J3", 2.0), ("J6", 2.25), ("J7", 3.0), ("J9", 3.25)]
    assert in_system == [3, 1, 3, 3, 2, 1, 0]

    m = ctx.metrics
    assert m["server_jobs_total"].labels(server="s", outcome="completed").value == 6
    assert m["server_jobs_total"].labels(server="s", outcome="blocked").value == 4
    assert m["server_job_arrivals_total"].labels(server="s").value == 10
    wait = m["server_queue_wait_seconds"].labels(server="s")
    assert wait.count == 6 and wait.sum == pytest.approx(1.625)
    # time-average of jobs in system over [0, 3.25] equals the sum of response times / 3.25 (Little)
    area = 1 + 1 + 2 + 1 + 1.5 + 1.125
    assert m["server_jobs_in_system"].labels(server="s").time_average(until=3.25) == pytest.approx(area / 3.25)


def test_unlimited_capacity_queues_everything_fifo() -> None:
    ctx = Context(0)
    server = Server(ctx, "s", ServerSpec(workers=1, service_time=Constant(0.5)))
    jobs = [Job(i) for i in range(6)]
    assert all(server.submit(j) for j in jobs)
    assert server.jobs_in_system == 6
    ctx.run()
    assert [j.started_at for j in jobs] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert [j.outcome for j in jobs] == ["completed"] * 6


def test_request_event_fires_with_the_job() -> None:
    ctx = Context(0)
    server = Server(ctx, "s", ServerSpec(workers=1, capacity=1, service_time=Constant(2.0)))
    results = []

    def client(env):
        first = server.request("a")
        second = server.request("b")          # blocked: fires at once
        job = yield second
        results.append((env.now, job.payload, job.outcome))
        job = yield first
        results.append((env.now, job.payload, job.outcome))

    ctx.env.process(client(ctx.env))
    ctx.run()
    assert results == [(0.0, "b", "blocked"), (2.0, "a", "completed")]


def test_random_service_times_come_from_the_named_stream() -> None:
    def finishes(seed: int) -> list[float]:
        ctx = Context(seed)
        server = Server(ctx, "s", ServerSpec(workers=1, service_time=Exponential(1.0)))
        jobs = [Job() for _ in range(20)]
        for j in jobs:
            server.submit(j)
        ctx.run()
        return [j.finished_at for j in jobs]

    assert finishes(1) == finishes(1)
    assert finishes(1) != finishes(2)
    # the expected service time is drawn from ctx.rng("server.s.service")
    ctx = Context(1)
    expected = Exponential(1.0).bind(ctx.rng("server.s.service")).samples(20).cumsum()
    assert finishes(1) == pytest.approx(list(expected))


def test_server_without_service_time_cannot_serve() -> None:
    server = Server(Context(0), "s", ServerSpec())
    with pytest.raises(RuntimeError, match="no service_time"):
        server.submit(Job())


def test_crash_loses_queued_and_in_service_jobs_and_restart_serves_again() -> None:
    ctx = Context(0)
    server = Server(ctx, "s", ServerSpec(workers=2, service_time=Constant(1.0)))
    calls: list[tuple[int, str, float]] = []

    def job(i: int) -> Job:
        return Job(i, on_done=lambda j: calls.append((j.payload, j.outcome, ctx.now)))

    before = [job(i) for i in range(4)]
    for j in before:
        server.submit(j)
    at(ctx, 0.5, server.crash)
    refused = job(10)
    at(ctx, 0.6, lambda: server.submit(refused))
    at(ctx, 0.75, server.restart)
    after = [job(i) for i in (20, 21, 22)]
    at(ctx, 0.8, lambda: [server.submit(j) for j in after])
    states = []
    at(ctx, 0.55, lambda: states.append((server.up, server.jobs_in_system)))
    at(ctx, 1.5, lambda: states.append((server.up, server.jobs_in_system)))
    ctx.run()

    assert [j.outcome for j in before] == ["lost"] * 4
    assert all(math.isnan(j.finished_at) for j in before)
    assert refused.outcome == "refused"
    # each on_done exactly once; the old services finishing at t=1 are ignored
    assert sorted(c[0] for c in calls) == [0, 1, 2, 3, 10, 20, 21, 22]
    assert [c for c in calls if c[1] == "lost"] == [(0, "lost", 0.5), (1, "lost", 0.5), (2, "lost", 0.5),
                                                    (3, "lost", 0.5)]
    # after the restart 2 workers serve 20 and 21 while 22 waits: the stale completions at t=1
    # must not free a worker
    assert [(j.outcome, j.started_at, j.finished_at) for j in after] == [
        ("completed", 0.8, 1.8), ("completed", 0.8, 1.8), ("completed", 1.8, 2.8)]
    assert states == [(False, 0), (True, 3)]
    m = ctx.metrics["server_jobs_total"]
    assert m.labels(server="s", outcome="lost").value == 4
    assert m.labels(server="s", outcome="refused").value == 1
    assert m.labels(server="s", outcome="completed").value == 3


def test_schedule_outage() -> None:
    ctx = Context(0)
    server = Server(ctx, "s", ServerSpec(workers=1, service_time=Constant(1.0)))
    ups = []
    server.schedule_outage(2.0, 3.0)
    for t in (1.5, 2.5, 4.5, 5.5):
        at(ctx, t, lambda: ups.append(server.up))
    ctx.run()
    assert ups == [True, False, False, True]
    with pytest.raises(ParameterError) as err:
        server.schedule_outage(1.0, 1.0)
    assert err.value.parameter == "crash_at"
    with pytest.raises(ParameterError) as err:
        server.schedule_outage(10.0, -1.0)
    assert err.value.parameter == "downtime"


def test_reset_statistics_excludes_warmup_jobs() -> None:
    ctx = Context(0)
    server = Server(ctx, "s", ServerSpec(workers=1, service_time=Constant(1.0)))
    server.submit(Job())                 # arrives in warm-up, finishes at 1
    server.submit(Job())                 # arrives in warm-up, finishes at 2
    at(ctx, 0.5, server.reset_statistics)
    at(ctx, 0.5, lambda: server.submit(Job()))  # counted, finishes at 3
    ctx.run()
    m = ctx.metrics
    assert m["server_jobs_total"].labels(server="s", outcome="completed").value == 1
    assert m["server_job_arrivals_total"].labels(server="s").value == 1
    assert m["server_response_seconds"].labels(server="s").observations == [2.5]


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"workers": 0}, "workers"),
        ({"workers": -1}, "workers"),
        ({"workers": 1.5}, "workers"),
        ({"workers": True}, "workers"),
        ({"workers": 2, "capacity": 1}, "capacity"),
        ({"workers": 1, "capacity": 0}, "capacity"),
        ({"max_connections": 0}, "max_connections"),
        ({"admission_rate": -1.0}, "admission_rate"),
        ({"admission_rate": 0}, "admission_rate"),
        ({"admission_rate": "5"}, "admission_rate"),
        ({"admission_burst": 0}, "admission_burst"),
        ({"memory_base_bytes": -1}, "memory_base_bytes"),
        ({"memory_per_connection_bytes": -5}, "memory_per_connection_bytes"),
    ],
)
def test_serverspec_validation(kwargs: dict, field: str) -> None:
    with pytest.raises(ParameterError) as err:
        ServerSpec(**kwargs)
    assert err.value.parameter == field


def test_serverspec_capacity_message_mentions_workers() -> None:
    with pytest.raises(ParameterError, match=r"capacity: must be an integer >= workers \(3\)"):
        ServerSpec(workers=3, capacity=2)
    assert ServerSpec(workers=3, capacity=3).capacity == 3


# ================================================================ connections ======
def setup(spec: ServerSpec, latency: float = LATENCY) -> tuple[Context, Network, Server]:
    ctx = Context(0)
    net = Network(ctx, LinkSpec(latency=Constant(latency)))
    server = Server(ctx, "srv", spec, net)
    return ctx, net, server


def connect_at(ctx: Context, client: Client, t: float, results: dict) -> None:
    def go():
        ev = client.connect()
        ev.callbacks.append(lambda e: results.__setitem__(client.name, (e.value, ctx.now)))

    at(ctx, t, go)


def test_clients_connect_and_memory_follows() -> None:
    ctx, net, server = setup(ServerSpec(memory_base_bytes=1000, memory_per_connection_bytes=100))
    clients = [Client(ctx, f"c{i}", net, "srv") for i in range(3)]
    results: dict = {}
    for c in clients:
        connect_at(ctx, c, 0.0, results)
    ctx.run(until=0.01)
    assert all(c.state == CONNECTING for c in clients)
    ctx.run(until=1.0)
    assert results == {c.name: ("accepted", 2 * LATENCY) for c in clients}
    assert all(c.state == CONNECTED and c.connected_at == 2 * LATENCY for c in clients)
    assert set(server.connections) == {"c0", "c1", "c2"}
    assert server.memory_bytes == 1000 + 3 * 100
    mem = ctx.metrics["server_memory_bytes"].labels(server="srv")
    assert mem.value == 1300
    conns = ctx.metrics["server_connections"].labels(server="srv")
    assert conns.value == 3
    # a client closes: the server forgets it once the close frame arrives
    at(ctx, 2.0, clients[0].close)
    ctx.run(until=3.0)
    assert clients[0].state == DISCONNECTED and clients[0].close_code == frames.NORMAL_CLOSURE
    assert set(server.connections) == {"c1", "c2"} and server.memory_bytes == 1200 and mem.value == 1200
    assert ctx.metrics["server_handshakes_total"].labels(server="srv", result="accepted").value == 3
    # the server accepts when the handshakes arrive (one latency) and forgets c0 when its close
    # frame arrives: 1000 on [0, 0.0625), 1300 on [0.0625, 2.0625), 1200 on [2.0625, 3]
    expected = (1000 * 0.0625 + 1300 * 2.0 + 1200 * (3 - 2.0625)) / 3
    assert mem.time_average() == pytest.approx(expected)


def test_max_connections_refuses_extras() -> None:
    ctx, net, server = setup(ServerSpec(max_connections=2))
    clients = [Client(ctx, f"c{i}", net, "srv") for i in range(4)]
    results: dict = {}
    for i, c in enumerate(clients):
        connect_at(ctx, c, 0.01 * i, results)
    ctx.run(until=1.0)
    assert [results[c.name][0] for c in clients] == ["accepted", "accepted", "refused", "refused"]
    assert [c.state for c in clients] == [CONNECTED, CONNECTED, DISCONNECTED, DISCONNECTED]
    assert set(server.connections) == {"c0", "c1"}
    hs = ctx.metrics["server_handshakes_total"]
    assert hs.labels(server="srv", result="refused_full").value == 2
    # a slot frees up: the next attempt is accepted
    at(ctx, 1.0, clients[0].close)
    connect_at(ctx, clients[2], 1.5, results)
    ctx.run(until=2.0)
    assert results["c2"] == ("accepted", 1.5 + 2 * LATENCY)
    assert set(server.connections) == {"c1", "c2"}


def test_admission_rate_token_bucket() -> None:
    rate, burst = 2.0, 3
    ctx, net, server = setup(ServerSpec(admission_rate=rate, admission_burst=burst))
    clients = {name: Client(ctx, name, net, "srv") for name in
               ["b0", "b1", "b2", "b3", "b4", "early", "on_time", "later1", "later2"]}
    results: dict = {}
    for name in ["b0", "b1", "b2", "b3", "b4"]:                  # a burst at t=0
        connect_at(ctx, clients[name], 0.0, results)
    connect_at(ctx, clients["early"], 0.25, results)             # half a token
    connect_at(ctx, clients["on_time"], 0.5, results)            # 1/rate after the burst: one token
    connect_at(ctx, clients["later1"], 1.5, results)             # 1 s later: 2 tokens
    connect_at(ctx, clients["later2"], 1.5, results)
    ctx.run(until=5)
    outcome = {name: results[name][0] for name in clients}
    assert outcome == {"b0": "accepted", "b1": "accepted", "b2": "accepted", "b3": "refused", "b4": "refused",
                       "early": "refused", "on_time": "accepted", "later1": "accepted", "later2": "accepted"}
    hs = ctx.metrics["server_handshakes_total"]
    assert hs.labels(server="srv", result="refused_rate").value == 3
    assert hs.labels(server="srv", result="accepted").value == 6


def test_admission_bucket_never_exceeds_burst() -> None:
    ctx, net, server = setup(ServerSpec(admission_rate=10.0, admission_burst=2))
    clients = [Client(ctx, f"c{i}", net, "srv") for i in range(4)]
    results: dict = {}
    for c in clients:
        connect_at(ctx, c, 100.0, results)   # after a long quiet period: still only `burst` tokens
    ctx.run()
    assert [results[c.name][0] for c in clients] == ["accepted", "accepted", "refused", "refused"]


@pytest.mark.parametrize("code,expected", [(None, frames.GOING_AWAY), (4000, 4000)])
def test_graceful_shutdown_closes_clients_cleanly(code, expected: int) -> None:
    ctx, net, server = setup(ServerSpec(memory_base_bytes=10, memory_per_connection_bytes=5))
    seen = []
    clients = [Client(ctx, f"c{i}", net, "srv", on_disconnect=lambda c, how, cd: seen.append((c.name, how, cd, ctx.now)))
               for i in range(2)]
    results: dict = {}
    for c in clients:
        connect_at(ctx, c, 0.0, results)
    at(ctx, 1.0, (lambda: server.shutdown()) if code is None else (lambda: server.shutdown(code)))
    ctx.run()
    assert seen == [("c0", "clean", expected, 1.0 + LATENCY), ("c1", "clean", expected, 1.0 + LATENCY)]
    assert all(c.state == DISCONNECTED and c.close_code == expected for c in clients)
    assert not server.up and server.connections == {} and server.memory_bytes == 10
    assert net.is_attached("srv")  # the host's kernel still answers (and refuses handshakes)


def test_graceful_outage_uses_service_restart_code_and_clients_can_reconnect() -> None:
    ctx, net, server = setup(ServerSpec())
    seen = []
    client = Client(ctx, "c", net, "srv", connect_timeout=1.0,
                    on_disconnect=lambda c, how, cd: seen.append((how, cd)))
    results: dict = {}
    connect_at(ctx, client, 0.0, results)
    server.schedule_outage(1.0, 2.0, graceful=True)
    ctx.run(until=2.0)
    assert seen == [("clean", frames.SERVICE_RESTART)]
    connect_at(ctx, client, 2.0, results)      # process still down: the kernel refuses at once
    ctx.run(until=3.5)
    assert results["c"] == ("refused", 2.0 + 2 * LATENCY)
    connect_at(ctx, client, 3.5, results)      # back up since t=3
    ctx.run(until=5)
    assert results["c"] == ("accepted", 3.5 + 2 * LATENCY)
    assert "c" in server.connections


def test_crash_noticed_by_heartbeat_timeout() -> None:
    interval, timeout, crash_at = 1.0, 3.0, 10.5
    ctx, net, server = setup(ServerSpec(memory_base_bytes=7, memory_per_connection_bytes=3))
    seen = []
    client = Client(ctx, "c", net, "srv", heartbeat_interval=interval, heartbeat_timeout=timeout,
                    on_disconnect=lambda c, how, cd: seen.append((how, cd, ctx.now)))
    quiet = Client(ctx, "q", net, "srv")  # no heartbeats: never notices
    results: dict = {}
    connect_at(ctx, client, 0.0, results)
    connect_at(ctx, quiet, 0.0, results)
    at(ctx, crash_at, lambda: server.crash(host=True))  # a dead host: silence, no TCP reset
    ctx.run(until=crash_at)
    assert seen == [] and client.state == CONNECTED
    assert client.last_heard == pytest.approx(10.25)   # pong to the ping sent at 10.125
    assert server.memory_bytes == 13
    ctx.run(until=60)
    # pings at 0.125 + k; last pong heard at 10.25; the first tick with 3 s of silence is 14.125
    assert seen == [("timeout", frames.ABNORMAL_CLOSURE, 14.125)]
    assert crash_at < seen[0][2] <= crash_at + timeout + interval
    assert client.state == DISCONNECTED and client.close_code == 1006
    assert quiet.state == CONNECTED
    assert server.memory_bytes == 7 and server.connections == {}


def test_heartbeats_keep_a_healthy_connection_alive() -> None:
    ctx, net, server = setup(ServerSpec())
    seen = []
    client = Client(ctx, "c", net, "srv", heartbeat_interval=0.5,
                    on_disconnect=lambda c, how, cd: seen.append(how))
    connect_at(ctx, client, 0.0, {})
    ctx.run(until=30)
    assert seen == [] and client.state == CONNECTED
    assert client.heartbeat_timeout == 1.0  # default: twice the interval
    assert 30 - client.last_heard <= 0.5 + 2 * LATENCY


def test_partition_noticed_by_heartbeat_timeout() -> None:
    ctx, net, server = setup(ServerSpec())
    seen = []
    client = Client(ctx, "c", net, "srv", heartbeat_interval=1.0, heartbeat_timeout=2.0,
                    on_disconnect=lambda c, how, cd: seen.append((how, cd, ctx.now)))
    connect_at(ctx, client, 0.0, {})
    net.partition({"c"}, start=5.5, heal=None)
    ctx.run(until=20)
    assert len(seen) == 1 and seen[0][:2] == ("timeout", 1006)
    assert 5.5 < seen[0][2] <= 5.5 + 2.0 + 1.0


def test_process_crash_resets_connections_at_once() -> None:
    ctx, net, server = setup(ServerSpec())
    seen = []
    clients = [Client(ctx, f"c{i}", net, "srv", on_disconnect=lambda c, how, cd: seen.append((c.name, how, cd, ctx.now)))
               for i in range(2)]
    for c in clients:
        connect_at(ctx, c, 0.0, {})
    at(ctx, 5.0, server.crash)
    ctx.run(until=6.0)
    assert seen == [(f"c{i}", "reset", frames.ABNORMAL_CLOSURE, 5.0 + LATENCY) for i in range(2)]
    results: dict = {}
    connect_at(ctx, clients[0], 6.0, results)
    ctx.run(until=7.0)
    assert results["c0"] == ("refused", 6.0 + 2 * LATENCY)
    assert server.connections == {}


def test_connect_to_dead_host_times_out() -> None:
    ctx, net, server = setup(ServerSpec())
    server.crash(host=True)
    client = Client(ctx, "c", net, "srv", connect_timeout=2.5)
    results: dict = {}
    connect_at(ctx, client, 1.0, results)
    ctx.run()
    assert results == {"c": ("timeout", 3.5)}
    assert client.state == DISCONNECTED
    assert net.dropped["unreachable"] == 1


def test_connect_to_unknown_server_times_out() -> None:
    ctx = Context(0)
    net = Network(ctx)
    client = Client(ctx, "c", net, "nobody", connect_timeout=0.75)
    results: dict = {}
    connect_at(ctx, client, 0.0, results)
    ctx.run()
    assert results == {"c": ("timeout", 0.75)}


def test_data_frames_both_ways() -> None:
    received_by_server = []
    ctx = Context(0)
    net = Network(ctx, LinkSpec(latency=Constant(LATENCY)))
    server = Server(ctx, "srv", ServerSpec(), net, on_data=lambda s, c, d: received_by_server.append((c, d)))
    got = []
    client = Client(ctx, "c", net, "srv", on_message=lambda c, d: got.append(d))
    other = Client(ctx, "x", net, "srv")
    assert client.send("too early") is False
    connect_at(ctx, client, 0.0, {})
    ctx.run(until=1)
    assert client.send("hello", size_bytes=100) is True
    assert server.send_to("c", "welcome") is True
    assert server.send_to("x", "not connected") is False
    net.send("x", "srv", (frames.DATA, "from a stranger"))
    ctx.run(until=2)
    assert received_by_server == [("c", "hello")]
    assert got == ["welcome"] and client.received == 1 and other.received == 0


def test_client_connect_twice_is_an_error() -> None:
    ctx, net, server = setup(ServerSpec())
    client = Client(ctx, "c", net, "srv")
    client.connect()
    with pytest.raises(RuntimeError, match="connecting"):
        client.connect()


def test_close_while_connecting_settles_the_connect_event() -> None:
    ctx, net, server = setup(ServerSpec())
    client = Client(ctx, "c", net, "srv", connect_timeout=1.0)
    pending = client.connect()
    client.close()
    ctx.run(until=10)
    assert pending.triggered


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"connect_timeout": -1}, "connect_timeout"),
        ({"heartbeat_interval": 0}, "heartbeat_interval"),
        ({"heartbeat_interval": 2.0, "heartbeat_timeout": 1.0}, "heartbeat_timeout"),
    ],
)
def test_client_validation(kwargs: dict, field: str) -> None:
    ctx = Context(0)
    with pytest.raises(ParameterError) as err:
        Client(ctx, "c", Network(ctx), "srv", **kwargs)
    assert err.value.parameter == field


def test_accept_arriving_after_the_client_gave_up_is_closed_on_the_server() -> None:
    ctx, net, server = setup(ServerSpec())
    client = Client(ctx, "c", net, "srv", connect_timeout=LATENCY)  # gives up before the accept returns
    results: dict = {}
    connect_at(ctx, client, 0.0, results)
    ctx.run()
    assert results["c"][0] == "timeout"
    assert server.connections == {}  # the late accept was answered with a close


def test_connect_during_a_handshake_is_refused_without_losing_the_first_waiter() -> None:
    ctx, net, server = setup(ServerSpec())
    client = Client(ctx, "c", net, "srv")
    first = client.connect()
    with pytest.raises(RuntimeError):
        client.connect()
    ctx.run()
    assert first.triggered and first.value == "accepted"


def test_server_closes_one_connection_and_the_client_answers_the_close_frame() -> None:
    accepted = []
    ctx, net, _ = setup(ServerSpec())
    server = Server(ctx, "srv2", ServerSpec(), net, on_connect=lambda s, c: accepted.append((c, ctx.now)))
    seen = []
    clients = [Client(ctx, f"c{i}", net, "srv2", on_disconnect=lambda c, how, cd: seen.append((c.name, how, cd)))
               for i in range(2)]
    for c in clients:
        connect_at(ctx, c, 0.0, {})
    ctx.run(until=1.0)
    assert accepted == [("c0", LATENCY), ("c1", LATENCY)]
    assert server.close("c0", frames.SERVICE_RESTART) and not server.close("nobody")
    ctx.run(until=2.0)
    assert seen == [("c0", "clean", frames.SERVICE_RESTART)]
    assert list(server.connections) == ["c1"]
    # the client's answering close frame reached the server and changed nothing more
    assert net.delivered == net.sent and clients[1].state == CONNECTED
