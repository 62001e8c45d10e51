"""Three ways to replicate the same shared document, behind one interface.

The shared document of the scenario is a text (what users type), a map of settings (a
collaborative dashboard's configuration) and a list of comments. Each model below keeps one
replica's copy of it, applies local edits, says what to send for them, and applies what it
receives:

* :class:`YDocument` — a ``pycrdt.Doc`` (Yjs) holding a ``Text``, a ``Map`` and an ``Array``;
  it sends each transaction's incremental update. **Converges, loses nothing.**
* :class:`NaiveDocument` — plain lists and a dict; it sends positional operations
  (``insert(pos, char)``, ``delete(pos)``, ``set(key, value)``, ``append(item)``) applied at
  the receiver in arrival order. **Diverges** as soon as two edits are concurrent.
* :class:`LWWDocument` — the whole document is one last-writer-wins register; it sends the
  whole document. **Converges, but loses the edits of every writer except the last.**

Each also answers anti-entropy: ``digest()`` summarises what a replica has, ``answer(digest)``
returns what the asker lacks (or ``None``), and ``receive`` takes either an edit or an answer.
Local edit methods return ``(payload, size_bytes, identity)``: ``identity`` names the typed
character (insert) or the character removed (delete), so the scenario can tell which typed
characters survive; it is instrumentation, never sent, and not counted in ``size_bytes``.

Simplifications: text is ASCII (pycrdt 0.14 indexes text by UTF-8 bytes, so one ASCII
character is one index); sizes count payload bytes, not transport framing.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from pycrdt import Array, Doc, Map, Text

from sim.components.crdt.yjs_format import StateVector, decode_state_vector, decode_update
from sim.core.errors import ParameterError

__all__ = ["DELIVERY", "LWWDocument", "LWWState", "NaiveDocument", "NaiveOp", "YDocument", "YUpdate", "uint_size"]

Identity = tuple[int, int]

#: How a :class:`YDocument` treats updates that arrive before those they depend on.
DELIVERY = ("causal", "as-received")


def uint_size(value: int) -> int:
    """Bytes of ``value`` as an unsigned LEB128 varint (what Yjs and our size estimates use)."""
    return max(1, (value.bit_length() + 6) // 7)


def _text_size(value: str) -> int:
    n = len(value.encode("utf-8"))
    return uint_size(n) + n


# --- Yjs ---------------------------------------------------------------------------------------
class YUpdate:
    """One transaction's incremental update, with the causal context it was made in."""

    __slots__ = ("update", "deps", "client", "start", "end")

    def __init__(self, update: bytes, deps: StateVector, client: int, start: int, end: int) -> None:
        self.update = update
        self.deps = deps
        """The sender's state vector just before the edit: everything the edit may depend on."""
        self.client = client
        self.start = start
        """The sender's own clock before and after the edit (equal for a pure deletion)."""
        self.end = end

    def __repr__(self) -> str:
        return f"<YUpdate client={self.client} clock {self.start}..{self.end} {len(self.update)} B>"


