"""An AWS-AppSync-like GraphQL service with real-time subscriptions (course question 1).

Built on **graphql-core** (the reference GraphQL implementation's Python port): the schema is
SDL in ``data/appsync/schema.graphql``; every query, mutation and subscription document is
parsed, validated and executed by graphql-core. What is AppSync's own, modelled here with the
values and sources of ``data/appsync.json``:

* a subscription field is bound to mutations with ``@aws_subscribe(mutations: [...])``; it fires
  only when one of those mutations runs *through the service*: a write straight into the table
  (a "bypass" write) notifies nobody;
* the event is **the mutation's result, cut to the mutation's selection set**: a field the
  mutation did not select arrives null to every subscriber (the real gotcha), then cut again to
  the subscriber's own selection set;
* argument filters: the subscription's arguments must equal the same-named top-level fields of
  the mutation's result (absent from the result = no match); enhanced filters set by the
  subscription's resolver (``{"filterGroup": [{"filters": [{fieldName, operator, value}]}]}``:
  filters in a group AND-ed, groups OR-ed);
* authorization modes API key, Cognito user pools (with groups) and IAM: a field or type with
  directives accepts only the modes they name (``@aws_cognito_user_pools(cognito_groups: [...])``
  restricts to groups), otherwise the API's default mode; an unauthorized root field is an
  error, an unauthorized nested field is null with an error — so a subscriber never receives a
  field it may not read;
* optional persistence through resolvers into a DynamoDB-like :class:`Table` with its own
  latency and conditional writes;
* the real-time protocol: ``connection_init``/``connection_ack`` (with ``connectionTimeoutMs``),
  periodic ``ka`` (the client gives the connection up when none arrives in time and reconnects),
  ``start``/``start_ack`` or ``error``, ``data``, ``stop``/``complete``; the documented limits
  (subscriptions per connection, payload size: an oversized event is dropped silently).

Not modelled (the notebook says so): VTL/JS resolver code, Lambda/OIDC auth, caching, invalidation
filters, conflict detection of Amplify DataStore, request-token rate limits (not published).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from graphql import (
    GraphQLError, GraphQLSchema, OperationDefinitionNode, build_schema, default_field_resolver, execute, parse,
    validate,
)
from graphql.error import GraphQLSyntaxError

from sim import data
from sim.components.realtime_tree import TrackingServer, json_bytes
from sim.components.server import ServerSpec
from sim.core.distributions import Constant
from sim.core.errors import ParameterError, UserError
from sim.core.timer import Timer
from sim.core.timer import cancel as cancel_timer

API_KEY, USER_POOLS, IAM = "API_KEY", "AMAZON_COGNITO_USER_POOLS", "AWS_IAM"
AUTH_MODES = (API_KEY, USER_POOLS, IAM)
_MODE_DIRECTIVES = {"aws_api_key": API_KEY, "aws_cognito_user_pools": USER_POOLS, "aws_iam": IAM,
                    "aws_auth": USER_POOLS}


class GraphQLDocumentError(UserError, ValueError):
    """A GraphQL document (or schema) that does not parse or does not validate."""


class FilterError(UserError, ValueError):
    """An enhanced subscription filter AppSync would refuse."""


class ConditionalCheckFailed(Exception):
    """A conditional write whose condition did not hold (DynamoDB's ConditionalCheckFailedException)."""


def presets() -> dict:
    """AppSync's documented limits and protocol values (``data/appsync.json``)."""
    return data.load("appsync")


_LIMITS = presets()["limits"]


def load_schema(sdl: str | None = None) -> GraphQLSchema:
    """The schema from ``sdl`` (default: ``data/appsync/schema.graphql``) plus AppSync's directives."""
    sdl = data.text("appsync/schema.graphql") if sdl is None else sdl
    try:
        return build_schema(data.text("appsync/directives.graphql") + "\n" + sdl)
    except (GraphQLError, TypeError) as err:
        raise GraphQLDocumentError(f"schema: {str(err).splitlines()[0]}") from None


def parse_document(schema: GraphQLSchema, document: str):
    """Parse and validate ``document`` against ``schema`` (graphql-core); one clear line if not."""
    try:
        doc = parse(document)
    except GraphQLSyntaxError as err:
        raise GraphQLDocumentError(f"invalid GraphQL document: {err.message.rstrip('.')} at line "
                                   f"{err.locations[0].line if err.locations else '?'}") from None
    errors = validate(schema, doc)
    if errors:
        raise GraphQLDocumentError(f"invalid GraphQL document: {errors[0].message}")
    return doc


def _operation(doc) -> OperationDefinitionNode:
    ops = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    if len(ops) != 1:
        raise GraphQLDocumentError("a request must hold exactly one operation")
    return ops[0]


# ======================================================================== identities ====
@dataclass(frozen=True)
class Identity:
    """Who calls: an auth ``mode`` and, for user pools, the user and their groups."""

    mode: str
    user: str | None = None
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in AUTH_MODES:
            raise ParameterError("auth_mode", f"must be one of {', '.join(AUTH_MODES)}, got {self.mode!r}")


def _directive_rules(ast_node) -> list[tuple[str, tuple[str, ...] | None]]:
    """The auth directives on a schema element: ``[(mode, groups or None)]``."""
    out = []
    for d in getattr(ast_node, "directives", None) or ():
        mode = _MODE_DIRECTIVES.get(d.name.value)
        if mode is None:
            continue
        groups = None
        for arg in d.arguments or ():
            if arg.name.value == "cognito_groups":
                groups = tuple(v.value for v in arg.value.values)
        out.append((mode, groups))
    return out


def _allowed(rules: list, identity: Identity) -> bool:
    for mode, groups in rules:
        if mode == identity.mode and (groups is None or set(groups) & set(identity.groups)):
            return True
    return False


# =================================================================== enhanced filters ====
_OPERATORS = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b,
    "le": lambda a, b: a is not None and a <= b, "lt": lambda a, b: a is not None and a < b,
    "ge": lambda a, b: a is not None and a >= b, "gt": lambda a, b: a is not None and a > b,
    "contains": lambda a, b: a is not None and b in a, "notContains": lambda a, b: a is None or b not in a,
    "beginsWith": lambda a, b: isinstance(a, str) and a.startswith(b),
    "in": lambda a, b: a in b, "notIn": lambda a, b: a not in b,
    "between": lambda a, b: a is not None and b[0] <= a <= b[1],
    "attributeExists": lambda a, b: (a is not None) == bool(b),
    "containsAny": lambda a, b: a is not None and any(x in a for x in b),
}


