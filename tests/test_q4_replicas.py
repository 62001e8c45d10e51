"""The three replicated documents, without the network: any delivery order, duplicates and drops.

pycrdt replicas fed the same edits in random orders, with duplicates and losses, and then one
round of anti-entropy, must hold identical content with every typed character that nobody
deleted; the naive positional model must really diverge on the textbook concurrent cases.
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from pycrdt import Array, Doc, Map, Text

from sim.components.crdt import (
    EditLedger, LWWDocument, NaiveDocument, YDocument, concurrent_session, replay_naive, replay_y,
)
from sim.components.crdt.yjs_format import decode_state_vector, decode_update, encode_state_vector

CLIENTS = (3_913_482_112, 17, 2_000_000_001)  # Yjs-sized ids and a small one

# one step: (action, replica, where in [0, 1], pick)
steps = st.lists(st.tuples(st.integers(0, 7), st.integers(0, 2), st.floats(0, 1), st.integers(0, 10**6)),
                 min_size=30, max_size=120)


def drive(documents, plan, ledger):
    """Local edits go into a pool of messages in flight; other steps deliver, duplicate or drop them,
    or run one anti-entropy exchange."""
    pool = []
    for action, r, where, pick in plan:
        doc = documents[r]
        if action <= 3:  # a local edit
            length = doc.length()
            if action == 1 and length:
                payload, _, identity = doc.delete(min(int(where * length), length - 1))
                ledger.deleted.add(identity)
            elif action == 2:
                payload, _, _ = doc.set_setting(f"k{pick % 2}", f"v{pick}")
            elif action == 3:
                payload, _, _ = doc.append_comment(f"c{pick}")
            else:
                payload, _, identity = doc.insert(int(where * (length + 1)), "xyz"[r])
                ledger.typed.add(identity)
            pool.extend((dst, payload) for dst in range(len(documents)) if dst != r)
        elif action == 7:  # one anti-entropy exchange in the middle of it all
            peer = documents[pick % len(documents)]
            if peer is not doc:
                reply = peer.answer(doc.digest()[0])
                if reply is not None:
                    doc.receive(reply[0])
        elif pool:
            i = pick % len(pool)
            dst, payload = pool[i]
            if action != 5:  # 5 drops the message
                documents[dst].receive(payload)
            if action != 6:  # 6 delivers and keeps a copy: a later step may deliver it again
                pool.pop(i)


def anti_entropy(documents):
    for a in documents:
        for b in documents:
            if a is not b:
                reply = b.answer(a.digest()[0])
                if reply is not None:
                    a.receive(reply[0])


@pytest.mark.parametrize("delivery", ["causal", "as-received"])
@settings(derandomize=True, deadline=None, max_examples=60)
@given(plan=steps)
def test_pycrdt_replicas_converge_and_lose_nothing(delivery, plan):
    docs = [YDocument(c, delivery=delivery) for c in CLIENTS]
    ledger = EditLedger()
    drive(docs, plan, ledger)
    anti_entropy(docs)
    keys = [d.key() for d in docs]
    assert keys[0] == keys[1] == keys[2]
    for d in docs:
        visible = d.visible_ids()
        assert ledger.losses(visible) == (0, 0)
        assert len(visible) == d.length() == len(ledger.typed - ledger.deleted)
        assert d.sv == decode_state_vector(d.doc.get_state())  # the cheap bookkeeping never drifts
        assert not d.pending


@settings(derandomize=True, deadline=None, max_examples=60)
@given(plan=steps)
def test_lww_converges_and_only_keeps_what_one_writer_saw(plan):
    now = [0.0]
    docs = [LWWDocument(c, clock=lambda: now[0]) for c in CLIENTS]
    ledger = EditLedger()
    drive(docs, plan, ledger)
    anti_entropy(docs)
    assert docs[0].key() == docs[1].key() == docs[2].key()
    visible = docs[0].visible_ids()
    lost, resurrected = ledger.losses(visible)
    assert len(visible) == len(ledger.typed) - len(ledger.deleted) - lost + resurrected


@settings(derandomize=True, deadline=None, max_examples=60)
@given(plan=steps)
def test_naive_replicas_end_up_with_every_operation_exactly_once(plan):
    """So that naive divergence comes from positions alone, not from lost or repeated operations."""
    docs = [NaiveDocument(c) for c in CLIENTS]
    ledger = EditLedger()
    drive(docs, plan, ledger)
    anti_entropy(docs)
    applied = [{(o, s) for o, seen in d.log.items() for s in seen} for d in docs]
    assert applied[0] == applied[1] == applied[2]
    assert all(len(d.comments()) == len(docs[0].comments()) for d in docs)
    for d in docs:
        assert all(not d.beyond[o] and d.prefix[o] == d.top[o] == max(d.log[o]) for o in d.log)
        assert d.answer(docs[0].digest()[0]) is None  # nothing left to send


def naive_pair(text):
    a, b = NaiveDocument(1), NaiveDocument(2)
    for doc in (a, b):
        doc.chars = list(text)
        doc.ids = [(0, i) for i in range(len(text))]
    return a, b


def test_naive_diverges_on_concurrent_inserts_at_the_same_position():
    a, b = naive_pair("")
    op_a, _, _ = a.insert(0, "x")
    op_b, _, _ = b.insert(0, "y")
    a.receive(op_b)
    b.receive(op_a)
    assert (a.text_value(), b.text_value()) == ("yx", "xy")  # each applied the other's insert(0) last


def test_naive_diverges_and_deletes_the_wrong_character():
    a, b = naive_pair("abc")
    op_a, _, _ = a.insert(1, "X")  # aXbc
    op_b, _, victim = b.delete(2)  # ab: B meant to delete "c"
    a.receive(op_b)  # delete(2) at A removes "b"
    b.receive(op_a)
    assert a.text_value() == "aXc" and b.text_value() == "aXb"
    assert victim == (0, 2) and victim in a.visible_ids()  # the "c" B deleted is still at A


def test_pycrdt_converges_on_the_same_canonical_cases():
    for start, edits in (("", [("insert", 0, "x"), ("insert", 0, "y")]),
                         ("abc", [("insert", 1, "X"), ("delete", 2, None)])):
        a, b = YDocument(1), YDocument(2)
        seed = YDocument(99)
        for i, ch in enumerate(start):
            seed.insert(i, ch)
        for doc in (a, b):
            doc.receive(seed.doc.get_update())
        ops = []
        for doc, (kind, pos, ch) in zip((a, b), edits):
            ops.append(doc.insert(pos, ch)[0] if kind == "insert" else doc.delete(pos)[0])
        a.receive(ops[1])
        b.receive(ops[0])
        assert a.text_value() == b.text_value()
    assert a.text_value() == "aXb"  # the X is kept and the c that B deleted is gone


def test_shuffled_and_duplicated_orders_give_one_document():
    session = concurrent_session(3, replicas=3, edits=5)
    rng = np.random.default_rng(3)
    n = len(session.y_updates)
    causal, naive = set(), set()
    for _ in range(40):
        order = rng.permutation(np.concatenate([np.arange(n), rng.integers(0, n, 4)]))
        causal.add(replay_y(session, order))
        naive.add(replay_naive(session, order))
        assert replay_y(session, order, delivery="as-received", sync_after=True) == session.expected_text
    assert causal == {session.expected_text}
    assert len(naive) > 1


def test_held_back_update_waits_for_what_it_depends_on():
    a, b = YDocument(1), YDocument(2)
    first = a.insert(0, "h")[0]
    second = a.insert(1, "i")[0]
    assert not b.receive(second) and b.pending == [second] and b.text_value() == ""
    assert b.receive(first) and b.text_value() == "hi" and not b.pending
    assert not b.receive(second) and b.duplicates == 1


def test_decoder_matches_pycrdt():
    doc = Doc(client_id=2**32 - 7)
    text, settings_map, comments = doc.get("text", type=Text), doc.get("settings", type=Map), \
        doc.get("comments", type=Array)
    text.insert(0, "hello world")
    del text[2:5]
    settings_map["theme"] = "dark"
    settings_map["refresh"] = 12
    settings_map["ratio"] = -1.5
    settings_map["flags"] = [True, None, {"a": [1, 2]}]
    settings_map["theme"] = "light"  # overwrite: the old entry is deleted
    comments.append("first")
    decoded = decode_update(doc.get_update())
    assert len(decoded.visible_string_ids()) == len(str(text)) == 8
    sv = decode_state_vector(doc.get_state())
    assert sv == {2**32 - 7: decoded.clients[2**32 - 7][1]}
    assert encode_state_vector(sv) == doc.get_state()
    with pytest.raises(ValueError):
        decode_update(doc.get_update()[:-3])
    with pytest.raises(ValueError):
        decode_state_vector(b"\x02\x01")
