"""Replaying one set of concurrent edits in many delivery orders (course question 4C).

:func:`concurrent_session` lets a few replicas edit the same starting text without hearing from
each other, recording each edit twice: as the pycrdt update and as the naive positional
operation (the same intention: same replica, same position, same letter). :func:`replay_y`
and :func:`replay_naive` apply those recordings to a fresh replica in any order — shuffled,
with duplicates — and return the text it ends with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.components.crdt.documents import NaiveDocument, NaiveOp, YDocument, YUpdate
from sim.components.crdt.workload import LETTERS

__all__ = ["Session", "concurrent_session", "replay_naive", "replay_y"]

_SEED_CLIENT = 1_000_000  # the client id of whoever typed the starting text
_READER_CLIENT = 999_999  # the replica that replays (never edits)


@dataclass(frozen=True)
class Session:
    """Concurrent edits recorded as pycrdt updates and as positional operations."""

    initial_text: str
    initial_update: bytes
    y_updates: tuple[YUpdate, ...]
    naive_ops: tuple[NaiveOp, ...]
    expected_text: str
    """The text once every replica has every edit (pycrdt's answer, from a full sync)."""


def concurrent_session(seed: int, *, replicas: int = 3, edits: int = 4, initial_text: str = "hello world",
                       delete_share: float = 0.3) -> Session:
    """``replicas`` replicas each make ``edits`` edits at random places, none seeing the others'."""
    if replicas < 1 or edits < 0:
        raise ValueError("replicas must be >= 1 and edits >= 0")
    if not initial_text.isascii():
        raise ValueError("initial_text must be ASCII (pycrdt 0.14 indexes text by UTF-8 byte)")
    rng = np.random.default_rng(seed)
    origin = YDocument(_SEED_CLIENT)
    for i, ch in enumerate(initial_text):
        origin.insert(i, ch)
    initial_update = origin.doc.get_update()
    ys, naives = [], []
    for r in range(replicas):
        y = YDocument(r + 1)
        y.receive(initial_update)
        naive = NaiveDocument(r + 1)
        naive.chars = list(initial_text)
        naive.ids = [(_SEED_CLIENT, i) for i in range(len(initial_text))]
        ys.append(y)
        naives.append(naive)
    y_updates, naive_ops = [], []
    for step in range(edits):
        for r in range(replicas):
            y, naive = ys[r], naives[r]
            length = y.length()
            if length and rng.random() < delete_share:
                pos = int(rng.integers(0, length))
                y_updates.append(y.delete(pos)[0])
                naive_ops.append(naive.delete(pos)[0])
            else:
                pos = int(rng.integers(0, length + 1))
                ch = LETTERS[r].upper() if step % 2 else LETTERS[r]
                y_updates.append(y.insert(pos, ch)[0])
                naive_ops.append(naive.insert(pos, ch)[0])
    full = YDocument(_READER_CLIENT)
    full.receive(initial_update)
    for y in ys:
        full.receive(y.doc.get_update())
    return Session(initial_text, initial_update, tuple(y_updates), tuple(naive_ops), full.text_value())


def replay_y(session: Session, order, *, delivery: str = "causal", sync_after: bool = False) -> str:
    """The text of a fresh pycrdt replica after receiving ``session.y_updates[i] for i in order``.

    ``sync_after`` ends with one anti-entropy exchange with a replica that has everything.
    """
    doc = YDocument(_READER_CLIENT, delivery=delivery)
    doc.receive(session.initial_update)
    for i in order:
        doc.receive(session.y_updates[i])
    if sync_after:
        full = YDocument(_READER_CLIENT + 1)
        full.receive(session.initial_update)
        for upd in session.y_updates:
            full.receive(upd)
        doc.receive(full.answer(doc.digest()[0])[0])
    return doc.text_value()


def replay_naive(session: Session, order) -> str:
    """The text of a fresh naive replica after applying ``session.naive_ops[i] for i in order``."""
    doc = NaiveDocument(_READER_CLIENT)
    doc.chars = list(session.initial_text)
    doc.ids = [(_SEED_CLIENT, i) for i in range(len(session.initial_text))]
    for i in order:
        doc.receive(session.naive_ops[i])
    return doc.text_value()