class YDocument:
    """One replica's ``pycrdt.Doc``: ``text`` (Text), ``settings`` (Map) and ``comments`` (Array).

    ``delivery="causal"`` applies an incremental update only once the local state vector covers
    the sender's state vector at the time of the edit, and holds it back until then (anti-
    entropy answers always apply at once: they are computed against our own state vector).
    ``"as-received"`` hands every update to pycrdt at once and relies on Yjs to park updates
    whose dependencies are missing. Yjs is designed for that, but pycrdt 0.14.13 (yrs 0.28)
    sometimes drops a parked update, so as-received replicas need anti-entropy to repair
    themselves (see the notebook); ``causal`` is the default.
    """

    kind = "pycrdt"

    def __init__(self, client_id: int, *, delivery: str = "causal") -> None:
        if delivery not in DELIVERY:
            raise ParameterError("delivery", f"must be one of {', '.join(DELIVERY)}, got {delivery!r}")
        self.client_id = client_id
        self.delivery = delivery
        self.doc: Doc = Doc(client_id=client_id)
        self.text: Text = self.doc.get("text", type=Text)
        self.settings_map: Map = self.doc.get("settings", type=Map)
        self.comments_array: Array = self.doc.get("comments", type=Array)
        self._capturing = False
        self._captured = b""
        self.doc.observe(self._capture)
        self.sv: StateVector = {}
        """The state vector, decoded; replaced (never mutated) after every change."""
        self.pending: list[YUpdate] = []
        """Updates received before what they depend on (causal delivery only)."""
        self.duplicates = 0
        """Incremental updates received again after they were integrated, and skipped."""

    def _capture(self, event) -> None:
        if self._capturing:
            self._captured = event.update

    def _local(self, edit: Callable[[], None], clocks: int) -> tuple[YUpdate, int]:
        """Run one edit that takes ``clocks`` clock units (1 per ASCII character, map entry or list item)."""
        # one pycrdt call = one transaction = one update (long transactions grow quadratically)
        before = self.sv
        self._capturing = True
        try:
            edit()
        finally:
            self._capturing = False
        own = self.client_id
        start = before.get(own, 0)
        if self.delivery == "causal":
            self._advance(own, start + clocks)
            size = len(self._captured) + _state_vector_size(before)  # the causal context travels too
        else:
            self._refresh_sv()
            size = len(self._captured)
        return YUpdate(self._captured, before, own, start, self.sv.get(own, 0)), size

    def _refresh_sv(self) -> None:
        self.sv = decode_state_vector(self.doc.get_state())

    def _advance(self, client: int, clock: int) -> None:
        # Causal delivery never leaves a gap, so an integrated update moves its client's clock to its
        # end: cheaper than decoding the document's state vector after every edit.
        if self.sv.get(client, 0) < clock:
            sv = dict(self.sv)
            sv[client] = clock
            self.sv = sv

    # local edits
    def length(self) -> int:
        return len(self.text)

    def insert(self, pos: int, char: str) -> tuple[YUpdate, int, Identity]:
        if len(char) != 1 or not char.isascii():
            raise ValueError(f"type one ASCII character at a time, got {char!r}")
        upd, size = self._local(lambda: self.text.insert(pos, char), 1)
        return upd, size, (self.client_id, upd.start)

    def delete(self, pos: int) -> tuple[YUpdate, int, Identity]:
        def remove() -> None:
            del self.text[pos]

        upd, size = self._local(remove, 0)
        client, clock, _ = decode_update(upd.update).deleted[0]
        return upd, size, (client, clock)

    def set_setting(self, key: str, value: str) -> tuple[YUpdate, int, None]:
        def write() -> None:
            self.settings_map[key] = value

        upd, size = self._local(write, 1)
        return upd, size, None

    def append_comment(self, comment: str) -> tuple[YUpdate, int, None]:
        upd, size = self._local(lambda: self.comments_array.append(comment), 1)
        return upd, size, None

    # replication
    def receive(self, payload: YUpdate | bytes) -> bool:
        """Apply an incremental update or an anti-entropy answer; True if the document may have changed."""
        if isinstance(payload, bytes):  # an answer: computed against our state vector, safe now
            self.doc.apply_update(payload)
            self._refresh_sv()
        elif self.delivery == "as-received":
            self.doc.apply_update(payload.update)
            self._refresh_sv()
        else:
            sv = self.sv
            if payload.end > payload.start and sv.get(payload.client, 0) >= payload.end:
                self.duplicates += 1
                return False
            if not _covers(sv, payload.deps):
                self.pending.append(payload)
                return False
            self._apply(payload)
        if self.pending:
            self._flush()
        return True

    def _apply(self, upd: YUpdate) -> None:
        self.doc.apply_update(upd.update)
        self._advance(upd.client, upd.end)

    def _flush(self) -> None:
        progress = True
        while progress and self.pending:
            progress = False
            waiting = []
            for upd in self.pending:
                sv = self.sv
                if upd.end > upd.start and sv.get(upd.client, 0) >= upd.end:
                    self.duplicates += 1  # an anti-entropy answer brought it meanwhile
                elif _covers(sv, upd.deps):
                    self._apply(upd)
                    progress = True
                else:
                    waiting.append(upd)
            self.pending = waiting

    def digest(self) -> tuple[bytes, int]:
        """Anti-entropy request: our state vector (Yjs sync step 1)."""
        sv = self.doc.get_state()
        return sv, len(sv)

    def answer(self, digest: bytes) -> tuple[bytes, int] | None:
        """Everything we have that the asker's state vector lacks, plus our whole delete set (sync step 2)."""
        update = self.doc.get_update(digest)
        return update, len(update)

    # reading
    def text_value(self) -> str:
        return str(self.text)

    def settings(self) -> dict[str, Any]:
        return json.loads(str(self.settings_map))

    def comments(self) -> list[Any]:
        return json.loads(str(self.comments_array))  # one call into yrs; to_py() pays a transaction per item

    def visible_ids(self) -> set[Identity]:
        """Identities ``(client, clock)`` of the characters in the text, read from the Yjs encoding."""
        return decode_update(self.doc.get_update()).visible_string_ids()

    def key(self) -> tuple:
        """The content, comparable between replicas (settings sorted: a map has no order)."""
        with self.doc.transaction():  # one transaction for the three reads, not one each
            return self.text_value(), tuple(sorted(self.settings().items())), tuple(self.comments())

    def sizes(self) -> tuple[int, int, int]:
        """Characters, settings and comments: equal contents have equal sizes (three calls into
        yrs in one transaction, where reading the text itself costs its length)."""
        with self.doc.transaction():
            return len(self.text), len(self.settings_map), len(self.comments_array)


