"""Links between named nodes: latency, loss, duplication, reordering, partitions.

Every message is accounted for. For original messages,
``sent == delivered + dropped + in_flight`` at every instant; duplicate copies made by the
network are counted apart with the same law
(``duplicated == duplicates_delivered + duplicates_dropped + duplicates_in_flight``).

Delivery is a callback (``handler(message)``) at the arrival time, which costs one entry of the
environment's calendar per message (:func:`~sim.core.timer.call_later`) and no process per node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import simpy

from sim.core.context import Context
from sim.core.distributions import Constant, Distribution
from sim.core.errors import ParameterError
from sim.core.timer import call_later

Handler = Callable[["Message"], None]

#: Why a message was dropped.
DROP_REASONS = ("loss", "partition", "unreachable")


@dataclass(frozen=True)
class LinkSpec:
    """What one direction of a link does to the messages it carries."""

    latency: Distribution = field(default_factory=lambda: Constant(0.0))
    """One-way latency, in seconds."""
    loss: float = 0.0
    """Probability that a message is lost."""
    duplication: float = 0.0
    """Probability that the network delivers a second copy of a message."""
    reorder: float = 0.0
    """Probability that a message is held back by ``reorder_delay`` seconds, so later ones overtake it."""
    reorder_delay: float = 0.0
    """Extra delay of a held-back message, in seconds (0 = twice the mean latency)."""
    fifo: bool = False
    """Never let a message overtake an earlier one on this link (a TCP stream); forced reordering still applies."""

    def __post_init__(self) -> None:
        if not isinstance(self.latency, Distribution):
            raise ParameterError("latency", f"must be a Distribution, got {self.latency!r}")
        for name in ("loss", "duplication", "reorder"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ParameterError(name, f"must be a probability between 0 and 1, got {value!r}")
        if not isinstance(self.reorder_delay, (int, float)) or not self.reorder_delay >= 0:
            raise ParameterError("reorder_delay", f"must be a number of seconds >= 0, got {self.reorder_delay!r}")


class Message:
    """One message on the wire."""

    __slots__ = ("src", "dst", "payload", "size_bytes", "sent_at", "id", "duplicate")

    def __init__(self, src: str, dst: str, payload: Any, size_bytes: int, sent_at: float, id: int, duplicate: bool):
        self.src = src
        self.dst = dst
        self.payload = payload
        self.size_bytes = size_bytes
        self.sent_at = sent_at
        """Simulated time at which it was sent, in seconds."""
        self.id = id
        """Sequence number of the send; a duplicate copy shares its original's id."""
        self.duplicate = duplicate

    def __repr__(self) -> str:
        dup = " dup" if self.duplicate else ""
        return f"<Message #{self.id}{dup} {self.src}->{self.dst} {self.payload!r}>"


class _Link:
    __slots__ = ("spec", "latency", "last_arrival", "rng", "plain", "sample")

    def __init__(self, spec: LinkSpec, rng: np.random.Generator, latency: Distribution) -> None:
        self.spec = spec
        self.rng = rng
        """Decides loss, duplication and forced reordering."""
        self.latency = latency
        self.sample = latency.sampler()
        self.last_arrival = 0.0
        """Arrival time of the latest message, for FIFO links."""
        self.plain = not (spec.loss or spec.duplication or spec.reorder or spec.fifo)
        """Only a latency: no random draw besides it, nothing to remember (the fast path of send)."""


