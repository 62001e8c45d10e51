"""Offline buffer with replay (question 7): an outbox on the client, a deduplicator on the server.

The client's application hands every message to its :class:`Outbox`, which numbers it
(``seq`` = 1, 2, ... per client) and keeps it until the server acknowledges it:

* while connected, a message is sent at once; while disconnected it waits in the outbox;
* after every successful (re)connection the outbox **replays** everything it holds, in order:
  messages produced offline *and* messages sent but never acknowledged. The connection may have
  died with the message in flight or with its ack in flight; the client cannot tell which, so it
  sends again;
* with ``ack_timeout`` set, a message still unacknowledged that long after its last
  transmission is sent again on the live connection (a frame lost on a flaky link). With
  ``ack_timeout=None`` it waits for the next reconnection, the MQTT 5 rule.

Delivery is therefore **at least once**: a message the server applied but whose ack was lost is
sent again and, without deduplication, applied twice. The server's :class:`Deduplicator`
remembers which ``(client, seq)`` it has applied; it acknowledges every copy but applies only the
first. At-least-once delivery plus an idempotent receiver gives an exactly-once *effect*.

**Bounded buffer.** An outbox holds at most ``capacity`` messages, unacknowledged ones included.
When a new message finds it full, ``overflow`` decides (the Eclipse Paho Java MQTT client
offers the same choice, ``DisconnectedBufferOptions.setDeleteOldestMessages``):

* ``drop_oldest`` (default): the oldest held message is evicted to make room, because in a
  real-time feed fresh data is worth more than old data. The outbox gives up on it: if it
  was already transmitted it may still take effect, otherwise it is lost;
* ``drop_newest``: the new message is refused (``submit`` returns None) and the held ones are
  kept. A refused message is never sent, so it is always lost.

A refused or evicted message keeps its sequence number, so the server sees a gap where it was.

**Wire format.** A data frame carries ``(seq, body, low)``. ``low`` is the lowest sequence
number the client still holds, a promise that nothing below it will be sent again. The
deduplicator can then forget those numbers, so its memory per client stays within the outbox's
capacity (TCP and QUIC keep a window for the same reason). An ack is the data frame
``("ack", seq)`` from the server to the client.

Not modelled here: persistence of the outbox across a client restart, and persistence of the
deduplicator's state across a server crash. In a real system that state must be committed
together with the message's effect, or a crash reopens the window for duplicates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import simpy

from sim.components.client import CONNECTED, Client
from sim.core.context import Context
from sim.core.errors import ParameterError
from sim.core.metrics import Count, Metrics
from sim.core.timer import Timer, cancel

if TYPE_CHECKING:
    from sim.components.server import Server

ACK = "ack"
#: What a full outbox does with a new message (see the module docstring).
OVERFLOW_POLICIES = ("drop_oldest", "drop_newest")
SEQ_BYTES = 8
"""Bytes that the sequence number and the low-water mark add to a data frame, and the size of an ack."""


def _counters(metrics: Metrics, client: str, **families: str):
    """The children labelled ``client=<client>`` of the counter families ``name=help``."""
    return [metrics.counter(name, help_text, ("client",)).labels(client=client) for name, help_text in families.items()]


def _sender_counters(metrics: Metrics, client: str):
    return _counters(metrics, client, messages_submitted_total="Messages handed to the sender by the application",
                     messages_transmitted_total="Data frames sent: first sends, replays and retransmissions")


class _Entry:
    """One held message."""

    __slots__ = ("seq", "body", "size_bytes", "ack_timer")

    def __init__(self, seq: int, body: Any, size_bytes: int) -> None:
        self.seq = seq
        self.body = body
        self.size_bytes = size_bytes
        self.ack_timer: Timer | None = None
        """Resends the message ``ack_timeout`` after its last send (cancelled by the ack, an eviction or a resend)."""


class Outbox:
    """A client's buffer of unacknowledged messages. See the module docstring.

    Wiring: call :meth:`connected` after each accepted handshake, and pass every data payload
    the client receives to :meth:`handle`.

    Its counts are series of the run's metrics registry, labelled ``client=<client name>``:
    ``messages_submitted_total``, ``messages_transmitted_total``, ``outbox_overflowed_total``,
    ``outbox_replayed_total``, ``outbox_retransmitted_total``, ``outbox_acked_total`` and the
    gauge ``outbox_held_messages``; the attributes of the same names read them back.
    """

    __slots__ = ("env", "client", "capacity", "overflow", "ack_timeout", "on_overflow", "on_drained", "_held",
                 "_next_seq", "_produced", "_overflowed", "_transmissions", "_replayed", "_retransmitted", "_acked",
                 "_held_gauge")

    def __init__(self, ctx: Context, client: Client, *, capacity: int, overflow: str = "drop_oldest",
                 ack_timeout: float | None = 1.0, on_overflow: Callable[[int, Any], None] | None = None,
                 on_drained: Callable[["Outbox"], None] | None = None) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ParameterError("capacity", f"must be an integer >= 1, got {capacity!r}")
        if overflow not in OVERFLOW_POLICIES:
            raise ParameterError("overflow", f"must be one of {', '.join(OVERFLOW_POLICIES)}, got {overflow!r}")
        if ack_timeout is not None and (isinstance(ack_timeout, bool) or not isinstance(ack_timeout, (int, float))
                                        or not ack_timeout > 0):
            raise ParameterError("ack_timeout", f"must be a number of seconds > 0 or None, got {ack_timeout!r}")
        self.env: simpy.Environment = ctx.env
        self.client = client
        self.capacity = capacity
        self.overflow = overflow
        self.ack_timeout = ack_timeout
        self.on_overflow = on_overflow
        """Called as ``on_overflow(seq, body)`` for each message evicted or refused by a full outbox."""
        self.on_drained = on_drained
        """Called with the outbox each time an ack leaves it empty."""
        self._held: dict[int, _Entry] = {}  # seq -> entry; insertion order is seq order, oldest first
        self._next_seq = 0
        metrics = ctx.metrics
        self._produced, self._transmissions = _sender_counters(metrics, client.name)
        self._overflowed, self._replayed, self._retransmitted, self._acked = _counters(
            metrics, client.name,
            outbox_overflowed_total="Messages evicted or refused by a full outbox",
            outbox_replayed_total="Messages sent by the replay after a reconnection",
            outbox_retransmitted_total="Messages sent again on a live connection after the ack timeout",
            outbox_acked_total="Messages removed from the outbox by their ack")
        self._held_gauge = metrics.gauge("outbox_held_messages", "Messages held: not yet sent, or not yet acked",
                                         ("client",)).labels(client=client.name)

    produced = Count("_produced", "Messages submitted by the application.")
    overflowed = Count("_overflowed",
                       "Messages evicted (``drop_oldest``) or refused (``drop_newest``) because the outbox was full.")
    transmissions = Count("_transmissions", "Data frames sent: first sends, replays and retransmissions.")
    replayed = Count("_replayed",
                     "Messages sent again (or sent for the first time) by the replay after a reconnection.")
    retransmitted = Count("_retransmitted", "Messages sent again on a live connection after ``ack_timeout``.")
    acked = Count("_acked", "Messages removed by their ack.")
    # --- the application's side ---------------------------------------------------------
    def submit(self, body: Any, size_bytes: int = 0) -> int | None:
        """Hand a message to the outbox; its sequence number, or None if a full outbox refused it."""
        self._next_seq += 1
        seq = self._next_seq
        self._produced.inc()
        held = self._held
        if len(held) >= self.capacity:
            self._overflowed.inc()
            if self.overflow == "drop_newest":
                if self.on_overflow is not None:
                    self.on_overflow(seq, body)
                return None
            oldest = held.pop(next(iter(held)))
            cancel(oldest.ack_timer)
            if self.on_overflow is not None:
                self.on_overflow(oldest.seq, oldest.body)
        entry = held[seq] = _Entry(seq, body, size_bytes)
        self._held_gauge.set(len(held))
        if self.client.state == CONNECTED:
            self._transmit(entry)
        return seq

    @property
    def held(self) -> int:
        """Messages in the outbox: not yet sent, or sent and not yet acknowledged."""
        return len(self._held)

    def held_seqs(self) -> list[int]:
        """Sequence numbers held, oldest first."""
        return list(self._held)

    # --- the connection's side ----------------------------------------------------------
    def connected(self) -> None:
        """Replay everything held, oldest first (call after each accepted handshake)."""
        if self.client.state != CONNECTED:
            return
        for entry in list(self._held.values()):
            self._replayed.inc()
            self._transmit(entry)

    def handle(self, payload: Any) -> bool:
        """Process a payload from the server; True if it was an ack (which this outbox consumes)."""
        if not (isinstance(payload, tuple) and len(payload) == 2 and payload[0] == ACK):
            return False
        entry = self._held.pop(payload[1], None)
        if entry is not None:  # a second ack for the same seq is ignored
            cancel(entry.ack_timer)
            self._acked.inc()
            self._held_gauge.set(len(self._held))
            if not self._held and self.on_drained is not None:
                self.on_drained(self)
        return True

    def _transmit(self, entry: _Entry) -> None:
        low = next(iter(self._held))  # every held seq is >= low, and only held messages are ever sent
        self.client.send((entry.seq, entry.body, low), SEQ_BYTES + entry.size_bytes)
        self._transmissions.inc()
        if self.ack_timeout is not None:
            cancel(entry.ack_timer)  # only the last send's timer counts
            entry.ack_timer = Timer(self.env, self.ack_timeout, lambda: self._ack_timed_out(entry))

    def _ack_timed_out(self, entry: _Entry) -> None:
        entry.ack_timer = None
        if self.client.state == CONNECTED:
            self._retransmitted.inc()
            self._transmit(entry)
        # when disconnected, the replay after the next reconnection sends it


class DirectSender:
    """The course's answer without a buffer: send if connected, otherwise drop. No acks, no replay.

    It numbers messages like :class:`Outbox` and uses the same frames, so a scenario can swap
    one for the other. A message sent into a connection that is dying is lost without notice.
    """

    __slots__ = ("client", "_next_seq", "_produced", "_transmissions", "_dropped")

    def __init__(self, client: Client) -> None:
        self.client = client
        self._next_seq = 0
        self._produced, self._transmissions = _sender_counters(client.ctx.metrics, client.name)
        (self._dropped,) = _counters(client.ctx.metrics, client.name, messages_dropped_offline_total=
                                     "Messages produced while not connected, and dropped (no outbox)")

    produced = Count("_produced")
    transmissions = Count("_transmissions", "Messages sent (each at most once).")
    dropped_offline = Count("_dropped", "Messages produced while the client was not connected, and dropped.")
    def submit(self, body: Any, size_bytes: int = 0) -> int | None:
        """Send at once; the sequence number if sent, None if dropped because not connected."""
        self._next_seq += 1
        seq = self._next_seq
        self._produced.inc()
        if self.client.send((seq, body, seq), SEQ_BYTES + size_bytes):
            self._transmissions.inc()
            return seq
        self._dropped.inc()
        return None

    held = 0
    """Nothing is ever held."""

    def connected(self) -> None:
        """Nothing to replay."""

    def handle(self, payload: Any) -> bool:
        return False


class _Window:
    """What a deduplicator remembers of one client: every seq <= ``floor`` and the seqs in ``above``."""

    __slots__ = ("floor", "above")

    def __init__(self) -> None:
        self.floor = 0
        self.above: set[int] = set()

    def add(self, seq: int, low: int) -> bool:
        """Record ``seq``; True if it is new. ``low`` is the client's promise that it will not send below it again."""
        above = self.above
        if low - 1 > self.floor:  # the client gave up everything below low: forget it
            self.floor = low - 1
            above.difference_update([s for s in above if s <= self.floor])
        if seq <= self.floor or seq in above:
            return False
        above.add(seq)
        while self.floor + 1 in above:  # keep the set small: fold a contiguous run into the floor
            self.floor += 1
            above.remove(self.floor)
        return True


