"""Four state-based CRDTs written out so that their merge functions can be read in a minute.

A *state-based* CRDT (a CvRDT) ships its whole state; a replica that receives one merges it
into its own with ``merge``. Replicas converge whatever the order, repetition or grouping of
the merges because ``merge`` is

* commutative: ``a.merge(b) == b.merge(a)``,
* associative: ``a.merge(b.merge(c)) == a.merge(b).merge(c)``,
* idempotent: ``a.merge(a) == a``,

i.e. it computes a least upper bound in a join semi-lattice, and every local update only goes
*up* in that lattice. The objects are immutable: every operation returns a new state, so a
state can be sent, kept and merged again without copies going stale.

Replica identifiers are strings or integers; element values of the OR-Set must be hashable.
Values come out as plain ints, or as ``frozenset`` (compare them; sort them to print them).
"""

from __future__ import annotations

from typing import Hashable, Iterable, Mapping

__all__ = ["GCounter", "PNCounter", "LWWRegister", "ORSet"]

ReplicaId = Hashable


def _check_replica(replica: ReplicaId) -> None:
    if isinstance(replica, bool) or not isinstance(replica, (str, int)):
        raise TypeError(f"a replica id is a string or an integer, got {replica!r}")


class GCounter:
    """Grow-only counter: one count per replica; a replica only increments its own entry.

    merge = entry-wise maximum; value = sum of the entries.
    """

    __slots__ = ("counts",)

    def __init__(self, counts: Mapping[ReplicaId, int] | None = None) -> None:
        clean = {}
        for replica, n in (counts or {}).items():
            _check_replica(replica)
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise ValueError(f"G-Counter entries are integers >= 0, got {replica!r}: {n!r}")
            if n:  # a zero entry and a missing one are the same state
                clean[replica] = n
        self.counts: dict[ReplicaId, int] = clean

    def increment(self, replica: ReplicaId, amount: int = 1) -> "GCounter":
        """This counter after ``replica`` adds ``amount`` (>= 0: a G-Counter never goes down)."""
        _check_replica(replica)
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise ValueError(f"a G-Counter only grows: amount must be an integer >= 0, got {amount!r}")
        counts = dict(self.counts)
        counts[replica] = counts.get(replica, 0) + amount
        return GCounter(counts)

    def merge(self, other: "GCounter") -> "GCounter":
        """Entry-wise maximum: each replica's own count is only ever increased by that replica."""
        counts = dict(self.counts)
        for replica, n in other.counts.items():
            if n > counts.get(replica, 0):
                counts[replica] = n
        return GCounter(counts)

    @property
    def value(self) -> int:
        return sum(self.counts.values())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GCounter) and self.counts == other.counts

    def __hash__(self) -> int:
        return hash(frozenset(self.counts.items()))

    def __repr__(self) -> str:
        return f"GCounter({dict(sorted(self.counts.items(), key=repr))})"


class PNCounter:
    """Counter that goes up and down: two G-Counters, increments ``p`` and decrements ``n``.

    merge = merge each half; value = p.value - n.value. (Merging a single signed count per
    replica with ``max`` would not work: a decrement makes the entry smaller, and ``max``
    would forget it.)
    """

    __slots__ = ("p", "n")

    def __init__(self, p: GCounter | None = None, n: GCounter | None = None) -> None:
        self.p = p if p is not None else GCounter()
        self.n = n if n is not None else GCounter()

    def increment(self, replica: ReplicaId, amount: int = 1) -> "PNCounter":
        return PNCounter(self.p.increment(replica, amount), self.n)

    def decrement(self, replica: ReplicaId, amount: int = 1) -> "PNCounter":
        return PNCounter(self.p, self.n.increment(replica, amount))

    def merge(self, other: "PNCounter") -> "PNCounter":
        return PNCounter(self.p.merge(other.p), self.n.merge(other.n))

    @property
    def value(self) -> int:
        return self.p.value - self.n.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PNCounter) and self.p == other.p and self.n == other.n

    def __hash__(self) -> int:
        return hash((self.p, self.n))

    def __repr__(self) -> str:
        return f"PNCounter(p={self.p!r}, n={self.n!r})"


class LWWRegister:
    """Last-writer-wins register: a value stamped with ``(timestamp, replica)``.

    merge keeps the value with the larger stamp. The replica id breaks ties between equal
    timestamps; without it two replicas writing at the same instant would each keep their own
    value and merge would not be commutative. A replica must not write twice with the same
    timestamp (use a logical or hybrid clock), so a stamp names exactly one write.
    """

    __slots__ = ("value", "timestamp", "replica")

    def __init__(self, value: object = None, timestamp: float = float("-inf"), replica: ReplicaId = "") -> None:
        _check_replica(replica)
        self.value = value
        self.timestamp = timestamp
        """When the value was written (any clock the replicas share: seconds, Lamport counter...)."""
        self.replica = replica

    @property
    def stamp(self) -> tuple:
        # repr makes string and integer replica ids comparable with each other
        return (self.timestamp, repr(self.replica))

    def assign(self, value: object, timestamp: float, replica: ReplicaId) -> "LWWRegister":
        """``replica`` writes ``value`` at ``timestamp``; an older stamp than the current one loses at once."""
        return self.merge(LWWRegister(value, timestamp, replica))

    def merge(self, other: "LWWRegister") -> "LWWRegister":
        return other if other.stamp > self.stamp else self

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, LWWRegister) and self.stamp == other.stamp and self.value == other.value)

    def __hash__(self) -> int:
        return hash(self.stamp)

    def __repr__(self) -> str:
        return f"LWWRegister({self.value!r}, t={self.timestamp!r}, by={self.replica!r})"


class ORSet:
    """Observed-remove set: ``add`` wins over a concurrent ``remove``.

    Every add creates a unique tag ``(replica, n)``; ``remove(e)`` tombstones only the tags of
    ``e`` it has *observed*. An element is in the set while it has a tag that is not
    tombstoned, so an add the remover had not seen survives the merge. merge = union of the
    tags and union of the tombstones.
    """

    __slots__ = ("adds", "removed")

    def __init__(self, adds: Iterable[tuple[Hashable, tuple]] = (), removed: Iterable[tuple] = ()) -> None:
        self.adds: frozenset[tuple[Hashable, tuple]] = frozenset(adds)
        """``(element, tag)`` pairs ever added."""
        self.removed: frozenset[tuple] = frozenset(removed)
        """Tombstoned tags."""

    def add(self, element: Hashable, replica: ReplicaId) -> "ORSet":
        _check_replica(replica)
        # the next number among this replica's own tags: unique without a hidden counter
        n = 1 + max((tag[1] for _, tag in self.adds if tag[0] == replica), default=0)
        return ORSet(self.adds | {(element, (replica, n))}, self.removed)

    def remove(self, element: Hashable) -> "ORSet":
        """Remove what this replica has seen of ``element`` (nothing if it is absent)."""
        observed = {tag for e, tag in self.adds if e == element}
        return ORSet(self.adds, self.removed | observed)

    def merge(self, other: "ORSet") -> "ORSet":
        return ORSet(self.adds | other.adds, self.removed | other.removed)

    @property
    def value(self) -> frozenset:
        return frozenset(e for e, tag in self.adds if tag not in self.removed)

    def __contains__(self, element: Hashable) -> bool:
        return element in self.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ORSet) and self.adds == other.adds and self.removed == other.removed

    def __hash__(self) -> int:
        return hash((self.adds, self.removed))

    def __repr__(self) -> str:
        return f"ORSet({sorted(self.value, key=repr)})"
