"""A replica on the simulated network: local edits are broadcast, anti-entropy repairs losses.

The replica is the same for every model; its *document* (see :mod:`.documents`) decides what
is sent. Each local edit is one message to every peer. Every ``anti_entropy_period`` seconds
the replica asks one peer (round robin) for what it lacks: it sends its ``digest()`` (for
pycrdt, its state vector) and the peer answers with the difference (for pycrdt, the update
computed from that state vector). That is what makes replicas converge when the network loses
messages or a partition drops them: without it a lost update is lost for good.

An :class:`EditLedger` shared by the replicas records which characters were typed and which
ones users deleted on purpose, so that the scenario can count characters that vanished
without anyone deleting them.
"""

from __future__ import annotations

from typing import Any, Callable

import simpy

from sim.core.context import Context
from sim.core.errors import ParameterError
from sim.core.network import Message, Network

__all__ = ["EditLedger", "Replica"]

# message kinds (first item of every payload)
EDIT, DIGEST, ANSWER = "edit", "digest", "answer"


class EditLedger:
    """What users did, by identity: the ground truth the final documents are checked against."""

    def __init__(self) -> None:
        self.typed: set[tuple[int, int]] = set()
        """Identities of every character typed."""
        self.deleted: set[tuple[int, int]] = set()
        """Identities of the characters users deleted (what was under the cursor where they pressed the key)."""
        self.settings_written = 0
        self.comments: list[str] = []
        """Every comment appended, in the order users appended them."""

    def losses(self, visible: set[tuple[int, int]]) -> tuple[int, int]:
        """``(lost, resurrected)`` for a final text whose character identities are ``visible``.

        lost = typed, never deleted, yet missing; resurrected = deleted, yet still there.
        """
        return len(self.typed - self.deleted - visible), len(self.deleted & visible)


class Replica:
    """One replica: a document, a network node and an anti-entropy process."""

    def __init__(self, ctx: Context, name: str, document: Any, network: Network, peers: list[str], *,
                 anti_entropy_period: float | None, ledger: EditLedger | None = None,
                 on_change: Callable[["Replica"], None] | None = None, first_sync: float | None = None) -> None:
        if anti_entropy_period is not None and not anti_entropy_period > 0:
            raise ParameterError("anti_entropy_period", f"must be > 0 s or none (off), got {anti_entropy_period!r}")
        self.ctx = ctx
        self.env: simpy.Environment = ctx.env
        self.name = name
        self.document = document
        self.network = network
        self.peers = [p for p in peers if p != name]
        self.ledger = ledger
        self.on_change = on_change
        """Called after every change of the content (the scenario watches convergence with it)."""
        self._key: tuple | None = None
        bytes_total = ctx.metrics.counter("crdt_sent_bytes_total", "payload bytes sent by CRDT replicas",
                                          ("replica", "purpose"))
        self._edit_bytes = bytes_total.labels(name, "edit")
        self._sync_bytes = bytes_total.labels(name, "anti_entropy")
        network.attach(name, self._on_message)
        if anti_entropy_period is not None and self.peers:
            start = anti_entropy_period if first_sync is None else first_sync
            self.env.process(self._anti_entropy(anti_entropy_period, start))

    # --- local edits: one transaction, one message per peer ------------------------------------
    def length(self) -> int:
        return self.document.length()

    def insert(self, pos: int, char: str) -> None:
        payload, size, identity = self.document.insert(pos, char)
        if self.ledger is not None:
            self.ledger.typed.add(identity)
        self._broadcast(payload, size)

    def delete(self, pos: int) -> None:
        payload, size, identity = self.document.delete(pos)
        if self.ledger is not None:
            self.ledger.deleted.add(identity)
        self._broadcast(payload, size)

    def set_setting(self, key: str, value: str) -> None:
        payload, size, _ = self.document.set_setting(key, value)
        if self.ledger is not None:
            self.ledger.settings_written += 1
        self._broadcast(payload, size)

    def append_comment(self, comment: str) -> None:
        payload, size, _ = self.document.append_comment(comment)
        if self.ledger is not None:
            self.ledger.comments.append(comment)
        self._broadcast(payload, size)

    def _broadcast(self, payload: Any, size: int) -> None:
        for peer in self.peers:
            self.network.send(self.name, peer, (EDIT, payload), size)
        self._edit_bytes.inc(size * len(self.peers))
        self._changed()

    # --- replication ---------------------------------------------------------------------------
    def _on_message(self, msg: Message) -> None:
        kind, body = msg.payload
        if kind == DIGEST:
            reply = self.document.answer(body)
            if reply is not None:
                payload, size = reply
                self.network.send(self.name, msg.src, (ANSWER, payload), size)
                self._sync_bytes.inc(size)
        elif self.document.receive(body):
            self._changed()

    def _anti_entropy(self, period: float, start: float):
        yield self.env.timeout(start)
        turn = 0
        while True:
            peer = self.peers[turn % len(self.peers)]
            turn += 1
            digest, size = self.document.digest()
            self.network.send(self.name, peer, (DIGEST, digest), size)
            self._sync_bytes.inc(size)
            yield self.env.timeout(period)

    def _changed(self) -> None:
        self._key = None
        if self.on_change is not None:
            self.on_change(self)

    # --- reading -------------------------------------------------------------------------------
    def content_key(self) -> tuple:
        """The document's content (text, sorted settings, comments); cached until it changes."""
        if self._key is None:
            self._key = self.document.key()
        return self._key

    def content_sizes(self) -> tuple[int, int, int]:
        """Characters, settings and comments held: replicas of different sizes hold different contents."""
        return self.document.sizes()

    @property
    def edit_bytes(self) -> float:
        return self._edit_bytes.value

    @property
    def sync_bytes(self) -> float:
        return self._sync_bytes.value
