"""Message brokers for cross-node fan-out (question 6: « souvent via un message broker (Redis Pub/Sub, Kafka) »).

A WebSocket node only reaches the clients connected to it. To deliver a message published on
node A to subscribers on every node, each node talks to a broker over the network (its *bus*
address, ``"<node>.bus"``). Two broker models, with the semantics of the real systems
(sources in ``data/brokers.json``):

* :class:`PubSubBroker`, **Redis Pub/Sub**: each node holds one subscription; a message is
  pushed to the subscriptions that exist *when it is published* and stored nowhere. A node
  that is down or not yet resubscribed misses it, and so does a client not connected to a
  node at that moment: **at most once**. Each subscription has an output buffer drained at
  the node's read rate; the broker cuts the subscription when the buffer reaches the hard
  limit, or stays at or above the soft limit for ``soft_seconds`` (redis.conf
  ``client-output-buffer-limit pubsub 32mb 8mb 60``). What was in the buffer is lost, and so
  is everything published until the node has resubscribed.
* :class:`LogBroker`, **Kafka**: every message is appended to a partition chosen from its key
  (Kafka's murmur2 partitioner), in order, with an offset. Each subscriber is its own consumer
  group whose committed offsets the broker keeps; when it (re)connects, through any node,
  delivery resumes from the committed offset. A message delivered but not yet committed when
  the connection dies is delivered again: **at least once**, duplicates included. Committed
  *before* processing (``commit="before_processing"``), a record the node was still processing
  when it crashed is never sent and never read again: **at most once**, losses included. Retention is
  by time and independent of consumption: a subscriber away longer than the retention finds
  the log start past its committed offset, and the skipped messages are counted as expired.
* :class:`NatsCoreBroker`, **core NATS**: Pub/Sub semantics (at most once) with NATS's
  slow-consumer rule (max pending 64 MiB, write deadline 10 s). **JetStream** is the log model
  with one partition (one stream), explicit acks and no age limit (see ``data/brokers.json``).

The node side of each model is :class:`PubSubNode` / :class:`LogNode`, which wraps a
:class:`~sim.components.server.Server`: clients send ``("subscribe",)`` after their handshake,
publishers send ``("publish", Publication)`` to the node's bus address, and subscribers
receive ``(MESSAGE, publication, order_key, order_value)`` data frames. With the log, the
subscriber answers each one with ``(ACK, partition, offset)`` (see :meth:`LogNode.on_client_data`).
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

import simpy

from sim.core.context import Context
from sim.core.errors import ParameterError
from sim.core.metrics import Count
from sim.core.network import Message, Network
from sim.core.timer import Timer

if TYPE_CHECKING:
    from sim.components.server import Server

MESSAGE = "msg"          # node -> subscriber: (MESSAGE, publication, order_key, order_value)
ACK = "ack"              # subscriber -> node (log only): (ACK, partition, offset) once processed
SUBSCRIBE = "subscribe"  # subscriber -> node after its handshake: (SUBSCRIBE,)
PUBLISH = "publish"      # publisher -> node bus, node bus -> broker: (PUBLISH, publication)
#: When a log consumer commits: after the subscriber processed the message (at least once) or as soon
#: as the node received it from the broker, before processing (at most once).
COMMIT_POLICIES = ("after_processing", "before_processing")
MB = 1024 * 1024
"""redis.conf: ``1mb => 1024*1024 bytes``."""


def bus(node: str) -> str:
    """Network address of a node's broker connection."""
    return f"{node}.bus"


class Publication:
    """One published message; ``seq`` numbers the messages of one publisher from 1."""

    __slots__ = ("id", "publisher", "seq", "key", "published_at", "size_bytes")

    def __init__(self, id: int, publisher: str, seq: int, key: str, published_at: float, size_bytes: int) -> None:
        self.id = id
        self.publisher = publisher
        self.seq = seq
        self.key = key
        self.published_at = published_at
        """When the publisher sent it, in seconds (the start of the end-to-end latency)."""
        self.size_bytes = size_bytes

    def __repr__(self) -> str:
        return f"<Publication #{self.id} {self.publisher}:{self.seq}>"