class Deduplicator:
    """The server's receiving end. Use its :meth:`on_data` as ``Server(on_data=...)``.

    Each data frame ``(seq, body, low)`` from ``client`` is applied by calling
    ``apply(client, seq, body)``. With ``dedupe`` this happens at most once per ``(client, seq)``,
    and later copies are suppressed. With ``ack``, every copy is acknowledged, suppressed ones
    included: a client whose first ack was lost would otherwise send forever.
    ``dedupe=False`` is the naive at-least-once receiver, which applies every copy.
    """

    __slots__ = ("apply", "dedupe", "ack", "_windows", "applied", "suppressed", "acks_sent")

    def __init__(self, apply: Callable[[str, int, Any], None], *, dedupe: bool = True, ack: bool = True) -> None:
        self.apply = apply
        self.dedupe = dedupe
        self.ack = ack
        self._windows: dict[str, _Window] = {}
        self.applied = 0
        """Frames applied (copies included when ``dedupe`` is off)."""
        self.suppressed = 0
        """Copies recognised as already applied and not applied again."""
        self.acks_sent = 0

    def on_data(self, server: "Server", client: str, data: Any) -> None:
        seq, body, low = data
        if self.dedupe:
            window = self._windows.get(client)
            if window is None:
                window = self._windows[client] = _Window()
            fresh = window.add(seq, low)
        else:
            fresh = True
        if fresh:
            self.applied += 1
            self.apply(client, seq, body)
        else:
            self.suppressed += 1
        if self.ack and server.send_to(client, (ACK, seq), SEQ_BYTES):
            self.acks_sent += 1

    def remembered(self, client: str) -> int:
        """Sequence numbers held individually for ``client``, beyond the contiguous floor."""
        window = self._windows.get(client)
        return len(window.above) if window is not None else 0


__all__ = ["ACK", "OVERFLOW_POLICIES", "SEQ_BYTES", "Deduplicator", "DirectSender", "Outbox"]