class Network:
    """Carries messages between named nodes; see the module docstring for the accounting."""

    def __init__(self, ctx: Context, default: LinkSpec | None = None, *, name: str = "network") -> None:
        self.ctx = ctx
        self.env: simpy.Environment = ctx.env
        later = getattr(self.env, "call_later", None)
        self._later: Callable[[float, Handler, Message], None] = (
            later if later is not None else lambda delay, callback, msg: call_later(self.env, delay, callback, msg))
        self.name = name
        self.default = default or LinkSpec()
        """The link spec used between nodes that have no link of their own."""
        self._specs: dict[tuple[str, str], LinkSpec] = {}
        self._links: dict[tuple[str, str], _Link] = {}
        self._shared: _Link | None = None
        self._handlers: dict[str, Handler] = {}
        self._partitions: dict[str, list[tuple[float, float, frozenset[str], frozenset[str] | None]]] = {}
        self._cuts = 0  # index entries not yet forgotten, to skip the check when there are none
        self._arrive_callback = self._arrive  # one bound method, not a new one per message
        self._all_default = True  # no pair has its own spec and the default is not FIFO: one shared link
        if self.default.fifo:
            self._all_default = False
        # accounting (plain ints: this is the hot path)
        self.sent = 0
        """Original messages sent (also the id of the latest one)."""
        self.delivered = 0
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self.duplicated = 0
        self.duplicates_delivered = 0
        self.duplicates_dropped = dict.fromkeys(DROP_REASONS, 0)
        self.bytes_sent = 0

    # --- topology -----------------------------------------------------------------------
    def attach(self, node: str, handler: Handler) -> None:
        """Deliver messages addressed to ``node`` by calling ``handler(message)``."""
        self._handlers[node] = handler

    def detach(self, node: str) -> None:
        """``node`` stops receiving: messages that reach it are dropped as unreachable."""
        self._handlers.pop(node, None)

    def is_attached(self, node: str) -> bool:
        return node in self._handlers

    def link(self, a: str, b: str, spec: LinkSpec, *, both_ways: bool = True) -> None:
        """Give the pair ``a -> b`` (and ``b -> a``) its own behaviour instead of the default."""
        self._all_default = False
        self._specs[(a, b)] = spec
        self._links.pop((a, b), None)
        if both_ways:
            self._specs[(b, a)] = spec
            self._links.pop((b, a), None)

    def _link(self, src: str, dst: str) -> _Link:
        key = (src, dst)
        link = self._links.get(key)
        if link is not None:
            return link
        spec = self._specs.get(key)
        if spec is not None:
            return self._own(key, spec)
        if self._shared is None:
            self._shared = self._new_link(self.default, "default")
        if self.default.fifo:
            # FIFO order is per pair, so each pair keeps its own last arrival, but the pairs share
            # the default link's random streams: two generators per pair would cost 100,000
            # clients seconds of set-up.
            shared = self._shared
            link = self._links[key] = _Link(self.default, shared.rng, shared.latency)
            return link
        return self._shared  # no per-pair state needed: one link serves every default pair

    def _new_link(self, spec: LinkSpec, label: str) -> _Link:
        # stream names carry the network's name: two networks in one run draw independently
        rng = self.ctx.rng(f"{self.name}.link.{label}")
        return _Link(spec, rng, spec.latency.bind(self.ctx.rng(f"{self.name}.latency.{label}")))

    def _own(self, key: tuple[str, str], spec: LinkSpec) -> _Link:
        link = self._links[key] = self._new_link(spec, f"{key[0]}->{key[1]}")
        return link

    # --- partitions ---------------------------------------------------------------------
    def partition(self, side: Iterable[str], other: Iterable[str] | None = None, *, start: float,
                  heal: float | None) -> None:
        """Cut ``side`` off from ``other`` (default: from every other node) during [``start``, ``heal``).

        Messages crossing the cut are dropped, both those sent during it and those in flight
        when it starts. ``heal=None`` never heals. The cut is decided by the clock, not by a
        scheduled event, so a message sent exactly at ``heal`` always gets through.
        """
        if start < self.env.now:
            raise ParameterError("partition.start", f"must not be in the past (now is {self.env.now} s)")
        if heal is not None and heal < start:
            raise ParameterError("partition.heal", f"must be >= start ({start} s), got {heal}")
        side = frozenset(side)
        other_set = None if other is None else frozenset(other)
        cut = (float(start), math.inf if heal is None else float(heal), side, other_set)
        # indexed by the nodes of the smaller named side, so a check looks only at cuts that
        # involve one of its two nodes (thousands of clients may each have their own outages)
        indexed = side if other_set is None or len(side) <= len(other_set) else other_set
        for node in indexed:
            self._partitions.setdefault(node, []).append(cut)
        self._cuts += len(indexed)

    def partitioned(self, a: str, b: str) -> bool:
        """True while a partition separates ``a`` from ``b``."""
        if not self._cuts:
            return False
        now = self.env.now
        for node in (a, b):
            cuts = self._partitions.get(node)
            if not cuts:
                continue
            if cuts[0][1] <= now or any(c[1] <= now for c in cuts):
                alive = [c for c in cuts if c[1] > now]  # healed for good: forget them
                self._cuts -= len(cuts) - len(alive)
                if alive:
                    self._partitions[node] = cuts = alive
                else:
                    del self._partitions[node]
                    continue
            for start, _heal, side, other in cuts:
                if start <= now and (a in side) != (b in side):
                    if other is None or (b in other if a in side else a in other):
                        return True
        return False

    # --- sending ------------------------------------------------------------------------
    def send(self, src: str, dst: str, payload: Any = None, size_bytes: int = 0) -> Message:
        """Send one message; it reaches ``dst``'s handler after the link's latency, unless dropped."""
        self.sent = ident = self.sent + 1
        msg = Message(src, dst, payload, size_bytes, self.env.now, ident, False)
        self.bytes_sent += size_bytes
        link = self._shared if self._all_default else self._link(src, dst)
        if link is not None and link.plain and not self._cuts:
            # the hot path (a herd of handshakes): nothing but the latency can happen to it
            self._later(link.sample(), self._arrive_callback, msg)
            return msg
        if link is None:
            link = self._link(src, dst)
        spec = link.spec
        if spec.duplication and link.rng.random() < spec.duplication:
            self.duplicated += 1
            self._transmit(link, Message(src, dst, payload, size_bytes, msg.sent_at, msg.id, True))
        self._transmit(link, msg)
        return msg

    def _transmit(self, link: _Link, msg: Message) -> None:
        spec = link.spec
        if self._cuts and self.partitioned(msg.src, msg.dst):
            self._drop(msg, "partition")
            return
        if spec.loss and link.rng.random() < spec.loss:
            self._drop(msg, "loss")
            return
        delay = link.latency.sample()
        if spec.fifo:
            now = self.env.now
            if now + delay < link.last_arrival:
                delay = link.last_arrival - now
                while now + delay < link.last_arrival:  # simpy adds now + delay: undo its rounding
                    delay = math.nextafter(delay, math.inf)
            link.last_arrival = now + delay  # equal times keep send order (simpy breaks ties by event id)
        if spec.reorder and link.rng.random() < spec.reorder:
            delay += spec.reorder_delay or 2 * spec.latency.mean
        self._later(delay, self._arrive_callback, msg)

    def _arrive(self, msg: Message) -> None:
        if self._cuts and self.partitioned(msg.src, msg.dst):
            self._drop(msg, "partition")
            return
        handler = self._handlers.get(msg.dst)
        if handler is None:
            self._drop(msg, "unreachable")
            return
        if msg.duplicate:
            self.duplicates_delivered += 1
        else:
            self.delivered += 1
        handler(msg)

    def _drop(self, msg: Message, reason: str) -> None:
        if msg.duplicate:
            self.duplicates_dropped[reason] += 1
        else:
            self.dropped[reason] += 1

    # --- accounting ---------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """Original messages sent but neither delivered nor dropped yet."""
        return self.sent - self.delivered - sum(self.dropped.values())

    @property
    def duplicates_in_flight(self) -> int:
        return self.duplicated - self.duplicates_delivered - sum(self.duplicates_dropped.values())

    def accounting(self) -> dict[str, int]:
        """Counts for the conservation laws, flat, with drops broken down by reason."""
        out = {
            "sent": self.sent,
            "delivered": self.delivered,
            "dropped": sum(self.dropped.values()),
            "in_flight": self.in_flight,
            "duplicated": self.duplicated,
            "duplicates_delivered": self.duplicates_delivered,
            "duplicates_dropped": sum(self.duplicates_dropped.values()),
            "duplicates_in_flight": self.duplicates_in_flight,
            "bytes_sent": self.bytes_sent,
        }
        out.update({f"dropped_{r}": n for r, n in self.dropped.items()})
        return out
