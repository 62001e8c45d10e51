"""Question 7, offline buffer: Outbox and Deduplicator on hand-checked schedules, then the
``offline-buffer`` scenario. Exactly-once under random outages (property), losses without a
buffer, duplicates without dedupe, overflow policies, conservation, determinism, validation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

import sim
from sim.cli import main as cli_main
from sim.components.client import Client
from sim.components.outbox import ACK, Deduplicator, DirectSender, Outbox
from sim.components.server import Server
from sim.core.context import Context
from sim.core.distributions import Constant, Exponential, Uniform
from sim.core.errors import ParameterError
from sim.core.network import LinkSpec, Network
from sim.scenarios.q7_resilience.offline_buffer import MODES, OfflineBufferParams, simulate

LATENCY = 0.0625  # exact in binary, so hand-computed times compare exactly
HYPO = settings(derandomize=True, deadline=None, max_examples=30, database=None)
SMALL = dict(clients=6, duration=120.0, loss=0.03)


def at(ctx: Context, t: float, fn) -> None:
    ctx.env.timeout(t - ctx.now).callbacks.append(lambda _e: fn())


class Wiring:
    """One client with an outbox, one server with a deduplicator, a FIFO link of constant latency."""

    def __init__(self, *, dedupe: bool = True, capacity: int = 10, overflow: str = "drop_oldest",
                 ack_timeout: float | None = None) -> None:
        self.ctx = ctx = Context(0)
        self.net = Network(ctx, LinkSpec(latency=Constant(LATENCY), fifo=True))
        self.applied: list[tuple[int, str, float]] = []  # (seq, body, time)
        self.evicted: list[int] = []
        self.dedupe = Deduplicator(lambda _c, seq, body: self.applied.append((seq, body, ctx.now)), dedupe=dedupe)
        self.server = Server(ctx, "srv", network=self.net, on_data=self.dedupe.on_data)
        self.client = Client(ctx, "c", self.net, "srv", on_message=lambda _c, payload: self.box.handle(payload))
        self.box = Outbox(ctx, self.client, capacity=capacity, overflow=overflow, ack_timeout=ack_timeout,
                          on_overflow=lambda seq, _body: self.evicted.append(seq))

    def connect(self, t: float) -> None:
        def go():
            self.client.connect().callbacks.append(lambda e: self.box.connected() if e.value == "accepted" else None)

        at(self.ctx, t, go)


# ================================================================== components ======
def test_messages_produced_offline_are_replayed_in_order_and_dropped_once_acked() -> None:
    w = Wiring()
    seqs = [w.box.submit(body) for body in "abc"]          # t=0, not connected: all held
    assert seqs == [1, 2, 3] and w.box.held_seqs() == [1, 2, 3] and w.box.transmissions == 0
    w.connect(1.0)                                          # accepted at 1.125, replay arrives at 1.1875
    at(w.ctx, 2.0, lambda: w.box.submit("d"))               # connected: sent at once
    w.ctx.run(until=1.2)
    assert w.box.held == 3                                  # applied, acks still on the way back
    w.ctx.run()
    assert w.applied == [(1, "a", 1.1875), (2, "b", 1.1875), (3, "c", 1.1875), (4, "d", 2.0625)]
    assert w.box.held == 0 and w.box.acked == 4
    assert (w.box.replayed, w.box.transmissions, w.box.retransmitted) == (3, 4, 0)


@pytest.mark.parametrize("dedupe", [False, True])
def test_a_lost_ack_means_a_replay_which_applies_twice_without_dedupe(dedupe: bool) -> None:
    w = Wiring(dedupe=dedupe)
    w.connect(0.0)                                          # accepted at 0.125
    at(w.ctx, 0.25, lambda: w.box.submit("x"))              # applied at 0.3125, ack sent back at once
    w.net.partition(["c"], ["srv"], start=0.34, heal=2.0)   # ...and dropped in flight (it would land at 0.375)

    def reconnect():                                        # what a heartbeat timeout would lead to
        w.client.close()
        w.connect(w.ctx.now)

    at(w.ctx, 2.5, reconnect)                               # accepted at 2.625, replay lands at 2.6875
    w.ctx.run()
    first = [(1, "x", 0.3125)]
    assert w.applied == (first if dedupe else first + [(1, "x", 2.6875)])
    assert w.dedupe.suppressed == (1 if dedupe else 0)
    assert w.dedupe.acks_sent == 2                          # every copy is acked, suppressed ones too
    assert w.box.replayed == 1 and w.box.held == 0


@pytest.mark.parametrize("dedupe", [False, True])
def test_ack_timeout_resends_on_a_live_connection(dedupe: bool) -> None:
    w = Wiring(dedupe=dedupe, ack_timeout=1.0)
    w.connect(0.0)
    at(w.ctx, 0.2, lambda: w.net.link("srv", "c", LinkSpec(latency=Constant(LATENCY), loss=1.0), both_ways=False))
    at(w.ctx, 0.25, lambda: w.box.submit("x"))              # applied at 0.3125; its ack is lost
    at(w.ctx, 1.0, lambda: w.net.link("srv", "c", LinkSpec(latency=Constant(LATENCY), fifo=True), both_ways=False))
    w.ctx.run()                                             # resent at 1.25, lands at 1.3125, acked at 1.375
    first = [(1, "x", 0.3125)]
    assert w.applied == (first if dedupe else first + [(1, "x", 1.3125)])
    assert (w.box.retransmitted, w.box.replayed, w.box.held) == (1, 0, 0)


@pytest.mark.parametrize("policy, returned, kept, evicted", [
    ("drop_oldest", [1, 2, 3, 4, 5], [3, 4, 5], [1, 2]),
    ("drop_newest", [1, 2, 3, None, None], [1, 2, 3], [4, 5]),
])
def test_overflow_policy_with_a_tiny_outbox(policy: str, returned: list, kept: list, evicted: list) -> None:
    w = Wiring(capacity=3, overflow=policy)
    assert [w.box.submit(f"m{i}") for i in range(1, 6)] == returned
    assert w.box.held_seqs() == kept and w.evicted == evicted and w.box.overflowed == 2
    w.connect(1.0)
    w.ctx.run()
    assert [seq for seq, _, _ in w.applied] == kept        # the evicted ones never take effect
    assert w.box.produced == 5 and w.box.held == 0


def test_an_evicted_message_already_sent_may_still_take_effect() -> None:
    w = Wiring(capacity=1, overflow="drop_oldest")
    w.connect(0.0)
    at(w.ctx, 0.5, lambda: [w.box.submit("a"), w.box.submit("b")])  # "a" is on the wire when "b" evicts it
    w.ctx.run()
    assert w.evicted == [1] and [seq for seq, _, _ in w.applied] == [1, 2]
    assert w.box.acked == 1                                 # the ack of 1 finds nothing to remove


class StubServer:
    def __init__(self) -> None:
        self.acks: list[tuple[str, int]] = []

    def send_to(self, client: str, payload, size_bytes: int = 0) -> bool:
        assert payload[0] == ACK
        self.acks.append((client, payload[1]))
        return True


def test_deduplicator_applies_each_sequence_once_and_keeps_a_small_window() -> None:
    applied: list[tuple[str, int]] = []
    dd = Deduplicator(lambda c, seq, _b: applied.append((c, seq)))
    srv = StubServer()
    for client, seq, low in [("a", 1, 1), ("a", 3, 1), ("b", 1, 1), ("a", 2, 1), ("a", 3, 1), ("a", 1, 1)]:
        dd.on_data(srv, client, (seq, None, low))
    assert applied == [("a", 1), ("a", 3), ("b", 1), ("a", 2)]
    assert dd.suppressed == 2 and len(srv.acks) == 6 and dd.remembered("a") == 0  # 1..3 folded into the floor
    dd.on_data(srv, "a", (9, None, 4))                      # 4..8 still possible: 9 is remembered apart
    assert dd.remembered("a") == 1
    dd.on_data(srv, "a", (10, None, 9))                     # the client gave up 4..8 (evicted): forget them
    assert dd.remembered("a") == 0 and applied[-2:] == [("a", 9), ("a", 10)]
    dd.on_data(srv, "a", (6, None, 6))                      # below the window: treated as already seen
    assert applied[-1] == ("a", 10) and dd.suppressed == 3


def test_deduplicator_off_applies_every_copy() -> None:
    applied: list[int] = []
    dd = Deduplicator(lambda _c, seq, _b: applied.append(seq), dedupe=False)
    for seq in (1, 1, 2, 1):
        dd.on_data(StubServer(), "a", (seq, None, seq))
    assert applied == [1, 1, 2, 1] and dd.suppressed == 0


def test_direct_sender_sends_when_connected_and_drops_otherwise() -> None:
    ctx = Context(0)
    net = Network(ctx, LinkSpec(latency=Constant(LATENCY)))
    applied: list[int] = []
    dd = Deduplicator(lambda _c, seq, _b: applied.append(seq), dedupe=False, ack=False)
    Server(ctx, "srv", network=net, on_data=dd.on_data)
    client = Client(ctx, "c", net, "srv")
    sender = DirectSender(client)
    assert sender.submit("offline") is None
    client.connect()
    at(ctx, 1.0, lambda: sender.submit("online"))
    ctx.run()
    assert applied == [2] and (sender.produced, sender.transmissions, sender.dropped_offline) == (2, 1, 1)
    assert sender.held == 0 and dd.acks_sent == 0


@pytest.mark.parametrize("kwargs, field", [
    (dict(capacity=0), "capacity"), (dict(capacity=2.5), "capacity"), (dict(capacity=True), "capacity"),
    (dict(overflow="drop_random"), "overflow"),
    (dict(ack_timeout=0.0), "ack_timeout"), (dict(ack_timeout=-1.0), "ack_timeout"),
    (dict(ack_timeout=True), "ack_timeout"),
])
def test_outbox_validation(kwargs: dict, field: str) -> None:
    ctx = Context(0)
    client = Client(ctx, "c", Network(ctx), "srv")
    with pytest.raises(ParameterError) as err:
        Outbox(ctx, client, **{"capacity": 5, **kwargs})
    assert err.value.parameter == field


# =================================================================== scenario ======
def check_conservation(row) -> None:
    assert row["sent"] == row["applied"] + row["lost"]
    assert row["lost"] == row["dropped_offline"] + row["lost_in_transit"] + row["overflow_lost"] + row["pending"]
    assert min(row["applied"], row["dropped_offline"], row["lost_in_transit"], row["overflow_lost"],
               row["pending"], row["duplicated"]) >= 0
    assert row["overflow_lost"] <= row["overflowed"]


@pytest.fixture(scope="module")
def small():
    return sim.run("offline-buffer", seed=7, **SMALL)


def test_all_modes_share_one_seed_and_one_schedule(small) -> None:
    s = small.summary.set_index("mode")
    assert list(s.index) == list(MODES)
    assert s["sent"].nunique() == 1                         # the same production in every mode
    # the dedupe changes the effect, not the traffic: same frames, same losses, same replays
    same = ["sent", "applied", "replayed", "retransmitted", "data_frames", "disconnects", "delay_mean_s", "drain_s"]
    assert s.loc["buffer", same].equals(s.loc["buffer_dedupe", same])
    for _, row in small.summary.iterrows():
        check_conservation(row)


def test_none_loses_messages_during_outages_and_never_duplicates(small) -> None:
    row = small.summary.set_index("mode").loc["none"]
    assert row["duplicated"] == 0 and row["replayed"] == 0
    assert row["dropped_offline"] > 0                       # produced while the client knew it was offline
    assert row["lost_in_transit"] > 0                       # sent into a connection that was already dead
    assert row["delivery_ratio"] < 0.95


def test_buffer_never_loses_but_duplicates_when_acks_are_lost(small) -> None:
    row = small.summary.set_index("mode").loc["buffer"]
    assert row["lost"] == 0 and row["overflowed"] == 0 and row["applied"] == row["sent"]
    assert row["duplicated"] > 0 and row["replayed"] > 0


def test_buffer_dedupe_applies_exactly_once(small) -> None:
    row = small.summary.set_index("mode").loc["buffer_dedupe"]
    assert row["lost"] == 0 and row["duplicated"] == 0 and row["applied"] == row["sent"]


def test_without_outages_or_loss_none_loses_only_before_the_first_handshake() -> None:
    row = sim.run("offline-buffer", seed=3, mode="none", clients=4, duration=60.0, loss=0.0,
                  outage=Constant(0.0)).summary.iloc[0]
    assert row["lost"] == row["dropped_offline"] and row["lost_in_transit"] == 0 and row["disconnects"] == 0
    assert row["lost"] <= 4


def test_timeline_shows_the_backlog(small) -> None:
    t = small.series["timeline"]
    assert list(t.columns) == ["replication", "time_s", "mode", "connected", "link_down", "buffered", "sent", "applied",
                               "duplicated"]
    by_mode = t.groupby("mode")
    assert by_mode["buffered"].max()["none"] == 0 and by_mode["buffered"].max()["buffer"] > 0
    assert by_mode["link_down"].max().min() > 0
    for _, frame in by_mode:
        assert frame["time_s"].is_monotonic_increasing and frame["applied"].is_monotonic_increasing
        assert frame["buffered"].iloc[-1] == 0 and frame["applied"].iloc[-1] == small.summary.set_index("mode").loc[
            frame["mode"].iloc[0], "applied"]


distributions_up = st.one_of(
    st.builds(Constant, st.floats(0.5, 30)),
    st.builds(lambda lo, w: Uniform(lo, lo + w), st.floats(0.1, 10), st.floats(0, 20)),
    st.builds(Exponential, st.floats(0.03, 2)),
)
distributions_down = st.one_of(
    st.builds(Constant, st.floats(0, 20)),
    st.builds(lambda lo, w: Uniform(lo, lo + w), st.floats(0, 5), st.floats(0, 15)),
    st.builds(Exponential, st.floats(0.05, 5)),
)


@HYPO
@given(uptime=distributions_up, outage=distributions_down, loss=st.floats(0, 0.2),
       ack_timeout=st.sampled_from([0.1, 1.0, 3.0]), seed=st.integers(0, 2**16))
def test_buffer_dedupe_is_exactly_once_under_any_outage_pattern(uptime, outage, loss, ack_timeout, seed) -> None:
    p = OfflineBufferParams(mode="buffer_dedupe", clients=3, duration=40.0, uptime=uptime, outage=outage, loss=loss,
                            ack_timeout=ack_timeout, capacity=10_000)
    row, timeline = simulate(p, "buffer_dedupe", seed)
    check_conservation(row)
    assert row["sent"] > 0 and row["applied"] == row["sent"]
    assert row["lost"] == 0 and row["duplicated"] == 0 and row["pending"] == 0
    assert timeline["buffered"].iloc[-1] == 0


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest"])
def test_tiny_outbox_overflows_as_documented(policy: str) -> None:
    kw = dict(clients=3, duration=90.0, uptime=Constant(10.0), outage=Constant(20.0), capacity=3, loss=0.0)
    s = sim.run("offline-buffer", seed=5, overflow=policy, **kw).summary.set_index("mode")
    for mode in ("buffer", "buffer_dedupe"):
        row = s.loc[mode]
        check_conservation(row)
        assert row["overflowed"] > 0 and row["pending"] == 0
        assert row["lost"] == row["overflow_lost"]          # an outbox loses messages only by overflow
        if policy == "drop_newest":
            assert row["overflow_lost"] == row["overflowed"]  # refused messages are never sent
        else:
            assert row["overflow_lost"] <= row["overflowed"]  # an evicted message may have been sent already
    assert s.loc["buffer_dedupe", "duplicated"] == 0


def test_drop_oldest_delivers_fresher_data_than_drop_newest() -> None:
    kw = dict(mode="buffer_dedupe", clients=3, duration=90.0, uptime=Constant(10.0), outage=Constant(20.0),
              capacity=3, loss=0.0)
    oldest = sim.run("offline-buffer", seed=5, overflow="drop_oldest", **kw).summary.iloc[0]
    newest = sim.run("offline-buffer", seed=5, overflow="drop_newest", **kw).summary.iloc[0]
    assert oldest["overflowed"] == newest["overflowed"]     # same outages, same backlog, a different victim
    assert oldest["delay_mean_s"] < newest["delay_mean_s"]


@pytest.mark.parametrize("changes", [
    dict(capacity=2, overflow="drop_newest"),
    dict(ack_timeout=None, loss=0.2, drain_limit=2.0),      # cut short: some messages are still pending
    dict(loss=0.0, outage=Exponential(0.05)),
])
def test_conservation_in_every_mode(changes: dict) -> None:
    s = sim.run("offline-buffer", seed=11, clients=4, duration=60.0, **changes).summary
    for _, row in s.iterrows():
        check_conservation(row)
    if "drain_limit" in changes:
        assert s.set_index("mode").loc["buffer", "pending"] > 0


def test_same_seed_same_results_different_seed_differs() -> None:
    a = sim.run("offline-buffer", seed=21, clients=3, duration=40.0)
    b = sim.run("offline-buffer", seed=21, clients=3, duration=40.0)
    c = sim.run("offline-buffer", seed=22, clients=3, duration=40.0)
    assert a.summary.equals(b.summary) and a.series["timeline"].equals(b.series["timeline"])
    assert not a.summary.equals(c.summary)


# ================================================================= validation ======
@pytest.mark.parametrize("changes, parameter", [
    (dict(mode="some"), "mode"),
    (dict(clients=0), "clients"),
    (dict(rate=0.0), "rate"),
    (dict(duration=-1.0), "duration"),
    (dict(loss=1.0), "loss"),
    (dict(capacity=0), "capacity"),
    (dict(overflow="drop_random"), "overflow"),
    (dict(ack_timeout=0.0), "ack_timeout"),
    (dict(heartbeat_interval=2.0, heartbeat_timeout=1.0), "heartbeat_timeout"),
    (dict(uptime=Constant(0.0)), "uptime"),
    (dict(outage="5"), "outage"),
    (dict(retry_interval=-1.0), "retry_interval"),
    (dict(drain_limit=0.0), "drain_limit"),
])
def test_bad_parameters_name_the_parameter(changes: dict, parameter: str) -> None:
    with pytest.raises(ParameterError) as err:
        OfflineBufferParams(**changes)
    assert err.value.parameter == parameter


def test_bad_text_parameters_and_modes() -> None:
    with pytest.raises(ParameterError) as err:
        OfflineBufferParams.from_strings({"uptime": "exponential:-1"})
    assert err.value.parameter == "uptime"
    with pytest.raises(ParameterError) as err:
        simulate(OfflineBufferParams(), "all", 0)
    assert err.value.parameter == "mode"


def test_cli_describe_and_run(capsys) -> None:
    assert cli_main(["describe", "offline-buffer"]) == 0
    assert "drop_oldest" in capsys.readouterr().out
    assert cli_main(["run", "offline-buffer", "--set", "clients=2", "duration=20", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert all(mode in out for mode in MODES)