def _state_vector_size(sv: StateVector) -> int:
    return uint_size(len(sv)) + sum(uint_size(c) + uint_size(k) for c, k in sv.items())


def _covers(sv: StateVector, deps: StateVector) -> bool:
    for client, clock in deps.items():
        if sv.get(client, 0) < clock:
            return False
    return True


# --- naive positional operations ---------------------------------------------------------------
class NaiveOp:
    """A positional operation, named by its origin and sequence number (so duplicates are skipped)."""

    __slots__ = ("kind", "origin", "seq", "pos", "value", "key")

    def __init__(self, kind: str, origin: int, seq: int, pos: int = 0, value: str = "", key: str = "") -> None:
        self.kind = kind
        """``insert``, ``delete``, ``set`` or ``append``."""
        self.origin = origin
        self.seq = seq
        self.pos = pos
        self.value = value
        self.key = key

    @property
    def size(self) -> int:
        """Bytes on the wire: kind, origin, sequence number, then the operation's arguments."""
        head = 1 + uint_size(self.origin) + uint_size(self.seq)
        if self.kind == "insert":
            return head + uint_size(self.pos) + len(self.value.encode("utf-8"))
        if self.kind == "delete":
            return head + uint_size(self.pos)
        if self.kind == "set":
            return head + _text_size(self.key) + _text_size(self.value)
        return head + _text_size(self.value)

    def __repr__(self) -> str:
        args = {"insert": f"{self.pos}, {self.value!r}", "delete": f"{self.pos}",
                "set": f"{self.key!r}, {self.value!r}", "append": f"{self.value!r}"}[self.kind]
        return f"{self.kind}({args})#{self.origin}.{self.seq}"


class _PlainDocument:
    """What the two baselines share: the text as parallel lists of characters and identities."""

    chars: list[str]
    ids: list[Identity]
    _settings: dict[str, str]
    _comments: list[str]

    def text_value(self) -> str:
        return "".join(self.chars)

    def settings(self) -> dict[str, str]:
        return dict(self._settings)

    def comments(self) -> list[str]:
        return list(self._comments)

    def visible_ids(self) -> set[Identity]:
        return set(self.ids)

    def key(self) -> tuple:
        return self.text_value(), tuple(sorted(self._settings.items())), tuple(self._comments)

    def sizes(self) -> tuple[int, int, int]:
        return len(self.chars), len(self._settings), len(self._comments)


