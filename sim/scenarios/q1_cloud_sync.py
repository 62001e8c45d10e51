"""``cloud-sync``: question 1, « Services cloud temps réel », measured.

The same users, on the same network (one-way ``latency`` on FIFO links: a TCP stream), use one
of two managed services for two workloads:

* ``rtdb``: the Firebase-Realtime-Database-like tree (:mod:`sim.components.realtime_tree`);
* ``appsync``: the AppSync-like GraphQL service on graphql-core (:mod:`sim.components.appsync`),
  its resolvers persisting into a DynamoDB-like table.

Workloads:

* ``chat``: ``users`` in one room, each posting ``message_rate`` messages per second; RTDB users
  listen with ``child_added`` on the room's messages through ``limitToLast(50)`` and keep their
  presence with ``onDisconnect``; AppSync users subscribe to ``onMessage(roomId)`` and announce
  presence with a mutation (there is no disconnect hook). ``intruder_share`` of the posts come
  from someone not allowed to post (RTDB: not a member, refused by the rules; AppSync: an API-key
  caller, refused by the auth mode). At ``0.7 × duration`` a share ``vanish_share`` of the users
  lose their connection silently (a phone in a tunnel) and never come back.
* ``dashboard``: ``widgets`` widgets, ``writers`` editors updating them (``update_rate`` per
  second in all), every user reading the whole dashboard: RTDB readers with one ``value``
  listener on the dashboard (the simple way), AppSync readers with ``onWidget(dashboardId)``
  selecting what they show. ``bypass_share`` of the updates are made by a back-end job: through
  the Admin SDK into the RTDB (every write goes through the database) or straight into the
  DynamoDB table for AppSync (a bypass write: AppSync never hears of it); ``intruder_share`` come
  from a user who is not an editor.

Summary, one row per (service, workload), averaged over ``replications`` with 95 % intervals:
``latency_p50_s``/``latency_p99_s`` (write sent -> update in another user's callback),
``bytes_per_update`` (bytes the service put on the wire to subscribers, per update made),
``snapshot_bytes_per_event`` (bytes of the snapshot handed to one callback), ``deliveries``
and ``missed_updates`` (updates a connected reader should have received and did not),
``rejected_writes`` (refused by rules or auth, from the metrics registry), ``null_fields``
(fields a subscriber asked for that arrived null), ``ghosts`` (vanished users still shown online
at the end), ``backend_writes`` (dashboard updates made by the back-end job, of ``updates``).

Series: ``write_limit`` (offered write rate against the RTDB's documented 1,000 writes per second:
achieved rate, commit wait, backlog) and ``layout`` (a nested JSON layout against a flattened one:
initial download, wire bytes, snapshot bytes and listeners fired per write, against depth).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.components import appsync as asx
from sim.components import realtime_tree as rt
from sim.core import Constant, Context, Distribution, LinkSpec, Network, Params, Result, Uniform, param
from sim.core.errors import ParameterError
from sim.core.ledger import DeliveryLedger
from sim.core.registry import scenario
from sim.core.replication import replicate, replications_param

SERVICES = ("rtdb", "appsync")
WORKLOADS = ("chat", "dashboard")
SELECTIONS = ("full", "id-only")
SUMMARY_COLUMNS = ("latency_p50_s", "latency_p99_s", "bytes_per_update", "snapshot_bytes_per_event", "updates",
                   "deliveries", "missed_updates", "rejected_writes", "null_fields", "ghosts", "backend_writes")
START = 5.0
"""Updates start after this warm-up (seconds): everyone is connected and listening."""
DRAIN_S = 150.0
"""Chat runs this long after the last message, so that a server that notices silent clients
(RTDB's idle timeout, then onDisconnect) has the time to; idle time costs no events."""

DASHBOARD = ("dashboards", "d1")


def _rules(read_rule: str) -> dict:
    rules = {"rules": dict(RTDB_RULES["rules"])}
    rules["rules"]["dashboards"] = {"$d": {**RTDB_RULES["rules"]["dashboards"]["$d"], ".read": read_rule}}
    return rules


def _subscription_fields(document: str) -> tuple[str, ...]:
    """The fields a dashboard subscription selects on ``onWidget`` (graphql-core parses and validates)."""
    doc = asx.parse_document(asx.load_schema(), document)
    op = asx._operation(doc)
    sel = op.selection_set.selections
    if op.operation.value != "subscription" or len(sel) != 1 or sel[0].name.value != "onWidget":
        raise asx.GraphQLDocumentError("the dashboard subscription must be one onWidget field")
    return tuple(f.name.value for f in sel[0].selection_set.selections)


RTDB_RULES = {"rules": {
    "rooms": {"$room": {
        ".read": "auth != null",
        "messages": {
            ".write": "auth != null && root.child('members').child($room).child(auth.uid).exists()",
            "$m": {".validate": "newData.hasChildren(['id', 'author', 'text']) && newData.child('text').isString()"
                                " && newData.child('text').val().length <= 1000"}}}},
    "presence": {"$room": {".read": "auth != null",
                           "$uid": {".write": "auth != null && auth.uid == $uid"}}},
    "members": {".read": "auth != null"},
    "dashboards": {"$d": {".read": "auth != null",
                          ".write": "auth != null && root.child('editors').child(auth.uid).exists()"}},
    "editors": {".read": "auth != null"},
}}


@dataclass(frozen=True)
class CloudSyncParams(Params):
    """Parameters of ``cloud-sync``."""

    service: str = param("all", choices=(*SERVICES, "all"), help="one service, or both on the same users")
    workload: str = param("all", choices=(*WORKLOADS, "all"), help="one workload, or both")
    users: int = param(20, ge=2, le=5000, help="users in the room / readers of the dashboard")
    duration_s: float = param(60.0, gt=START, le=3600, unit="s", help="simulated time of each workload")
    latency: Distribution = param(Uniform(0.02, 0.06), unit="s", help="one-way network latency user <-> service")
    message_rate: float = param(0.1, gt=0, le=10, unit="1/s", help="chat: messages per second per user")
    widgets: int = param(30, ge=1, le=10_000, help="dashboard: widgets on the dashboard")
    writers: int = param(3, ge=1, le=1000, help="dashboard: editors updating widgets")
    update_rate: float = param(2.0, gt=0, le=1000, unit="1/s", help="dashboard: widget updates per second in all")
    bypass_share: float = param(0.1, ge=0, le=1, help="dashboard: share of updates made by a back-end job "
                                "(Admin SDK into RTDB; straight into DynamoDB for AppSync)")
    intruder_share: float = param(0.1, ge=0, lt=1, help="share of writes attempted by someone not allowed to")
    vanish_share: float = param(0.2, ge=0, le=1, help="chat: share of users whose connection dies silently at 0.7 x duration")
    mutation_selection: str = param("full", choices=SELECTIONS,
                                    help="AppSync writers' mutation selection set: every field, or only the ids")
    commit_latency_s: float = param(0.01, ge=0, le=10, unit="s", help="RTDB: receipt to durable commit (assumption)")
    dynamodb_latency_s: float = param(0.005, ge=0, le=10, unit="s", help="AppSync: resolver write into DynamoDB (assumption)")
    write_rates: tuple[float, ...] = param((250.0, 500.0, 1000.0, 1500.0, 2000.0), gt=0, le=100_000, unit="1/s",
                                           help="write-limit series: offered write rates against one database")
    write_burst_s: float = param(5.0, gt=0, le=600, unit="s", help="write-limit series: how long each rate is offered")
    depths: tuple[int, ...] = param((1, 2, 4, 8, 16), ge=1, le=26, help="layout series: nesting depths of the nested layout")
    listen_path: str = param("/dashboards/d1", help="dashboard: where RTDB readers attach their value listener "
                             "(the dashboard or one of its ancestors; rules are not filters)")
    read_rule: str = param("auth != null", help="dashboard: the RTDB .read rule of /dashboards/$d")
    subscription_query: str = param(
        "subscription S($d: ID) { onWidget(dashboardId: $d) { id version title value updatedBy } }",
        help="dashboard: the AppSync readers' subscription document (variable $d is the dashboard id)")
    replications: int = replications_param()

    def validate(self) -> None:
        try:
            path = rt.parse_path(self.listen_path)
        except rt.PathError as err:
            raise ParameterError("listen_path", str(err)) from None
        if path != DASHBOARD[:len(path)]:
            raise ParameterError("listen_path", f"must be {rt.path_text(DASHBOARD)} or one of its ancestors, "
                                 f"got {self.listen_path!r}")
        try:
            rt.Rules(_rules(self.read_rule))
        except rt.RuleError as err:
            raise ParameterError("read_rule", str(err)) from None
        try:
            _subscription_fields(self.subscription_query)
        except asx.GraphQLDocumentError as err:
            raise ParameterError("subscription_query", str(err)) from None

    @property
    def services(self) -> tuple[str, ...]:
        return SERVICES if self.service == "all" else (self.service,)

    @property
    def workloads(self) -> tuple[str, ...]:
        return WORKLOADS if self.workload == "all" else (self.workload,)


# ======================================================================== bookkeeping ====
class _Ledger:
    """Updates made and who should receive them; what arrived is counted in the run's metrics
    registry (a :class:`~sim.core.ledger.DeliveryLedger` and two series of its own)."""

    def __init__(self, ctx: Context) -> None:
        self.sent: dict[str, float] = {}
        self.expected: dict[str, set[str]] = {}
        self.deliveries = DeliveryLedger(ctx.metrics, "updates")
        m = ctx.metrics
        self._snapshot = m.histogram("update_snapshot_bytes", "Bytes of the snapshot or payload each receiver got",
                                     buckets=(64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)).labels()
        self._null_fields = m.counter("graphql_null_fields_total", "Fields a subscription asked for and got as null")

    def made(self, uid: str, at: float, receivers: set[str]) -> None:
        self.sent[uid] = at
        self.expected[uid] = receivers

    def snapshot(self, size_bytes: int) -> None:
        self._snapshot.observe(size_bytes)

    def received(self, uid: str, reader: str) -> None:
        """``reader`` got ``uid`` now (counted once, and only if it was meant for it)."""
        if uid in self.sent and reader in self.expected[uid]:
            self.deliveries.deliver((uid, reader), self.sent[uid])

    def null_fields(self, n: int) -> None:
        self._null_fields.inc(n)

    def summary(self) -> dict:
        lat = np.array(self.deliveries.latencies)
        expected = sum(len(r) for r in self.expected.values())
        unique = self.deliveries.unique
        sizes = self._snapshot.observations
        return {"updates": len(self.sent), "deliveries": unique, "missed_updates": expected - unique,
                "latency_p50_s": float(np.quantile(lat, 0.5)) if len(lat) else math.nan,
                "latency_p99_s": float(np.quantile(lat, 0.99)) if len(lat) else math.nan,
                "snapshot_bytes_per_event": float(np.mean(sizes)) if sizes else math.nan,
                "null_fields": int(self._null_fields.value)}


def _network(ctx: Context, p: CloudSyncParams) -> Network:
    return Network(ctx, LinkSpec(latency=p.latency, fifo=True))


def _schedule(ctx: Context, rate: float, start: float, end: float, name: str) -> list[float]:
    """Poisson arrival times in [start, end)."""
    rng = ctx.rng(name)
    times, t = [], start
    while True:
        t += rng.exponential(1 / rate)
        if t >= end:
            return times
        times.append(t)


# ============================================================================ RTDB side ====
def _rtdb(p: CloudSyncParams, workload: str, seed: int, replication: int) -> dict:
    ctx = Context(seed, replication=replication)
    env, net, led = ctx.env, _network(ctx, p), _Ledger(ctx)
    users = [f"u{i}" for i in range(p.users)]
    db = rt.Database(_rules(p.read_rule))
    db.root = rt.normalize({"members": {"r1": {u: True for u in users}},
                            "editors": {f"e{i}": True for i in range(p.writers)}})
    srv = rt.RealtimeServer(ctx, "rtdb", net, db, write_rate=rt.presets()["limits"]["write_rate_per_second"]["value"],
                            max_connections=rt.presets()["limits"]["simultaneous_connections"]["value"],
                            commit_latency=Constant(p.commit_latency_s),
                            idle_timeout=rt.presets()["defaults"]["server_idle_timeout_s"]["value"])
    clients = {u: rt.RealtimeClient(ctx, u, net, "rtdb", auth={"uid": u}) for u in users}
    rng = ctx.rng("cloud-sync.workload")
    vanished: set[str] = set()
    alive = lambda: {u for u in users if u not in vanished}  # noqa: E731
    extra = {"backend_writes": 0}
    if workload == "chat":
        intruder = rt.RealtimeClient(ctx, "intruder", net, "rtdb", auth={"uid": "intruder"})
        intruder.connect()
        for u, c in clients.items():
            c.connect()

            def on_child(e, u=u):
                if e.type == "child_added" and not e.local:
                    led.snapshot(e.snapshot_bytes)
                    led.received(e.value.get("id"), u)

            env.timeout(1.0).callbacks.append(lambda _e, c=c, cb=on_child, u=u: (
                c.on("/rooms/r1/messages", "child_added", cb, rt.Query(order_by_child="createdAt", limit_to_last=50)),
                c.set(f"/presence/r1/{u}", True), c.on_disconnect_remove(f"/presence/r1/{u}")))
        watcher = clients[users[0]]
        env.timeout(1.5).callbacks.append(lambda _e: watcher.on("/presence/r1", "value"))
        seq = 0
        for t in _schedule(ctx, p.message_rate * p.users, START, p.duration_s, "cloud-sync.chat"):
            seq += 1

            def post(_e, seq=seq):
                mid = f"m{seq}"
                if rng.random() < p.intruder_share:
                    intruder.push("/rooms/r1/messages", {"id": mid, "author": "intruder", "text": "spam",
                                                         "createdAt": env.now})
                    return
                author = users[int(rng.integers(len(users)))]
                if author in vanished:
                    return
                led.made(mid, env.now, alive() - {author})
                clients[author].push("/rooms/r1/messages", {"id": mid, "author": author, "text": "hello " * 5,
                                                            "createdAt": env.now})
            env.timeout(t).callbacks.append(post)
        _vanish(ctx, net, p, users, vanished)
        ctx.run(p.duration_s + DRAIN_S)
        shown = db.get("/presence/r1") or {}
        extra["ghosts"] = sum(1 for u in vanished if u in shown)
    else:
        listen = rt.parse_path(p.listen_path)
        editors = {f"e{i}": rt.RealtimeClient(ctx, f"e{i}", net, "rtdb", auth={"uid": f"e{i}"})
                   for i in range(p.writers)}
        admin = rt.RealtimeClient(ctx, "admin-job", net, "rtdb", auth={"uid": "admin-job"})
        intruder = rt.RealtimeClient(ctx, "intruder", net, "rtdb", auth={"uid": "intruder"})
        db.root = rt.set_in(db.root, ("editors", "admin-job"), True)  # the Admin SDK bypasses rules anyway
        db.root = rt.set_in(db.root, ("dashboards", "d1"),
                            {f"w{i}": {"title": f"Widget {i}", "value": 0, "unit": "req/s", "updatedBy": "seed"}
                             for i in range(p.widgets)})
        for c in (*editors.values(), admin, intruder):
            c.connect()
        for u, c in clients.items():
            c.connect()
            last: dict = {}

            def on_value(e, u=u, last=last):
                if e.local or e.type != "value":
                    return
                led.snapshot(e.snapshot_bytes)
                board = rt.get_in(e.value, DASHBOARD[len(listen):]) or {}
                for wid, w in board.items():
                    if last.get(wid) != w.get("value"):
                        last[wid] = w.get("value")
                        led.received(f"v{w.get('value')}", u)
            env.timeout(1.0).callbacks.append(lambda _e, c=c, cb=on_value: c.on(listen, "value", cb))
        seq = 0
        for t in _schedule(ctx, p.update_rate, START, p.duration_s, "cloud-sync.dashboard"):
            seq += 1

            def update(_e, seq=seq):
                wid = f"w{int(rng.integers(p.widgets))}"
                r = rng.random()
                if r < p.intruder_share:
                    intruder.update(f"/dashboards/d1/{wid}", {"value": -seq, "updatedBy": "intruder"})
                    return
                writer = admin if r < p.intruder_share + p.bypass_share else \
                    editors[f"e{int(rng.integers(p.writers))}"]
                extra["backend_writes"] += int(writer is admin)
                led.made(f"v{seq}", env.now, set(users))
                writer.update(f"/dashboards/d1/{wid}", {"value": seq, "updatedBy": writer.name})
            env.timeout(t).callbacks.append(update)
        ctx.run(p.duration_s + 10.0)
        extra["ghosts"] = 0
    row = led.summary()
    updates = max(row["updates"], 1)
    row.update(extra)
    row["bytes_per_update"] = ctx.metrics.total("rtdb_wire_bytes_total") / updates
    row["rejected_writes"] = int(ctx.metrics.total("rtdb_writes_total", outcome="permission_denied")
                                 + ctx.metrics.total("rtdb_writes_total", outcome="write_too_big"))
    return row


def _vanish(ctx: Context, net: Network, p: CloudSyncParams, users: list[str], vanished: set[str]) -> None:
    """At 0.7 x duration, ``vanish_share`` of the users (never the first) lose their network for good."""
    rng = ctx.rng("cloud-sync.vanish")
    count = int(round(p.vanish_share * (len(users) - 1)))
    chosen = [users[1 + int(i)] for i in rng.choice(len(users) - 1, size=count, replace=False)] if count else []
    at = 0.7 * p.duration_s
    for u in chosen:
        net.partition([u], start=at, heal=None)

    def mark(_e):
        vanished.update(chosen)
    ctx.env.timeout(at).callbacks.append(mark)


# ========================================================================= AppSync side ====
MESSAGE_FIELDS = {"full": "roomId id author text createdAt", "id-only": "roomId id"}
WIDGET_FIELDS = {"full": "dashboardId id title value version updatedBy", "id-only": "dashboardId id"}


def _appsync(p: CloudSyncParams, workload: str, seed: int, replication: int) -> dict:
    ctx = Context(seed, replication=replication)
    env, net, led = ctx.env, _network(ctx, p), _Ledger(ctx)
    users = [f"u{i}" for i in range(p.users)]
    messages, widgets, presence = asx.Table(("roomId", "id")), asx.Table(("dashboardId", "id")), asx.Table(("roomId", "user"))

    published: list[str] = []
    """Widget updates in the order the service ran them: every reader receives them in this order."""

    def send_message(_s, info, **a):   # the author is the caller's identity, as $ctx.identity in a resolver
        return messages.put_item({**a, "author": info.context["identity"].user})

    def set_presence(_s, info, roomId, online):
        return presence.put_item({"roomId": roomId, "user": info.context["identity"].user, "online": online})

    def update_widget(_s, info, expectedVersion=None, **a):
        old = widgets.get_item(a) or {}
        published.append(f"v{int(a['value'])}")
        return widgets.put_item({**old, **a, "updatedBy": info.context["identity"].user,
                                 "version": old.get("version", 0) + 1})

    svc = asx.AppSyncService(ctx, "api", net, resolvers={("Mutation", "sendMessage"): send_message,
                                                         ("Mutation", "setPresence"): set_presence,
                                                         ("Mutation", "updateWidget"): update_widget},
                             resolver_latency=Constant(p.dynamodb_latency_s))
    clients = {u: asx.AppSyncClient(ctx, u, net, "api", asx.Identity(asx.USER_POOLS, u)) for u in users}
    rng = ctx.rng("cloud-sync.workload")
    vanished: set[str] = set()
    extra = {"backend_writes": 0}
    sel = p.mutation_selection
    asked = ("author", "text", "createdAt") if workload == "chat" else \
        tuple(f for f in _subscription_fields(p.subscription_query) if f not in ("id", "dashboardId"))

    seen: dict[str, int] = {}

    def on_data(d, u, key):
        led.snapshot(d.bytes)
        value = (d.payload or {}).get(key) or {}
        led.null_fields(sum(1 for f in asked if value.get(f) is None))
        if key == "onMessage":
            uid = value.get("id")
        else:  # FIFO: the k-th event a reader gets is the k-th update the service ran
            k = seen[u] = seen.get(u, 0) + 1
            uid = published[k - 1]
        led.received(uid, u)
    for u, c in clients.items():
        c.connect()
        if workload == "chat":
            c.subscribe("subscription S($r: ID) { onMessage(roomId: $r) { id author text createdAt } }", {"r": "r1"},
                        lambda d, u=u: on_data(d, u, "onMessage"))
            env.timeout(1.0).callbacks.append(lambda _e, c=c: c.request(
                "mutation { setPresence(roomId: \"r1\", online: true) { roomId user online } }"))
        else:
            c.subscribe(p.subscription_query, {"d": "d1"}, lambda d, u=u: on_data(d, u, "onWidget"))
    if workload == "chat":
        kiosk = asx.AppSyncClient(ctx, "intruder", net, "api", asx.Identity(asx.API_KEY))
        seq = 0
        for t in _schedule(ctx, p.message_rate * p.users, START, p.duration_s, "cloud-sync.chat"):
            seq += 1

            def post(_e, seq=seq):
                mid = f"m{seq}"
                doc = ("mutation M($i: ID!, $t: String!, $c: Float!) { sendMessage(roomId: \"r1\", id: $i, "
                       "text: $t, createdAt: $c) { %s } }" % MESSAGE_FIELDS[sel])
                if rng.random() < p.intruder_share:
                    kiosk.request(doc, {"i": mid, "t": "spam", "c": env.now})
                    return
                author = users[int(rng.integers(len(users)))]
                if author in vanished:
                    return
                led.made(mid, env.now, {u for u in users if u not in vanished} - {author})
                clients[author].request(doc, {"i": mid, "t": "hello " * 5, "c": env.now})
            env.timeout(t).callbacks.append(post)
        _vanish(ctx, net, p, users, vanished)
        ctx.run(p.duration_s + DRAIN_S)
        extra["ghosts"] = sum(1 for u in vanished if (presence.get_item({"roomId": "r1", "user": u}) or {}).get("online"))
    else:
        editors = [asx.AppSyncClient(ctx, f"e{i}", net, "api", asx.Identity(asx.USER_POOLS, f"e{i}", ("editors",)))
                   for i in range(p.writers)]
        intruder = asx.AppSyncClient(ctx, "intruder", net, "api", asx.Identity(asx.USER_POOLS, "intruder"))
        for i in range(p.widgets):
            widgets.put_item({"dashboardId": "d1", "id": f"w{i}", "title": f"Widget {i}", "value": 0.0, "version": 0})
        seq = 0
        for t in _schedule(ctx, p.update_rate, START, p.duration_s, "cloud-sync.dashboard"):
            seq += 1

            def update(_e, seq=seq):
                wid = f"w{int(rng.integers(p.widgets))}"
                doc = ("mutation W($w: ID!, $v: Float!, $by: String) { updateWidget(dashboardId: \"d1\", id: $w, "
                       "value: $v, title: $by) { %s } }" % WIDGET_FIELDS[sel])
                r = rng.random()
                if r < p.intruder_share:
                    intruder.request(doc, {"w": wid, "v": float(-seq)})
                    return
                led.made(f"v{seq}", env.now, set(users))
                if r < p.intruder_share + p.bypass_share:  # a back-end job writes straight into DynamoDB
                    extra["backend_writes"] += 1
                    old = widgets.get_item({"dashboardId": "d1", "id": wid})
                    widgets.put_item({**old, "value": float(seq), "version": old["version"] + 1})
                    return
                editors[int(rng.integers(p.writers))].request(doc, {"w": wid, "v": float(seq), "by": f"Widget {wid}"})
            env.timeout(t).callbacks.append(update)
        ctx.run(p.duration_s + 10.0)
        extra["ghosts"] = 0
    row = led.summary()
    row.update(extra)
    row["bytes_per_update"] = ctx.metrics.total("appsync_event_bytes_total") / max(row["updates"], 1)
    row["rejected_writes"] = int(ctx.metrics.total("appsync_requests_total", outcome="unauthorized"))
    return row


# ================================================================= write-limit series ====
def write_limit(p: CloudSyncParams, seed: int, replication: int) -> list[dict]:
    """Writes offered at each rate for ``write_burst_s`` to one RTDB (1,000 writes/s documented)
    and to AppSync (no per-API write limit published: not modelled)."""
    rows = []
    limit = rt.presets()["limits"]["write_rate_per_second"]["value"]
    for rate in p.write_rates:
        ctx = Context(seed, replication=replication)
        net = _network(ctx, p)
        db = rt.Database()
        srv = rt.RealtimeServer(ctx, "rtdb", net, db, write_rate=limit, commit_latency=Constant(p.commit_latency_s))
        writers = [rt.RealtimeClient(ctx, f"w{i}", net, "rtdb") for i in range(10)]
        for w in writers:
            w.connect()
        times = _schedule(ctx, rate, 1.0, 1.0 + p.write_burst_s, "cloud-sync.write-limit")
        for i, t in enumerate(times):
            ctx.env.timeout(t).callbacks.append(lambda _e, i=i: writers[i % 10].set(f"/counters/c{i % 100}", i))
        ctx.run(1.0 + p.write_burst_s)
        backlog = len(srv._queue)
        committed = db.version
        ctx.run(1.0 + p.write_burst_s + 10 * p.write_burst_s * max(1.0, rate / limit))
        waits = np.array(srv.m_commit.observations or [0.0])
        rows.append({"service": "rtdb", "offered_rate": rate, "limit": limit,
                     "achieved_rate": committed / p.write_burst_s, "backlog_at_end": backlog,
                     "commit_wait_p50_s": float(np.quantile(waits, 0.5)),
                     "commit_wait_p99_s": float(np.quantile(waits, 0.99)), "limit_modelled": True})
        rows.append({"service": "appsync", "offered_rate": rate, "limit": math.nan, "achieved_rate": rate,
                     "backlog_at_end": 0, "commit_wait_p50_s": p.dynamodb_latency_s,
                     "commit_wait_p99_s": p.dynamodb_latency_s, "limit_modelled": False})
    return rows


# ====================================================================== layout series ====
def layout_cost(depth_levels: int, layout: str, seed: int, replication: int, *, rooms: int = 5,
                messages: int = 20, writes: int = 20) -> dict:
    """The course's « structure JSON parfois limitante », measured.

    ``nested``: everything about a room lives under it, ``depth_levels`` deep
    (``/app/rooms/$room/l1/.../messages/$m``), and the app's screens listen at every level above
    the messages (the room list at ``/app/rooms``, a room page at ``/app/rooms/$room``, ...).
    ``flat`` (denormalised, as Firebase recommends): ``/roomMeta/$room`` for the room list and
    ``/messages/$room/$m`` for a room page: two listeners. Each write adds one message."""
    ctx = Context(seed, replication=replication)
    net = Network(ctx, LinkSpec(latency=Constant(0.02), fifo=True))
    db = rt.Database()
    srv = rt.RealtimeServer(ctx, "rtdb", net, db, commit_latency=Constant(0.0))
    body = {"author": "someone", "text": "hello " * 5}
    if layout == "nested":
        inner = ("app", "rooms")
        mid = tuple(f"l{i}" for i in range(1, depth_levels))
        for r in range(rooms):
            for m in range(messages):
                db.root = rt.set_in(db.root, inner + (f"r{r}",) + mid + ("messages", f"m{m}"), body)
            db.root = rt.set_in(db.root, inner + (f"r{r}", "title"), f"Room {r}")
        listen = [inner] + [inner + ("r0",) + mid[:i] for i in range(len(mid) + 1)]
        target = inner + ("r0",) + mid + ("messages",)
    else:
        for r in range(rooms):
            db.root = rt.set_in(db.root, ("roomMeta", f"r{r}"), {"title": f"Room {r}"})
            for m in range(messages):
                db.root = rt.set_in(db.root, ("messages", f"r{r}", f"m{m}"), body)
        listen = [("roomMeta",), ("messages", "r0")]
        target = ("messages", "r0")
    reader, writer = rt.RealtimeClient(ctx, "reader", net, "rtdb"), rt.RealtimeClient(ctx, "writer", net, "rtdb")
    reader.connect()
    writer.connect()
    ctx.run(1.0)
    for path in listen:
        reader.on(path, "value")
    ctx.run(2.0)
    initial = srv.m_wire.value
    first_events = len(reader.events)
    for i in range(writes):
        ctx.env.timeout(0.1 * i).callbacks.append(lambda _e, i=i: writer.push(target, body))
    ctx.run(2.0 + 0.1 * writes + 1.0)
    events = reader.events[first_events:]
    return {"layout": layout, "nesting": depth_levels, "message_path_depth": len(target) + 1,
            "listeners": len(listen), "initial_bytes": initial,
            "wire_bytes_per_write": (srv.m_wire.value - initial) / writes,
            "snapshot_bytes_per_write": sum(e.snapshot_bytes for e in events) / writes,
            "listeners_fired_per_write": len(events) / writes}


# ============================================================================== the run ====
def simulate(p: CloudSyncParams, service: str, workload: str, seed: int, replication: int = 0) -> dict:
    """One (service, workload): its summary row."""
    fn = {"rtdb": _rtdb, "appsync": _appsync}.get(service)
    if fn is None:
        raise ParameterError("service", f"must be one of {', '.join(SERVICES)}, got {service!r}")
    if workload not in WORKLOADS:
        raise ParameterError("workload", f"must be one of {', '.join(WORKLOADS)}, got {workload!r}")
    row = fn(p, workload, seed, replication)
    return {"service": service, "workload": workload, **{k: row[k] for k in SUMMARY_COLUMNS}}


def _once(p: CloudSyncParams, seed: int, r: int):
    import pandas as pd

    rows = [simulate(p, s, w, seed, r) for w in p.workloads for s in p.services]
    series = {"write_limit": pd.DataFrame(write_limit(p, seed, r)),
              "layout": pd.DataFrame([layout_cost(d, layout, seed, r) for d in p.depths
                                      for layout in ("nested", "flat")])}
    return rows, series


@scenario("cloud-sync", CloudSyncParams,
          "Q1: Firebase RTDB vs AppSync: latency, bytes per update, missed and rejected writes, write limit, JSON layout")
def run_cloud_sync(p: CloudSyncParams, seed: int) -> Result:
    reps = replicate(p.replications, lambda r: _once(p, seed, r))
    summary = reps.summary(["service", "workload"], SUMMARY_COLUMNS)
    series = {"replications": reps.rows}
    for name in ("write_limit", "layout"):
        frame = reps.series[name]
        keys = ["service", "offered_rate"] if name == "write_limit" else ["layout", "nesting"]
        cols = [c for c in frame.columns if c not in ("replication", *keys, "limit_modelled", "limit", "listeners")]
        series[name] = frame.groupby(keys, sort=False, as_index=False)[cols].mean()
    return Result("cloud-sync", seed, p, summary, series)