def _check_bytes(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ParameterError(name, f"must be an integer >= {low} (bytes), got {value!r}")
    return value


def _check_seconds(name: str, value: Any, *, positive: bool) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and (value > 0 if positive else value >= 0)
    if not ok:
        raise ParameterError(name, f"must be a number of seconds {'>' if positive else '>='} 0, got {value!r}")
    return float(value)


# ====================================================================== Redis Pub/Sub =====
class _Subscription:
    """A node's subscription and its output buffer, drained FIFO at ``read_rate`` bytes per second."""

    __slots__ = ("addr", "read_rate", "drains", "drained_at", "queued", "soft_since")

    def __init__(self, addr: str, read_rate: float) -> None:
        self.addr = addr
        self.read_rate = read_rate
        self.drains: deque[Timer] = deque()
        """When each buffered message will have been written out, oldest first (cancelled if the
        subscription goes)."""
        self.drained_at = 0.0
        """When the buffer will be empty if nothing is added (its content is ``(drained_at - now) * rate``)."""
        self.queued = 0
        """Messages in the buffer."""
        self.soft_since: float | None = None
        """Since when the buffer has been at or above the soft limit."""


class PubSubBroker:
    """Redis Pub/Sub on one channel; see the module docstring. Network address ``name``.

    Its counts are series of the run's metrics registry labelled ``broker=<name>``
    (``broker_published_total``, ``broker_fanned_out_total``, ``broker_subscriptions_cut_total{limit}``,
    ``broker_lost_in_buffer_total``), read back by the attributes of the same names."""

    LIMITS: tuple[str, ...] = ("hard", "soft")
    """The limits that close a slow subscription (the ``limit`` label of its cuts)."""

    def __init__(self, ctx: Context, network: Network, name: str = "broker", *, hard_limit_bytes: int = 32 * MB,
                 soft_limit_bytes: int = 8 * MB, soft_seconds: float = 60.0) -> None:
        _check_bytes("hard_limit_bytes", hard_limit_bytes, 0)
        _check_bytes("soft_limit_bytes", soft_limit_bytes, 0)
        _check_seconds("soft_seconds", soft_seconds, positive=False)
        self.env: simpy.Environment = ctx.env
        self.network = network
        self.name = name
        self.hard_limit_bytes = hard_limit_bytes
        """0 disables the hard limit (as in redis.conf)."""
        self.soft_limit_bytes = soft_limit_bytes
        """0 disables the soft limit."""
        self.soft_seconds = soft_seconds
        self._subs: dict[str, _Subscription] = {}  # insertion order: fan-out order is deterministic
        m, labels, by = ctx.metrics, {"broker": name}, ("broker",)
        self._published = m.counter("broker_published_total", "Messages the broker accepted", by).labels(**labels)
        self._fanned_out = m.counter("broker_fanned_out_total", "Copies put in subscription buffers",
                                     by).labels(**labels)
        cuts = m.counter("broker_subscriptions_cut_total", "Subscriptions closed for a slow consumer, by limit",
                         ("broker", "limit"))
        self._cut_off = {limit: cuts.labels(broker=name, limit=limit) for limit in self.LIMITS}
        self._lost_in_buffer = m.counter("broker_lost_in_buffer_total",
                                         "Copies dropped with the buffer of a subscription cut off or reset",
                                         by).labels(**labels)
        self.on_publish: Callable[[Publication, tuple[str, ...]], None] | None = None
        """Observer: ``on_publish(publication, subscribed node bus addresses)`` at each accepted publish."""
        network.attach(name, self._on_message)

    published = Count("_published", "Messages accepted (fanned out to the subscriptions that existed then).")
    fanned_out = Count("_fanned_out", "Copies put in subscription buffers.")
    @property
    def cut_off(self) -> dict[str, int]:
        """Subscriptions closed for exceeding the output-buffer limit, by limit."""
        return {limit: int(child.value) for limit, child in self._cut_off.items()}

    lost_in_buffer = Count("_lost_in_buffer",
                           "Copies dropped with the buffer of a subscription that was cut off or reset.")
    @property
    def subscribers(self) -> tuple[str, ...]:
        return tuple(self._subs)

    def buffered_bytes(self, addr: str) -> float:
        sub = self._subs.get(addr)
        return 0.0 if sub is None else max(0.0, (sub.drained_at - self.env.now) * sub.read_rate)

    def _on_message(self, msg: Message) -> None:
        kind, data = msg.payload
        if kind == SUBSCRIBE:
            self.subscribe(msg.src, data)
        elif kind == PUBLISH:
            self.publish(data)

    def subscribe(self, addr: str, read_rate: float) -> None:
        """(Re)subscribe ``addr``, which reads its connection at ``read_rate`` bytes per second."""
        if not read_rate > 0:
            raise ParameterError("read_rate", f"must be > 0 bytes per second, got {read_rate!r}")
        self.drop(addr)
        self._subs[addr] = _Subscription(addr, float(read_rate))

    def drop(self, addr: str) -> None:
        """Forget ``addr``'s subscription (its connection closed); what its buffer held is lost."""
        sub = self._subs.pop(addr, None)
        if sub is not None:
            self._lost_in_buffer.inc(sub.queued)
            sub.queued = 0
            for drain in sub.drains:  # nothing more is written to the closed connection
                drain.cancel()
            sub.drains.clear()

    def publish(self, pub: Publication) -> None:
        """Fan ``pub`` out to every current subscription; nothing is kept for later ones."""
        self._published.inc()
        if self.on_publish is not None:
            self.on_publish(pub, tuple(self._subs))
        now = self.env.now
        for sub in list(self._subs.values()):
            start = max(now, sub.drained_at)
            sub.drained_at = start + pub.size_bytes / sub.read_rate
            sub.queued += 1
            self._fanned_out.inc()
            if self._over_limit(sub, now):
                continue
            sub.drains.append(Timer(self.env, sub.drained_at - now, lambda sub=sub, pub=pub: self._drained(sub, pub)))

    def _over_limit(self, sub: _Subscription, now: float) -> bool:
        # Checked when data is added to the buffer, Redis' reply path (checkClientOutputBufferLimits).
        buffered = (sub.drained_at - now) * sub.read_rate
        if self.hard_limit_bytes and buffered >= self.hard_limit_bytes:
            self._cut(sub, "hard")
            return True
        soft = self.soft_limit_bytes
        if soft:
            # like Redis, only what is seen at these checks counts: a dip between two publishes goes unnoticed
            if buffered >= soft:
                if sub.soft_since is None:
                    sub.soft_since = now
                elif now - sub.soft_since > self.soft_seconds:  # Redis: elapsed > soft seconds
                    self._cut(sub, "soft")
                    return True
            else:
                sub.soft_since = None
        return False

    def _cut(self, sub: _Subscription, limit: str) -> None:
        self._cut_off[limit].inc()
        self.drop(sub.addr)
        self.network.send(self.name, sub.addr, ("closed", limit))  # the node learns its connection was closed

    def _drained(self, sub: _Subscription, pub: Publication) -> None:
        sub.drains.popleft()
        sub.queued -= 1
        self.network.send(self.name, sub.addr, (MESSAGE, pub), pub.size_bytes)



# ============================================================================= Kafka =====
class NatsCoreBroker(PubSubBroker):
    """Core NATS on one subject: Pub/Sub semantics (at most once, nothing stored) with NATS's
    slow-consumer rule instead of Redis's: the server closes a connection whose pending output
    exceeds ``max_pending_bytes`` (64 MiB) or whose flush would block longer than
    ``write_deadline_s`` (10 s; here: the backlog takes longer than that to drain at the node's
    read rate). Sources in ``data/brokers.json`` (``nats_core``)."""

    LIMITS = ("max_pending", "write_deadline")

    def __init__(self, ctx: Context, network: Network, name: str = "broker", *, max_pending_bytes: int = 64 * MB,
                 write_deadline_s: float = 10.0) -> None:
        super().__init__(ctx, network, name, hard_limit_bytes=max_pending_bytes, soft_limit_bytes=0, soft_seconds=0.0)
        self.write_deadline = _check_seconds("write_deadline_s", write_deadline_s, positive=True)

    def _over_limit(self, sub: _Subscription, now: float) -> bool:
        backlog_s = sub.drained_at - now
        if self.hard_limit_bytes and backlog_s * sub.read_rate >= self.hard_limit_bytes:
            self._cut(sub, "max_pending")
            return True
        if backlog_s > self.write_deadline:
            self._cut(sub, "write_deadline")
            return True
        return False


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2`` (32-bit, signed), which its default partitioner applies to the key bytes."""
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = length & ~3
    rest = length % 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: str, partitions: int) -> int:
    """Partition of ``key``: ``toPositive(murmur2(key bytes)) % partitions``, as Kafka's producer does."""
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions


class Record:
    """One entry of a partition."""

    __slots__ = ("offset", "pub", "appended_at")

    def __init__(self, offset: int, pub: Publication, appended_at: float) -> None:
        self.offset = offset
        self.pub = pub
        self.appended_at = appended_at


class _Partition:
    __slots__ = ("records", "start")

    def __init__(self) -> None:
        self.records: deque[Record] = deque()
        self.start = 0
        """Log start offset: records below it were deleted by retention."""

    @property
    def end(self) -> int:
        """Offset the next record will get."""
        return self.start + len(self.records)


class _Session:
    """A consumer group's live consumer: where it reads, and through which node."""

    __slots__ = ("group", "addr", "epoch", "positions")

    def __init__(self, group: str, addr: str, epoch: int, positions: list[int]) -> None:
        self.group = group
        self.addr = addr
        self.epoch = epoch
        """Generation: commits and leaves from an older session of the same group are fenced off."""
        self.positions = positions
        """Per partition, the next offset to push."""


class LogBroker:
    """A Kafka topic: partitions, per-group committed offsets, time-based retention. See the module docstring.

    Frames it understands (from node bus addresses): ``(PUBLISH, pub)``; ``("join", group)`` starts
    (or takes over) the group's consumer, answered by ``("joined", (group, epoch))`` and then the
    records ``("record", (group, epoch, partition, record))``; ``("commit", (group, epoch, partition,
    next_offset))``; ``("leave", (group, epoch))``.
    """

    def __init__(self, ctx: Context, network: Network, name: str = "broker", *, partitions: int = 1,
                 retention_s: float = 168 * 3600.0, retention_check_interval_s: float = 300.0) -> None:
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
            raise ParameterError("partitions", f"must be an integer >= 1, got {partitions!r}")
        _check_seconds("retention_s", retention_s, positive=True)
        _check_seconds("retention_check_interval_s", retention_check_interval_s, positive=True)
        self.env: simpy.Environment = ctx.env
        self.network = network
        self.name = name
        self.retention_s = float(retention_s)
        self.retention_check_interval_s = float(retention_check_interval_s)
        self.partitions = [_Partition() for _ in range(partitions)]
        self.committed: dict[str, list[int | None]] = {}
        """Per group and partition, the committed offset (the next one to read), None before the first commit."""
        self._sessions: dict[str, _Session] = {}
        self._epoch = 0
        """The last generation handed out (Kafka's generation id, carried in the frames for fencing)."""
        m, labels, by = ctx.metrics, {"broker": name}, ("broker",)
        self._published = m.counter("broker_published_total", "Messages the broker accepted", by).labels(**labels)
        self._deleted = m.counter("broker_deleted_by_retention_total", "Records deleted by retention",
                                  by).labels(**labels)
        self._expired = m.counter("broker_expired_total", "Records a group had not consumed when retention "
                                  "deleted them", ("broker", "group"))
        self._fenced = m.counter("broker_fenced_commits_total", "Commits refused: a newer consumer of the group "
                                 "had taken over", by).labels(**labels)
        self.on_publish: Callable[[Publication, int, int], None] | None = None
        """Observer: ``on_publish(publication, partition, offset)`` at each append."""
        self._started = self.env.now
        self._retention_armed = False
        network.attach(name, self._on_message)

    published = Count("_published")
    deleted = Count("_deleted", "Records deleted by retention.")
    @property
    def expired(self) -> dict[str, int]:
        """Per group, records it had not consumed that retention deleted before it came back."""
        return {key[1]: int(child.value) for key, child in self._expired.children().items() if key[0] == self.name}

    fenced_commits = Count("_fenced", "Commits refused because a newer consumer of the group had taken over.")
    def _on_message(self, msg: Message) -> None:
        kind, data = msg.payload
        if kind == PUBLISH:
            self.append(data)
        elif kind == "join":
            self.join(data, msg.src)
        elif kind == "commit":
            group, epoch, partition, offset = data
            self.commit(group, epoch, partition, offset)
        elif kind == "leave":
            group, epoch = data
            session = self._sessions.get(group)
            if session is not None and session.epoch == epoch:
                del self._sessions[group]

    def append(self, pub: Publication) -> Record:
        """Append ``pub`` to its key's partition and push it to the consumers that are caught up."""
        p = partition_for(pub.key, len(self.partitions))
        part = self.partitions[p]
        record = Record(part.end, pub, self.env.now)
        part.records.append(record)
        self._arm_retention()
        self._published.inc()
        if self.on_publish is not None:
            self.on_publish(pub, p, record.offset)
        for session in self._sessions.values():
            if session.positions[p] == record.offset:
                self._push(session, p, record)
        return record

    def join(self, group: str, addr: str) -> None:
        """Start ``group``'s consumer at ``addr`` from its committed offsets, replacing any earlier one."""
        self._epoch += 1
        committed = self.committed.setdefault(group, [None] * len(self.partitions))
        positions = []
        for p, part in enumerate(self.partitions):
            start = committed[p]
            if start is None:
                start = committed[p] = part.end  # auto.offset.reset=latest, Kafka's default
            if start < part.start:  # retention deleted what this group had not read
                self._expired.labels(broker=self.name, group=group).inc(part.start - start)
                start = part.start
            positions.append(start)
        session = self._sessions[group] = _Session(group, addr, self._epoch, positions)
        self.network.send(self.name, addr, ("joined", (group, session.epoch)))
        for p, part in enumerate(self.partitions):  # replay the backlog, then follow the log's end
            for record in list(part.records)[session.positions[p] - part.start:]:
                self._push(session, p, record)

    def _push(self, session: _Session, partition: int, record: Record) -> None:
        session.positions[partition] = record.offset + 1
        self.network.send(self.name, session.addr, ("record", (session.group, session.epoch, partition, record)),
                          record.pub.size_bytes)

    def commit(self, group: str, epoch: int, partition: int, offset: int) -> bool:
        """Store ``offset`` as ``group``'s position in ``partition``, unless a newer consumer took over."""
        session = self._sessions.get(group)
        if session is None or session.epoch != epoch:
            self._fenced.inc()
            return False
        self.committed[group][partition] = offset
        return True

    def _arm_retention(self) -> None:
        # Checks fall on multiples of the interval since the broker started, like Kafka's periodic
        # task, but only while some record is stored: an empty log costs no events.
        if self._retention_armed:
            return
        self._retention_armed = True
        interval = self.retention_check_interval_s
        k = math.floor((self.env.now - self._started) / interval) + 1
        timer = self.env.timeout(self._started + k * interval - self.env.now)
        timer.callbacks.append(self._retention_check)

    def _retention_check(self, _event: simpy.Event) -> None:
        # Kafka deletes whole segments once their newest record is older than the retention; here a
        # segment is one record.
        self._retention_armed = False
        horizon = self.env.now - self.retention_s
        for part in self.partitions:
            records = part.records
            while records and records[0].appended_at < horizon:
                records.popleft()
                part.start += 1
                self._deleted.inc()
        if any(part.records for part in self.partitions):
            self._arm_retention()


# ========================================================================== node side =====
class _NodeBase:
    """A WebSocket node's link to the broker, wrapping its :class:`Server` (see the module docstring)."""

    def __init__(self, ctx: Context, server: "Server", network: Network, broker: str) -> None:
        self.ctx = ctx
        self.env: simpy.Environment = ctx.env
        self.server = server
        self.network = network
        self.broker = broker
        self.addr = bus(server.name)
        self.up = True
        self.publish_refused = 0
        """Publish frames that reached the node while it was down."""
        server.on_data = self.on_client_data
        network.attach(self.addr, self._on_bus)

    def _on_bus(self, msg: Message) -> None:
        if not self.up:
            return  # the process is dead: nothing reads the socket
        kind, data = msg.payload
        if kind == PUBLISH:
            self.network.send(self.addr, self.broker, (PUBLISH, data), data.size_bytes)
        else:
            self.on_broker(kind, data)

    def on_broker(self, kind: str, data: Any) -> None:
        raise NotImplementedError

    def on_client_data(self, server: "Server", client: str, data: Any) -> None:
        raise NotImplementedError

    def crash(self) -> None:
        """The node's process dies with its server (call next to ``server.crash()``)."""
        self.up = False

    def restart(self) -> None:
        self.up = True


class PubSubNode(_NodeBase):
    """A node subscribed to a :class:`PubSubBroker`; forwards each message to its subscribed clients."""

    def __init__(self, ctx: Context, server: "Server", network: Network, broker: PubSubBroker, *,
                 read_rate: float, resubscribe_delay: float = 1.0) -> None:
        if not (isinstance(read_rate, (int, float)) and read_rate > 0):
            raise ParameterError("read_rate", f"must be > 0 bytes per second, got {read_rate!r}")
        _check_seconds("resubscribe_delay", resubscribe_delay, positive=False)
        super().__init__(ctx, server, network, broker.name)
        self._broker = broker
        self.read_rate = float(read_rate)
        self.resubscribe_delay = float(resubscribe_delay)
        self.clients: dict[str, None] = {}  # ordered, unlike a set
        self.cut_off = 0
        """Times the broker closed this node's subscription (slow consumer)."""
        self.authorize: Callable[[str, Publication], bool] | None = None
        """Optional check before each delivery: ``authorize(client, publication)``; False withholds
        the message from that client (question 2: fan-out that checks each subscriber's scope).
        None: every subscribed client gets every message, as Redis Pub/Sub's fan-out does."""
        self.subscribe()

    def subscribe(self) -> None:
        self.network.send(self.addr, self.broker, (SUBSCRIBE, self.read_rate))

    def on_client_data(self, server: "Server", client: str, data: Any) -> None:
        if data[0] == SUBSCRIBE:
            self.clients[client] = None

    def on_broker(self, kind: str, data: Any) -> None:
        if kind == MESSAGE:
            connections = self.server.connections
            for client in list(self.clients):
                if client not in connections:  # closed or replaced since it subscribed here
                    del self.clients[client]
                    continue
                if self.authorize is not None and not self.authorize(client, data):
                    continue
                self.server.send_to(client, (MESSAGE, data, data.publisher, data.seq), data.size_bytes)
        elif kind == "closed":
            self.cut_off += 1
            timer = self.env.timeout(self.resubscribe_delay)
            timer.callbacks.append(lambda _e: self.subscribe() if self.up else None)

    def crash(self) -> None:
        super().crash()
        self.clients.clear()
        self._broker.drop(self.addr)  # the kernel resets the connection: Redis frees the subscriber

    def restart(self) -> None:
        super().restart()
        self.subscribe()


class LogNode(_NodeBase):
    """A node that runs, for each subscribed client, that client's consumer of a :class:`LogBroker`."""

    def __init__(self, ctx: Context, server: "Server", network: Network, broker: LogBroker, *,
                 commit: str = "after_processing", processing: float = 0.0) -> None:
        if commit not in COMMIT_POLICIES:
            raise ParameterError("commit", f"must be one of {', '.join(COMMIT_POLICIES)}, got {commit!r}")
        self.processing = _check_seconds("processing", processing, positive=False)
        """Seconds between receiving a record and sending it to the subscriber (the consumer's own
        work); with ``before_processing`` the offset is already committed during that time."""
        super().__init__(ctx, server, network, broker.name)
        self.commit = commit
        self.epochs: dict[str, int] = {}
        """Per client (= consumer group), the generation of its consumer here."""
        self.generation = 0
        """Bumped by each crash: output still being processed by an older process is dropped."""
        self.in_process = 0
        """Records received and not yet sent on (being processed)."""
        self.dropped_on_crash = 0
        """Records a crash caught between their receipt and their delivery (never sent to the client)."""

    def on_client_data(self, server: "Server", client: str, data: Any) -> None:
        if data[0] == SUBSCRIBE:
            self.epochs.pop(client, None)  # records of an older consumer are ignored until joined
            self.network.send(self.addr, self.broker, ("join", client))
        elif data[0] == ACK and self.commit == "after_processing":
            epoch = self.epochs.get(client)
            if epoch is not None:
                _, partition, offset = data
                self.network.send(self.addr, self.broker, ("commit", (client, epoch, partition, offset + 1)))

    def on_broker(self, kind: str, data: Any) -> None:
        if kind == "joined":
            group, epoch = data
            self.epochs[group] = epoch
            return
        if kind != "record":
            return
        group, epoch, partition, record = data
        if self.epochs.get(group) != epoch:
            return
        if group not in self.server.connections:  # the client left this node: stop its consumer
            del self.epochs[group]
            self.network.send(self.addr, self.broker, ("leave", (group, epoch)))
            return
        if self.commit == "before_processing":
            # at most once: the offset is committed first, so what the node loses now stays lost
            self.network.send(self.addr, self.broker, ("commit", (group, epoch, partition, record.offset + 1)))
        if self.processing > 0:
            self.in_process += 1
            generation = self.generation
            timer = self.env.timeout(self.processing)
            timer.callbacks.append(lambda _e: self._processed(generation, group, partition, record))
        else:
            self._send(group, partition, record)

    def _processed(self, generation: int, group: str, partition: int, record: Record) -> None:
        if generation != self.generation:
            return  # the process that received it died: counted in dropped_on_crash
        self.in_process -= 1
        if group in self.server.connections:  # gone meanwhile: not committed (after_processing) or lost
            self._send(group, partition, record)

    def _send(self, group: str, partition: int, record: Record) -> None:
        pub = record.pub
        self.server.send_to(group, (MESSAGE, pub, partition, record.offset), pub.size_bytes)

    def crash(self) -> None:
        super().crash()
        self.epochs.clear()
        self.generation += 1  # the dead process's unsent output is gone
        self.dropped_on_crash += self.in_process
        self.in_process = 0


__all__ = ["ACK", "COMMIT_POLICIES", "MB", "MESSAGE", "PUBLISH", "SUBSCRIBE", "LogBroker", "LogNode",
           "NatsCoreBroker", "Publication", "PubSubBroker", "PubSubNode", "Record", "bus", "murmur2", "partition_for"]