class NaiveDocument(_PlainDocument):
    """Applies positional operations in the order they arrive: the textbook way to diverge.

    Duplicates are skipped (by origin and sequence number) and lost operations are recovered by
    anti-entropy, so divergence comes from the positions alone, not from sloppy delivery.
    A position past the end inserts at the end; a deletion past the end does nothing.
    """

    kind = "naive"
    pending: tuple = ()  # never holds an operation back: that is the point

    def __init__(self, client_id: int) -> None:
        self.client_id = client_id
        self.chars: list[str] = []
        self.ids: list[Identity] = []
        self._settings: dict[str, str] = {}
        self._comments: list[str] = []
        self.seq = 0
        self.log: dict[int, dict[int, NaiveOp]] = {}
        """Every operation seen, by origin then sequence number (what anti-entropy can resend)."""
        self.prefix: dict[int, int] = {}
        """Per origin, the largest n such that operations 1..n have all been seen."""
        self.beyond: dict[int, set[int]] = {}
        """Per origin, sequence numbers seen past a gap (the prefix stops at the first lost operation)."""
        self.top: dict[int, int] = {}
        """Per origin, the largest sequence number seen."""
        self.duplicates = 0

    def _local(self, op: NaiveOp) -> tuple[NaiveOp, int]:
        self._integrate(op)
        return op, op.size

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def length(self) -> int:
        return len(self.chars)

    def insert(self, pos: int, char: str) -> tuple[NaiveOp, int, Identity]:
        op = NaiveOp("insert", self.client_id, self._next(), pos, char)
        return (*self._local(op), (op.origin, op.seq))

    def delete(self, pos: int) -> tuple[NaiveOp, int, Identity]:
        victim = self.ids[pos]
        return (*self._local(NaiveOp("delete", self.client_id, self._next(), pos)), victim)

    def set_setting(self, key: str, value: str) -> tuple[NaiveOp, int, None]:
        return (*self._local(NaiveOp("set", self.client_id, self._next(), value=value, key=key)), None)

    def append_comment(self, comment: str) -> tuple[NaiveOp, int, None]:
        return (*self._local(NaiveOp("append", self.client_id, self._next(), value=comment)), None)

    def receive(self, payload: NaiveOp | tuple[NaiveOp, ...]) -> bool:
        ops = payload if isinstance(payload, tuple) else (payload,)
        changed = False
        for op in ops:
            if op.seq in self.log.get(op.origin, ()):
                self.duplicates += 1
            else:
                self._integrate(op)
                changed = True
        return changed

    def _integrate(self, op: NaiveOp) -> None:
        origin, seq = op.origin, op.seq
        seen = self.log.setdefault(origin, {})
        seen[seq] = op
        beyond = self.beyond.setdefault(origin, set())
        n = self.prefix.get(origin, 0)
        if seq == n + 1:  # kept incrementally: anti-entropy must not rescan the whole log every round
            n += 1
            while n + 1 in beyond:
                n += 1
                beyond.discard(n)
            self.prefix[origin] = n
        else:
            beyond.add(seq)
        if seq > self.top.get(origin, 0):
            self.top[origin] = seq
        if op.kind == "insert":
            pos = min(op.pos, len(self.chars))
            self.chars.insert(pos, op.value)
            self.ids.insert(pos, (op.origin, op.seq))
        elif op.kind == "delete":
            if op.pos < len(self.chars):
                del self.chars[op.pos]
                del self.ids[op.pos]
        elif op.kind == "set":
            self._settings[op.key] = op.value
        else:
            self._comments.append(op.value)

    def digest(self) -> tuple[dict[int, tuple[int, tuple[int, ...]]], int]:
        """Per origin: the contiguous prefix seen and the sequence numbers seen beyond it."""
        summary, size = {}, uint_size(len(self.log))
        for origin in self.log:
            n = self.prefix.get(origin, 0)
            beyond = tuple(sorted(self.beyond[origin]))
            summary[origin] = (n, beyond)
            size += uint_size(origin) + uint_size(n) + uint_size(len(beyond)) + sum(uint_size(s) for s in beyond)
        return summary, size

    def answer(self, digest: dict[int, tuple[int, tuple[int, ...]]]) -> tuple[tuple[NaiveOp, ...], int] | None:
        missing = []
        for origin, seen in self.log.items():
            n, beyond = digest.get(origin, (0, ()))
            skip = set(beyond)
            missing.extend(seen[s] for s in range(n + 1, self.top[origin] + 1) if s in seen and s not in skip)
        if not missing:
            return None
        return tuple(missing), sum(op.size for op in missing)



