"""Just enough of the Yjs binary format (update v1, state vectors) to count characters by identity.

pycrdt gives the text of a document but not *which* typed character each position holds. Every
character Yjs stores has an identity, ``(client, clock)``, and a v1 update lists them all:
per client, its structs with their clock ranges and content, then a *delete set* of
``(client, clock, length)`` ranges. Reading that tells exactly which typed characters a
replica still shows, which is how the scenario counts lost characters without trusting the
CRDT it is testing.

Only what the simulator's documents contain is decoded in full (strings, ``Any`` values,
deleted content, GC and skip structs, root and nested parents); anything else raises
``ValueError`` rather than being guessed. Format: Yjs ``src/utils/encoding.js`` and lib0's
``encoding.js`` (``writeAny``).
"""

from __future__ import annotations

__all__ = ["StateVector", "decode_state_vector", "encode_state_vector", "decode_update", "DecodedUpdate"]

StateVector = dict[int, int]
"""``client -> clock``: how many clock units of each client a document has integrated."""

# content references (the low five bits of an item's info byte)
_GC, _DELETED, _JSON, _BINARY, _STRING, _EMBED, _FORMAT, _TYPE, _ANY, _DOC, _SKIP = range(11)
_XML_ELEMENT, _XML_HOOK = 3, 5  # type refs that carry a name


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def uint(self) -> int:
        data, pos, result, shift = self.data, self.pos, 0, 0
        while True:
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                self.pos = pos
                return result
            shift += 7

    def skip(self, n: int) -> None:
        self.pos += n
        if self.pos > len(self.data):
            raise ValueError("truncated Yjs update")

    def string(self) -> str:
        n = self.uint()
        start = self.pos
        self.skip(n)
        return self.data[start:self.pos].decode("utf-8")

    def skip_string(self) -> None:
        self.skip(self.uint())

    def skip_any(self) -> None:
        tag = self.data[self.pos]
        self.pos += 1
        if tag in (127, 126, 121, 120):  # undefined, null, false, true
            return
        if tag == 125:  # signed varint: 6 value bits in the first byte, then 7 per byte
            while self.data[self.pos] & 0x80:
                self.pos += 1
            self.pos += 1
        elif tag == 124:
            self.skip(4)
        elif tag in (123, 122):
            self.skip(8)
        elif tag in (119, 116):  # string, bytes
            self.skip_string()
        elif tag == 118:  # object
            for _ in range(self.uint()):
                self.skip_string()
                self.skip_any()
        elif tag == 117:  # array
            for _ in range(self.uint()):
                self.skip_any()
        else:
            raise ValueError(f"unknown lib0 Any tag {tag}")


def decode_state_vector(data: bytes) -> StateVector:
    """A state vector (``Doc.get_state()``) as ``{client: clock}``."""
    # inlined varint loop: this runs after every edit and every applied update
    numbers, value, shift = [], 0, 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            numbers.append(value)
            value = shift = 0
        else:
            shift += 7
    if not numbers or len(numbers) != 1 + 2 * numbers[0]:
        raise ValueError("not a Yjs state vector")
    return dict(zip(numbers[1::2], numbers[2::2]))


def _uint_bytes(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_state_vector(sv: StateVector) -> bytes:
    """The inverse of :func:`decode_state_vector` (clients in increasing order)."""
    return _uint_bytes(len(sv)) + b"".join(_uint_bytes(c) + _uint_bytes(k) for c, k in sorted(sv.items()))


class DecodedUpdate:
    """What :func:`decode_update` found: string items and the delete set, as clock ranges."""

    __slots__ = ("strings", "deleted", "clients")

    def __init__(self) -> None:
        self.strings: list[tuple[int, int, int]] = []
        """``(client, clock, length)`` of every item whose content is a string (text characters)."""
        self.deleted: list[tuple[int, int, int]] = []
        """``(client, clock, length)`` ranges of the delete set."""
        self.clients: dict[int, tuple[int, int]] = {}
        """``client -> (first clock, end clock)`` of the structs the update carries."""

    def deleted_ids(self) -> set[tuple[int, int]]:
        return {(c, k) for c, start, n in self.deleted for k in range(start, start + n)}

    def string_ids(self) -> set[tuple[int, int]]:
        return {(c, k) for c, start, n in self.strings for k in range(start, start + n)}

    def visible_string_ids(self) -> set[tuple[int, int]]:
        """Identities of the characters still in the document: string items minus the delete set."""
        return self.string_ids() - self.deleted_ids()


def decode_update(data: bytes) -> DecodedUpdate:
    """Decode a v1 update (``Doc.get_update()`` or an observed transaction's update)."""
    try:
        return _decode_update(data)
    except IndexError:
        raise ValueError("truncated Yjs update") from None


def _decode_update(data: bytes) -> DecodedUpdate:
    r = _Reader(data)
    out = DecodedUpdate()
    for _ in range(r.uint()):
        n_structs, client, clock = r.uint(), r.uint(), r.uint()
        first = clock
        for _ in range(n_structs):
            info = r.data[r.pos]
            r.pos += 1
            ref = info & 0x1F
            if ref in (_GC, _SKIP):
                clock += r.uint()
                continue
            if info & 0x80:  # left origin
                r.uint(), r.uint()
            if info & 0x40:  # right origin
                r.uint(), r.uint()
            if not info & 0xC0:  # no origin: the parent is written out
                if r.uint() == 1:
                    r.skip_string()  # root type name
                else:
                    r.uint(), r.uint()  # parent item id
                if info & 0x20:
                    r.skip_string()  # map key
            if ref == _STRING:
                text = r.string()
                length = len(text.encode("utf-16-le")) // 2  # Yjs counts clocks in UTF-16 units
                out.strings.append((client, clock, length))
            elif ref == _DELETED:
                length = r.uint()
            elif ref == _ANY:
                length = r.uint()
                for _ in range(length):
                    r.skip_any()
            elif ref == _JSON:
                length = r.uint()
                for _ in range(length):
                    r.skip_string()
            elif ref == _BINARY:
                r.skip_string()
                length = 1
            elif ref == _EMBED:
                r.skip_string()
                length = 1
            elif ref == _FORMAT:
                r.skip_string()
                r.skip_string()
                length = 1
            elif ref == _TYPE:
                if r.uint() in (_XML_ELEMENT, _XML_HOOK):
                    r.skip_string()
                length = 1
            elif ref == _DOC:
                r.skip_string()
                r.skip_any()
                length = 1
            else:
                raise ValueError(f"unsupported Yjs content ref {ref}")
            clock += length
        out.clients[client] = (first, clock)
    for _ in range(r.uint()):
        client = r.uint()
        for _ in range(r.uint()):
            out.deleted.append((client, r.uint(), r.uint()))
    if r.pos != len(data):
        raise ValueError(f"{len(data) - r.pos} bytes left after decoding a Yjs update")
    return out