def check_filter(spec: dict) -> dict:
    """Validate an enhanced filter (``{"filterGroup": [{"filters": [...]}]}``) as AppSync would."""
    groups = spec.get("filterGroup") if isinstance(spec, dict) else None
    if not isinstance(groups, list) or not groups:
        raise FilterError('an enhanced filter is {"filterGroup": [{"filters": [...]}, ...]}')
    for g in groups:
        filters = g.get("filters") if isinstance(g, dict) else None
        if not isinstance(filters, list) or not filters:
            raise FilterError("each filter group needs a non-empty 'filters' list")
        for f in filters:
            op, name = f.get("operator"), f.get("fieldName")
            if op not in _OPERATORS:
                raise FilterError(f"unknown filter operator {op!r}; AppSync's are {', '.join(_OPERATORS)}")
            if not isinstance(name, str) or name.count(".") + 1 > _LIMITS["enhanced_filter_field_depth"]["value"]:
                raise FilterError(f"fieldName {name!r}: a field path of at most "
                                  f"{_LIMITS['enhanced_filter_field_depth']['value']} levels")
            value = f.get("value")
            if op in ("in", "notIn") and (not isinstance(value, list)
                                          or len(value) > _LIMITS["enhanced_filter_in_values"]["value"]):
                raise FilterError(f"{op}: a list of at most {_LIMITS['enhanced_filter_in_values']['value']} values")
            if op == "containsAny" and (not isinstance(value, list) or len(value) >
                                        _LIMITS["enhanced_filter_contains_any_values"]["value"]):
                raise FilterError(f"containsAny: at most {_LIMITS['enhanced_filter_contains_any_values']['value']} values")
            if op == "between" and (not isinstance(value, list) or len(value) != 2):
                raise FilterError("between: a list of two values")
    return spec


def filter_matches(spec: dict, payload: dict) -> bool:
    """Groups OR-ed, filters in a group AND-ed, on the (mutation-cut) payload."""
    def field_value(name: str):
        node: Any = payload
        for part in name.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    return any(all(_OPERATORS[f["operator"]](field_value(f["fieldName"]), f.get("value")) for f in g["filters"])
               for g in spec["filterGroup"])


