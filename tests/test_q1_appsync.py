"""The AppSync-like service on graphql-core: subscriptions bound to mutations, selection-set
cuts, filters, auth modes, bypass writes, the real-time protocol and its limits (question 1)."""

import pytest
from hypothesis import given, settings, strategies as st

from sim.components.appsync import (
    API_KEY, IAM, USER_POOLS, AppSyncClient, AppSyncService, ConditionalCheckFailed, FilterError,
    GraphQLDocumentError, Identity, Table, check_filter, filter_matches, load_schema, parse_document,
)
from sim.core import Constant, Context, LinkSpec, Network

SEED = 20261124
SEND = 'mutation M($r: ID!, $i: ID!, $t: String!) { sendMessage(roomId: $r, id: $i, text: $t, createdAt: 1.0) { %s } }'
ON_MESSAGE = "subscription S($r: ID) { onMessage(roomId: $r) { %s } }"
WIDGET = ('mutation W($v: Float!, $e: Int) { updateWidget(dashboardId: "d", id: "w1", value: $v, cost: 9.5, '
          'expectedVersion: $e) { dashboardId id value version cost } }')


def world(**service):
    ctx = Context(SEED)
    net = Network(ctx, LinkSpec(latency=Constant(0.05), fifo=True))
    messages, widgets = Table(("roomId", "id")), Table(("dashboardId", "id"))

    def send_message(_src, info, **a):
        return messages.put_item(dict(a, author=info.context["identity"].user or "someone"))

    def update_widget(_src, _info, expectedVersion=None, **a):
        old = widgets.get_item(a)
        version = (old or {}).get("version", 0) + 1
        return widgets.put_item(dict(a, version=version), condition=None if expectedVersion is None else
                                (lambda item: (item or {}).get("version", 0) == expectedVersion))

    svc = AppSyncService(ctx, "api", net, resolvers={("Mutation", "sendMessage"): send_message,
                                                     ("Mutation", "updateWidget"): update_widget}, **service)
    return ctx, net, svc, messages, widgets


def client(ctx, net, name, identity):
    c = AppSyncClient(ctx, name, net, "api", identity)
    c.connect()
    return c


USER = Identity(USER_POOLS, "u")
EDITOR = Identity(USER_POOLS, "ed", ("editors",))
FINANCE = Identity(USER_POOLS, "fin", ("finance", "editors"))


def test_the_protocol_messages_in_order():
    ctx, net, svc, *_ = world(ka_interval=10.0)
    c = client(ctx, net, "c", USER)
    ctx.run(1)
    sid = c.subscribe(ON_MESSAGE % "id", {"r": "r1"})
    ctx.run(2)
    c.request(SEND % "roomId id", {"r": "r1", "i": "m1", "t": "hi"})
    ctx.run(3)
    c.unsubscribe(sid)
    ctx.run(25)
    assert c.messages[:4] == ["connection_ack", "start_ack", "data", "complete"] and c.messages[4:] == ["ka"] * 2


def test_fields_the_mutation_did_not_select_arrive_null():
    ctx, net, svc, *_ = world()
    sub = client(ctx, net, "sub", USER)
    writer = client(ctx, net, "w", USER)
    ctx.run(1)
    sub.subscribe(ON_MESSAGE % "id text", {"r": None})
    ctx.run(2)
    writer.request(SEND % "roomId id", {"r": "r1", "i": "m1", "t": "hello"})
    writer.request(SEND % "roomId id text", {"r": "r1", "i": "m2", "t": "hello"})
    ctx.run(3)
    assert [d.payload["onMessage"] for d in sub.deliveries] == [{"id": "m1", "text": None},
                                                                 {"id": "m2", "text": "hello"}]


def test_argument_filters_match_the_mutation_result_not_its_input():
    ctx, net, svc, *_ = world()
    r1, r2 = client(ctx, net, "r1", USER), client(ctx, net, "r2", USER)
    writer = client(ctx, net, "w", USER)
    ctx.run(1)
    r1.subscribe(ON_MESSAGE % "id", {"r": "r1"})
    r2.subscribe(ON_MESSAGE % "id", {"r": "r2"})
    ctx.run(2)
    writer.request(SEND % "roomId id", {"r": "r1", "i": "a", "t": "x"})
    writer.request(SEND % "id", {"r": "r1", "i": "b", "t": "x"})   # roomId not selected: matches nobody
    ctx.run(3)
    assert [d.payload["onMessage"]["id"] for d in r1.deliveries] == ["a"] and not r2.deliveries


def test_bypass_writes_notify_nobody():
    ctx, net, svc, messages, _ = world()
    sub = client(ctx, net, "sub", USER)
    ctx.run(1)
    sub.subscribe(ON_MESSAGE % "id", {"r": None})
    ctx.run(2)
    messages.put_item({"roomId": "r1", "id": "direct", "text": "straight into the table"})
    ctx.run(5)
    assert not sub.deliveries and messages.get_item({"roomId": "r1", "id": "direct"})