# --- last writer wins on the whole document ----------------------------------------------------
class LWWState:
    """A whole document stamped with its version ``(time, counter, writer)``."""

    __slots__ = ("version", "text", "ids", "settings", "comments", "size")

    def __init__(self, version: tuple[float, int, int], text: str, ids: tuple[Identity, ...],
                 settings: tuple[tuple[str, str], ...], comments: tuple[str, ...]) -> None:
        self.version = version
        self.text = text
        self.ids = ids
        self.settings = settings
        self.comments = comments
        self.size = (8 + uint_size(version[1]) + uint_size(version[2]) + _text_size(text)
                     + uint_size(len(settings)) + sum(_text_size(k) + _text_size(v) for k, v in settings)
                     + uint_size(len(comments)) + sum(_text_size(c) for c in comments))
        """Bytes on the wire: version, text, settings and comments (not the instrumentation ids)."""


class LWWDocument(_PlainDocument):
    """The whole document is one last-writer-wins register: the newest version replaces the rest.

    A local edit stamps the document with ``(now, 0, writer)``, or, if the current version is
    not older than now, with ``(its time, its counter + 1, writer)``: a replica's edit always
    beats the version it was made on (a hybrid logical clock), and the writer id breaks ties.
    """

    kind = "lww"
    pending: tuple = ()  # a newer whole document never waits for an older one

    def __init__(self, client_id: int, clock: Callable[[], float]) -> None:
        self.client_id = client_id
        self.clock = clock
        self.chars: list[str] = []
        self.ids: list[Identity] = []
        self._settings: dict[str, str] = {}
        self._comments: list[str] = []
        self.version: tuple[float, int, int] = (float("-inf"), 0, 0)
        self.seq = 0
        self.duplicates = 0

    def _local(self) -> tuple[LWWState, int]:
        now = self.clock()
        t, counter, _ = self.version
        self.version = (now, 0, self.client_id) if now > t else (t, counter + 1, self.client_id)
        state = LWWState(self.version, "".join(self.chars), tuple(self.ids), tuple(sorted(self._settings.items())),
                         tuple(self._comments))
        return state, state.size

    def length(self) -> int:
        return len(self.chars)

    def insert(self, pos: int, char: str) -> tuple[LWWState, int, Identity]:
        self.seq += 1
        identity = (self.client_id, self.seq)
        self.chars.insert(pos, char)
        self.ids.insert(pos, identity)
        return (*self._local(), identity)

    def delete(self, pos: int) -> tuple[LWWState, int, Identity]:
        victim = self.ids[pos]
        del self.chars[pos]
        del self.ids[pos]
        return (*self._local(), victim)

    def set_setting(self, key: str, value: str) -> tuple[LWWState, int, None]:
        self._settings[key] = value
        return (*self._local(), None)

    def append_comment(self, comment: str) -> tuple[LWWState, int, None]:
        self._comments.append(comment)
        return (*self._local(), None)

    def receive(self, state: LWWState) -> bool:
        if state.version <= self.version:
            self.duplicates += state.version == self.version
            return False
        self.version = state.version
        self.chars = list(state.text)
        self.ids = list(state.ids)
        self._settings = dict(state.settings)
        self._comments = list(state.comments)
        return True

    def digest(self) -> tuple[tuple[float, int, int], int]:
        return self.version, 8 + uint_size(self.version[1]) + uint_size(self.version[2])

    def answer(self, version: tuple[float, int, int]) -> tuple[LWWState, int] | None:
        if self.version <= version:
            return None
        state = LWWState(self.version, "".join(self.chars), tuple(self.ids), tuple(sorted(self._settings.items())),
                         tuple(self._comments))
        return state, state.size