# =========================================================================== the table ====
class Table:
    """A DynamoDB-like table: items by key, conditional puts. It is durable: a service restart
    does not touch it. Writing here directly (``put_item`` from outside the service) is a
    *bypass* write: AppSync never hears of it."""

    def __init__(self, key: tuple[str, ...] = ("id",)) -> None:
        self.key = key
        self.items: dict[tuple, dict] = {}
        self.writes = 0

    def _k(self, item: dict) -> tuple:
        return tuple(item[k] for k in self.key)

    def get_item(self, key: dict) -> dict | None:
        item = self.items.get(self._k(key))
        return dict(item) if item is not None else None

    def put_item(self, item: dict, condition: Callable[[dict | None], bool] | None = None) -> dict:
        """Store ``item``; with ``condition(old_item)`` False, raise :class:`ConditionalCheckFailed`."""
        k = self._k(item)
        if condition is not None and not condition(self.items.get(k)):
            raise ConditionalCheckFailed(f"condition failed for {k}")
        self.items[k] = dict(item)
        self.writes += 1
        return dict(item)


# ========================================================================== the service ====
@dataclass
class _Subscription:
    connection: str
    id: str
    field: str
    document: Any
    variables: dict
    args: dict
    identity: Identity
    filter: dict | None
    active_at: float


@dataclass
class Delivery:
    """One ``data`` message a subscriber received."""

    subscription: str
    payload: dict | None
    errors: list
    bytes: int
    time: float
    mutation_id: Any = None
    sent_at: float = float("nan")


