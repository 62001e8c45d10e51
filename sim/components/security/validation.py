"""Server-side validation of client events: size, schema, and the sender bound to the connection.

The schema is checked by ``jsonschema`` (Draft 2020-12), the library most Python servers use;
``max_frame_bytes`` is checked before parsing, as a WebSocket server's maximum message size
(e.g. ``websockets``' ``max_size``, 1 MiB by default) is. Binding the sender means the server
ignores who the event *says* it is from and compares it with who authenticated the connection.
"""

from __future__ import annotations

import json

from jsonschema import Draft202012Validator

OK, OVERSIZED, MALFORMED, SPOOFED = "ok", "oversized", "malformed", "spoofed"

EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "maxLength": 64},
        "sender": {"type": "string", "maxLength": 64},
        "channel": {"type": "string", "pattern": "^room-[0-9]+$"},
        "data": {"type": "string", "maxLength": 1000},
    },
    "required": ["id", "sender", "channel", "data"],
    "additionalProperties": False,
}
"""A chat event: who, where, what (at most 1000 characters)."""

_VALIDATOR = Draft202012Validator(EVENT_SCHEMA)


def parse(body: bytes) -> dict | None:
    """The event as a dict, or None when it is not a JSON object."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def validate(body: bytes, max_frame_bytes: int) -> tuple[str, dict | None]:
    """``(OK, event)`` or ``(OVERSIZED | MALFORMED, None)``."""
    if len(body) > max_frame_bytes:
        return OVERSIZED, None
    event = parse(body)
    if event is None or not _VALIDATOR.is_valid(event):
        return MALFORMED, None
    return OK, event


def bound_sender(event: dict, authenticated: str) -> str:
    """OK if the event's sender is the connection's authenticated identity, else SPOOFED."""
    return OK if event.get("sender") == authenticated else SPOOFED