def test_auth_modes_decide_operations_and_a_subscriber_never_receives_a_field_it_may_not_read():
    ctx, net, svc, *_ = world()
    user, editor, finance, job = (client(ctx, net, n, i) for n, i in
                                  (("user", USER), ("editor", EDITOR), ("finance", FINANCE), ("job", Identity(IAM))))
    key = client(ctx, net, "kiosk", Identity(API_KEY))
    ctx.run(1)
    for c in (user, finance):
        c.subscribe("subscription { onWidget(dashboardId: \"d\") { id value cost } }")
    key.subscribe("subscription { onWidget { id } }")       # API key: Widget does not accept it
    ctx.run(2)
    user.request(WIDGET, {"v": 1.0})                         # not an editor: refused
    editor.request(WIDGET, {"v": 2.0})
    job.request(WIDGET, {"v": 3.0})                          # IAM back-end job: allowed
    ctx.run(2.5)
    finance.request(WIDGET, {"v": 4.0})
    ctx.run(3)
    assert user.responses[1]["errors"][0].startswith("Not Authorized to access updateWidget")
    assert [d.payload["onWidget"]["value"] for d in user.deliveries] == [2.0, 3.0, 4.0]
    assert all(d.payload["onWidget"]["cost"] is None for d in user.deliveries)      # finance only
    # the event is the mutation's result as its *caller* could read it: only the finance
    # editor's own mutation carries the cost, and only to the finance subscriber
    assert [d.payload["onWidget"]["cost"] for d in finance.deliveries] == [None, None, 9.5]
    assert key.errors and key.errors[0]["payload"]["errors"][0]["errorType"] == "Unauthorized"


def test_conditional_writes_reject_a_stale_version():
    ctx, net, svc, _, widgets = world()
    editor = client(ctx, net, "e", EDITOR)
    ctx.run(1)
    editor.request(WIDGET, {"v": 1.0, "e": 0})
    ctx.run(2)
    editor.request(WIDGET, {"v": 2.0, "e": 0})    # based on version 0, but it is 1 now
    ctx.run(3)
    assert editor.responses[2]["data"]["updateWidget"] is None and editor.responses[2]["errors"]
    assert widgets.get_item({"dashboardId": "d", "id": "w1"})["value"] == 1.0
    with pytest.raises(ConditionalCheckFailed):
        Table().put_item({"id": 1}, condition=lambda old: old is not None)


def test_enhanced_filters_or_groups_and_filters():
    spec = check_filter({"filterGroup": [{"filters": [{"fieldName": "value", "operator": "gt", "value": 10},
                                                      {"fieldName": "id", "operator": "in", "value": ["a", "b"]}]},
                                         {"filters": [{"fieldName": "title", "operator": "beginsWith", "value": "!"}]}]})
    assert filter_matches(spec, {"value": 11, "id": "a"})
    assert not filter_matches(spec, {"value": 11, "id": "c"})
    assert filter_matches(spec, {"value": 1, "id": "c", "title": "!alert"})
    assert not filter_matches(spec, {"id": "a"})            # absent field: no match
    with pytest.raises(FilterError):
        check_filter({"filterGroup": [{"filters": [{"fieldName": "id", "operator": "in", "value": list("abcdef")}]}]})
    with pytest.raises(FilterError):
        check_filter({"filterGroup": [{"filters": [{"fieldName": "id", "operator": "regex", "value": "."}]}]})


def test_enhanced_filter_set_by_the_subscription_resolver_is_applied():
    def only_big(args, identity):
        return {"filterGroup": [{"filters": [{"fieldName": "value", "operator": "ge", "value": 100}]}]}

    ctx, net, svc, *_ = world(subscription_filters={"onWidget": only_big})
    sub, editor = client(ctx, net, "s", USER), client(ctx, net, "e", EDITOR)
    ctx.run(1)
    sub.subscribe("subscription { onWidget { id value } }")
    ctx.run(2)
    for v in (5.0, 150.0, 99.0, 100.0):
        editor.request(WIDGET, {"v": v})
    ctx.run(3)
    assert [d.payload["onWidget"]["value"] for d in sub.deliveries] == [150.0, 100.0]


@pytest.mark.parametrize("bad", ["subscription { onMessage { nope } }", "subscription { onMessage { id ",
                                 "query { messages(roomId: 1) }"])
def test_invalid_documents_are_one_line_user_errors(bad):
    with pytest.raises(GraphQLDocumentError) as info:
        parse_document(load_schema(), bad)
    assert "\n" not in str(info.value)


def test_an_invalid_subscription_is_answered_with_an_error_message():
    ctx, net, svc, *_ = world()
    c = client(ctx, net, "c", USER)
    ctx.run(1)
    c.subscribe("subscription { onMessage { nope } }")
    ctx.run(2)
    assert c.messages == ["connection_ack", "error"]