class AppSyncService:
    """The GraphQL endpoint (``NAME.https``: queries and mutations) and the real-time endpoint
    (``NAME``: the WebSocket of subscriptions), on one :class:`~sim.core.network.Network`."""

    def __init__(self, ctx, name: str, network, schema: GraphQLSchema | None = None, *,
                 resolvers: dict[tuple[str, str], Callable] | None = None,
                 subscription_filters: dict[str, Callable[[dict, Identity], dict | None]] | None = None,
                 default_auth_mode: str | None = None, resolver_latency=None, ka_interval: float | None = None,
                 connection_timeout_ms: int | None = None, start_ack_race_s: float = 0.0,
                 max_subscriptions_per_connection: int | None = None, max_payload_bytes: int | None = None,
                 max_connections: int | None = None, connection_max_duration_s: float | None = None) -> None:
        pre = presets()
        self.ctx, self.env, self.name, self.network = ctx, ctx.env, name, network
        self.schema = schema or load_schema()
        self.resolvers = resolvers or {}
        self.subscription_filters = subscription_filters or {}
        self.default_auth_mode = default_auth_mode or pre["defaults"]["default_auth_mode"]["value"]
        self.resolver_latency = (resolver_latency or Constant(0.0)).bind(ctx.rng(f"appsync.{name}.resolver"))
        self.ka_interval = ka_interval if ka_interval is not None else pre["defaults"]["ka_interval_s"]["value"]
        self.connection_timeout_ms = connection_timeout_ms or _LIMITS["connection_timeout_ms"]["value"]
        self.start_ack_race_s = start_ack_race_s
        self.max_subscriptions = max_subscriptions_per_connection or _LIMITS["subscriptions_per_connection"]["value"]
        self.max_payload_bytes = max_payload_bytes or _LIMITS["subscription_payload_bytes"]["value"]
        self.connection_max_duration_s = connection_max_duration_s or _LIMITS["connection_max_duration_s"]["value"]
        self._expiry: dict[str, Timer] = {}
        self.bindings = self._bindings()
        """mutation field -> subscription fields bound to it by @aws_subscribe."""
        self.subscriptions: dict[str, dict[str, _Subscription]] = {}
        self.realtime = TrackingServer(ctx, name, ServerSpec(max_connections=max_connections), network,
                                       on_data=self._on_realtime, on_gone=self._connection_gone)
        self.https = f"{name}.https"
        network.attach(self.https, self._on_https)
        m = ctx.metrics
        self.m_requests = m.counter("appsync_requests_total", "Queries and mutations by outcome", ("api", "outcome"))
        self.m_events = m.counter("appsync_events_total", "Subscription events by outcome", ("api", "outcome"))
        self.m_bytes = m.counter("appsync_event_bytes_total", "Bytes of data messages", ("api",)).labels(api=name)
        self.env.process(self._keep_alive())

    # --- schema ------------------------------------------------------------------------------
    def _bindings(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        sub = self.schema.subscription_type
        mutation = self.schema.mutation_type
        for fname, f in (sub.fields.items() if sub else ()):
            for d in (f.ast_node.directives if f.ast_node else ()):
                if d.name.value == "aws_subscribe":
                    for arg in d.arguments:
                        for v in arg.value.values:
                            if mutation is None or v.value not in mutation.fields:
                                raise GraphQLDocumentError(f"@aws_subscribe on {fname}: no mutation {v.value!r}")
                            out.setdefault(v.value, []).append(fname)
        return out

    def field_allowed(self, type_name: str, field_name: str, identity: Identity) -> bool:
        """AppSync's rule: the field's directives, else its type's, else the default mode."""
        t = self.schema.get_type(type_name)
        f = t.fields[field_name]
        rules = _directive_rules(f.ast_node)
        if not rules:
            rules = _directive_rules(t.ast_node)
        if not rules:
            rules = [(self.default_auth_mode, None)]
        return _allowed(rules, identity)

    def _resolver(self, identity: Identity):
        def resolve(source, info, **args):
            if not self.field_allowed(info.parent_type.name, info.field_name, identity):
                raise GraphQLError(f"Not Authorized to access {info.field_name} on type {info.parent_type.name}")
            fn = self.resolvers.get((info.parent_type.name, info.field_name))
            if fn is not None:
                return fn(source, info, **args)
            return default_field_resolver(source, info, **args)
        return resolve

    # --- queries and mutations ------------------------------------------------------------------
    def execute(self, document: str, variables: dict | None, identity: Identity, *, publish: bool = True) -> dict:
        """Run one query or mutation now; a mutation publishes to the subscriptions bound to it.
        Returns ``{"data": ..., "errors": [...]}`` as the HTTP response body."""
        doc = parse_document(self.schema, document)
        op = _operation(doc)
        if op.operation.value == "subscription":
            raise GraphQLDocumentError("subscriptions go through the real-time endpoint (start), not HTTPS")
        result = execute(self.schema, doc, variable_values=variables or {}, field_resolver=self._resolver(identity),
                         context_value={"identity": identity})  # resolvers see the caller, as $ctx.identity
        errors = [e.message for e in result.errors or ()]
        outcome = "ok" if not errors else ("unauthorized" if any(e.startswith("Not Authorized") for e in errors)
                                           else "error")
        self.m_requests.labels(api=self.name, outcome=outcome).inc()
        data_out = result.data or {}
        if publish and op.operation.value == "mutation":
            for mutation_field, value in data_out.items():
                if value is not None:
                    self._publish(mutation_field, value)
        return {"data": result.data, "errors": errors}

    def _on_https(self, msg) -> None:
        req = msg.payload
        delay = self.resolver_latency.sample()

        def run(_e):
            try:
                body = self.execute(req["query"], req.get("variables"), req["identity"])
            except GraphQLDocumentError as err:
                self.m_requests.labels(api=self.name, outcome="invalid").inc()
                body = {"data": None, "errors": [str(err)]}
            body["request"] = req.get("request")
            self.network.send(self.https, msg.src, body, json_bytes({"data": body["data"], "errors": body["errors"]}))

        self.env.timeout(delay).callbacks.append(run)

    # --- subscriptions ----------------------------------------------------------------------------
    def _publish(self, mutation_field: str, value: dict) -> None:
        now = self.env.now
        for sub_field in self.bindings.get(mutation_field, ()):
            for subs in self.subscriptions.values():
                for s in list(subs.values()):
                    if s.field != sub_field:
                        continue
                    if s.active_at > now:
                        self.m_events.labels(api=self.name, outcome="missed_start_race").inc()
                        continue
                    if not self._argument_match(s.args, value):
                        continue
                    if s.filter is not None and not filter_matches(s.filter, value):
                        continue
                    self._deliver(s, value)

    @staticmethod
    def _argument_match(args: dict, value: dict) -> bool:
        for k, v in args.items():
            if v is None:
                continue
            if k not in value or value[k] is None or str(value[k]) != str(v):
                return False
        return True

    def _deliver(self, s: _Subscription, value: dict) -> None:
        result = execute(self.schema, s.document, root_value={s.field: value}, variable_values=s.variables,
                         field_resolver=self._resolver(s.identity))
        payload = {"data": result.data}
        if result.errors:
            payload["errors"] = [e.message for e in result.errors]
        msg = {"type": "data", "id": s.id, "payload": payload}
        size = json_bytes(msg)
        if size > self.max_payload_bytes:
            self.m_events.labels(api=self.name, outcome="dropped_too_big").inc()
            return  # AppSync drops it and tells nobody
        self.m_events.labels(api=self.name, outcome="delivered").inc()
        self.m_bytes.inc(size)
        self.realtime.send_to(s.connection, msg, size)

    def _send(self, client: str, msg: dict) -> None:
        self.realtime.send_to(client, msg, json_bytes(msg))

    def _on_realtime(self, _server, client: str, msg: dict) -> None:
        kind = msg.get("type")
        if kind == "connection_init":
            self.subscriptions.setdefault(client, {})
            cancel_timer(self._expiry.pop(client, None))
            # the service ends a connection at its maximum duration; the client reconnects
            self._expiry[client] = Timer(self.env, self.connection_max_duration_s,
                                         lambda c=client: self.realtime.close(c, 1000))
            self._send(client, {"type": "connection_ack",
                                "payload": {"connectionTimeoutMs": self.connection_timeout_ms}})
        elif kind == "start":
            self._start(client, msg)
        elif kind == "stop":
            if self.subscriptions.get(client, {}).pop(msg["id"], None) is not None:
                self._send(client, {"type": "complete", "id": msg["id"]})

    def _start(self, client: str, msg: dict) -> None:
        sid, payload = msg["id"], msg["payload"]
        identity: Identity = payload["extensions"]["authorization"]
        subs = self.subscriptions.setdefault(client, {})
        try:
            request = json.loads(payload["data"])
            doc = parse_document(self.schema, request["query"])
            op = _operation(doc)
            if op.operation.value != "subscription" or len(op.selection_set.selections) != 1:
                raise GraphQLDocumentError("start needs a subscription operation selecting one field")
            sel = op.selection_set.selections[0]
            fname = sel.name.value
            if not self.field_allowed("Subscription", fname, identity):
                raise PermissionError(f"Not Authorized to access {fname} on type Subscription")
            if sid not in subs and len(subs) >= self.max_subscriptions:
                raise OverflowError("MaxSubscriptionsReachedError")
            variables = request.get("variables") or {}
            args = _literal_args(sel, variables)
            make_filter = self.subscription_filters.get(fname)
            spec = check_filter(make_filter(args, identity)) if make_filter is not None else None
        except (GraphQLDocumentError, FilterError, PermissionError, OverflowError, json.JSONDecodeError) as err:
            error_type = {PermissionError: "Unauthorized", OverflowError: "MaxSubscriptionsReachedError"}.get(
                type(err), "ValidationError")
            self.m_events.labels(api=self.name, outcome=f"start_{error_type}").inc()
            self._send(client, {"type": "error", "id": sid,
                                "payload": {"errors": [{"errorType": error_type, "message": str(err)}]}})
            return
        subs[sid] = _Subscription(client, sid, fname, doc, variables, args, identity, spec,
                                  self.env.now + self.start_ack_race_s)
        self._send(client, {"type": "start_ack", "id": sid})

    def _connection_gone(self, client: str) -> None:
        self.subscriptions.pop(client, None)
        cancel_timer(self._expiry.pop(client, None))

    def _keep_alive(self):
        while True:
            yield self.env.timeout(self.ka_interval)
            for client in list(self.realtime.connections):
                if client in self.subscriptions:
                    self._send(client, {"type": "ka"})

    def restart(self, downtime: float) -> None:
        """The real-time front end crashes (connections reset, subscriptions forgotten) and comes
        back after ``downtime``; the table behind the resolvers is untouched."""
        self.subscriptions.clear()
        self.realtime.crash()
        self.env.timeout(downtime).callbacks.append(lambda _e: self.realtime.restart())


def _literal_args(selection, variables: dict) -> dict:
    """The subscription field's arguments (literals or variables) as plain values."""
    from graphql import value_from_ast_untyped

    return {a.name.value: value_from_ast_untyped(a.value, variables) for a in selection.arguments or ()}


# =========================================================================== the client ====
def _ka_client_class():
    from sim.components.resilient_client import ResilientClient

    class KaClient(ResilientClient):
        """A resilient WebSocket that can give up a live connection whose ``ka`` stopped."""

        def reconnect(self) -> None:
            """Close a connection that went silent; the backoff policy then reconnects."""
            if self.state == "connected":
                self.close(1000)
                self._lost("timeout", 1006)

    return KaClient


class AppSyncClient:
    """An Amplify-like client: subscriptions over the real-time WebSocket (re-started after every
    reconnection), queries and mutations over HTTPS."""

    def __init__(self, ctx, name: str, network, service: str, identity: Identity, *, policy=None, tracker=None) -> None:
        from sim.components.backoff import make_backoff

        self.ctx, self.env, self.name, self.network = ctx, ctx.env, name, network
        self.identity = identity
        self.service_https = f"{service}.https"
        self.conn = _ka_client_class()(ctx, name, network, service, policy or make_backoff("full_jitter"),
                                        tracker, ctx.rng("appsync.client.jitter").random,
                                        on_message=self._on_message, on_connect=self._on_connect,
                                        on_disconnect=self._on_disconnect)
        self.https = f"{name}.https"
        network.attach(self.https, self._on_https)
        self.subs: dict[str, tuple[str, dict, Callable | None]] = {}
        self.acked: set[str] = set()
        self.errors: list[dict] = []
        self.deliveries: list[Delivery] = []
        self.responses: dict[int, dict] = {}
        self.messages: list[str] = []
        """Types of the real-time messages received, in order (the protocol, visible)."""
        self.connection_timeout_s = float("inf")
        self.last_ka = 0.0
        self._ka_timer: Timer | None = None
        self.ready = False
        self._next_request = 0
        self._callbacks: dict[int, Callable[[dict], None]] = {}

    def connect(self) -> None:
        self.conn.start()

    def _send(self, msg: dict) -> bool:
        size = json_bytes({k: v for k, v in msg.items() if k != "payload"}) + (
            json_bytes({"data": msg["payload"]["data"]}) if "payload" in msg else 0)
        return self.conn.send(msg, size)

    def _on_connect(self, _c) -> None:
        self.ready = False
        self._send({"type": "connection_init"})

    def _on_disconnect(self, _c, _how, _code) -> None:
        self.ready = False
        self.acked.clear()
        cancel_timer(self._ka_timer)

    def _start(self, sid: str) -> None:
        query, variables, _cb = self.subs[sid]
        self._send({"type": "start", "id": sid, "payload": {
            "data": json.dumps({"query": query, "variables": variables}),
            "extensions": {"authorization": self.identity}}})

    def subscribe(self, query: str, variables: dict | None = None, callback: Callable | None = None) -> str:
        sid = f"{self.name}-{len(self.subs) + 1}"
        self.subs[sid] = (query, variables or {}, callback)
        if self.ready:
            self._start(sid)
        return sid

    def unsubscribe(self, sid: str) -> None:
        if self.subs.pop(sid, None) is not None and self.ready:
            self._send({"type": "stop", "id": sid})

    def _on_message(self, _c, msg: dict) -> None:
        kind = msg["type"]
        self.messages.append(kind)
        if kind == "connection_ack":
            self.ready = True
            self.connection_timeout_s = msg["payload"]["connectionTimeoutMs"] / 1000
            self._ka(self.env.now)
            for sid in self.subs:
                self._start(sid)
        elif kind == "ka":
            self._ka(self.env.now)
        elif kind == "start_ack":
            self.acked.add(msg["id"])
        elif kind == "error":
            self.errors.append(msg)
        elif kind == "data":
            payload = msg["payload"]
            d = Delivery(msg["id"], payload.get("data"), payload.get("errors", []), json_bytes(msg), self.env.now)
            self.deliveries.append(d)
            cb = self.subs.get(msg["id"], (None, None, None))[2]
            if cb is not None:
                cb(d)

    def _ka(self, now: float) -> None:
        """A keep-alive (or the ack): the connection is given up if the next one is late."""
        self.last_ka = now
        cancel_timer(self._ka_timer)
        self._ka_timer = Timer(self.env, self.connection_timeout_s, self.conn.reconnect)

    # --- HTTPS ---------------------------------------------------------------------------------
    def request(self, query: str, variables: dict | None = None, on_result: Callable[[dict], None] | None = None) -> int:
        """Send a query or mutation; ``on_result(body)`` with ``{"data", "errors"}`` when it comes back."""
        self._next_request += 1
        rid = self._next_request
        if on_result is not None:
            self._callbacks[rid] = on_result
        body = {"query": query, "variables": variables or {}, "identity": self.identity, "request": rid}
        self.network.send(self.https, self.service_https, body, json_bytes({"query": query, "variables": variables}))
        return rid

    def _on_https(self, msg) -> None:
        body = msg.payload
        self.responses[body["request"]] = body
        cb = self._callbacks.pop(body["request"], None)
        if cb is not None:
            cb(body)