def test_subscriptions_per_connection_limit():
    ctx, net, svc, *_ = world(max_subscriptions_per_connection=3)
    c = client(ctx, net, "c", USER)
    ctx.run(1)
    for _ in range(4):
        c.subscribe(ON_MESSAGE % "id", {"r": None})
    ctx.run(2)
    assert c.messages.count("start_ack") == 3
    assert c.errors[0]["payload"]["errors"][0]["errorType"] == "MaxSubscriptionsReachedError"


def test_oversized_events_are_dropped_silently():
    ctx, net, svc, *_ = world(max_payload_bytes=300)
    sub, w = client(ctx, net, "s", USER), client(ctx, net, "w", USER)
    ctx.run(1)
    sub.subscribe(ON_MESSAGE % "id text", {"r": None})
    ctx.run(2)
    w.request(SEND % "roomId id text", {"r": "r1", "i": "small", "t": "x"})
    w.request(SEND % "roomId id text", {"r": "r1", "i": "big", "t": "x" * 500})
    ctx.run(3)
    assert [d.payload["onMessage"]["id"] for d in sub.deliveries] == ["small"] and not sub.errors
    assert w.responses[2]["data"]["sendMessage"]["id"] == "big"       # the mutation itself succeeded


def test_missing_keep_alives_make_the_client_reconnect_and_subscribe_again():
    ctx, net, svc, *_ = world(ka_interval=10.0, connection_timeout_ms=30_000)
    c, w = client(ctx, net, "c", USER), client(ctx, net, "w", USER)
    ctx.run(1)
    c.subscribe(ON_MESSAGE % "id", {"r": None})
    ctx.run(2)
    net.partition(["c"], start=5.0, heal=60.0)
    ctx.run(200)
    assert c.messages.count("connection_ack") >= 2 and c.messages.count("start_ack") >= 2
    w.request(SEND % "roomId id", {"r": "r1", "i": "after", "t": "x"})
    ctx.run(201)
    assert [d.payload["onMessage"]["id"] for d in c.deliveries] == ["after"]


def test_start_ack_race_window_misses_early_events():
    ctx, net, svc, *_ = world(start_ack_race_s=0.5)
    sub, w = client(ctx, net, "s", USER), client(ctx, net, "w", USER)
    ctx.run(1)
    sub.subscribe(ON_MESSAGE % "id", {"r": None})
    ctx.run(1.2)   # start_ack is on its way; the mutation right after it is missed
    w.request(SEND % "roomId id", {"r": "r1", "i": "early", "t": "x"})
    ctx.run(3)
    w.request(SEND % "roomId id", {"r": "r1", "i": "late", "t": "x"})
    ctx.run(4)
    assert [d.payload["onMessage"]["id"] for d in sub.deliveries] == ["late"]


def test_persistence_survives_a_service_restart():
    ctx, net, svc, messages, _ = world()
    w = client(ctx, net, "w", USER)
    ctx.run(1)
    for i in range(10):
        w.request(SEND % "roomId id", {"r": "r1", "i": f"m{i}", "t": "x"})
    ctx.run(2)
    svc.restart(downtime=5.0)
    ctx.run(60)
    acked = [b["data"]["sendMessage"]["id"] for b in w.responses.values() if b["data"]]
    assert len(acked) == 10 and all(messages.get_item({"roomId": "r1", "id": i}) for i in acked)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["r1", "r2"]), st.sets(st.sampled_from(["roomId", "text", "author"]))),
                min_size=1, max_size=8),
       st.sets(st.sampled_from(["text", "author", "createdAt"]), min_size=1))
def test_property_subscribers_get_exactly_the_matching_mutations_cut_twice(mutations, sub_fields):
    ctx, net, svc, *_ = world()
    sub, w = client(ctx, net, "s", USER), client(ctx, net, "w", USER)
    ctx.run(1)
    sub.subscribe(ON_MESSAGE % " ".join(["id", *sorted(sub_fields)]), {"r": "r1"})
    ctx.run(2)
    expected = []
    for i, (room, selected) in enumerate(mutations):
        sel = ["id", *sorted(selected)]
        w.request(SEND % " ".join(sel), {"r": room, "i": f"m{i}", "t": "t"})
        if room == "r1" and "roomId" in selected:
            row = {"id": f"m{i}"}
            for f in sub_fields:
                row[f] = ({"text": "t", "author": "u"}.get(f) if f in selected else None)
            expected.append(row)
    ctx.run(5)
    assert [d.payload["onMessage"] for d in sub.deliveries] == expected


def test_the_service_ends_connections_at_their_maximum_duration_and_clients_subscribe_again():
    ctx, net, svc, *_ = world(connection_max_duration_s=20.0)
    c, w = client(ctx, net, "c", USER), client(ctx, net, "w", USER)
    ctx.run(1)
    c.subscribe(ON_MESSAGE % "id", {"r": None})
    ctx.run(50)
    assert c.messages.count("connection_ack") >= 3 and c.messages.count("start_ack") >= 3
    w.request(SEND % "roomId id", {"r": "r1", "i": "still", "t": "x"})
    ctx.run(52)
    assert [d.payload["onMessage"]["id"] for d in c.deliveries] == ["still"]
