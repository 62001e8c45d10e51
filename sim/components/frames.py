"""What clients and servers say to each other over the simulated network.

A frame is a small tuple ``(kind, data)``; close codes are those of RFC 6455 §7.4.1 and the
IANA WebSocket close-code registry.
"""

from __future__ import annotations

CONNECT = "connect"   # client -> server: opening handshake (HTTP Upgrade)
ACCEPT = "accept"     # server -> client: 101 Switching Protocols
REFUSE = "refuse"     # server -> client: handshake refused (e.g. 503, rate limited)
DATA = "data"         # either way: an application message
PING = "ping"         # client -> server: heartbeat
PONG = "pong"         # server -> client: heartbeat answer
CLOSE = "close"       # either way: close frame with a code
RESET = "reset"       # server host -> client: TCP RST sent by the kernel when the server process dies

NORMAL_CLOSURE = 1000
"""The purpose of the connection was fulfilled."""
GOING_AWAY = 1001
"""The server is going down or the browser left the page."""
ABNORMAL_CLOSURE = 1006
"""Never sent on the wire: the connection dropped without a close frame (seen after a timeout)."""
INTERNAL_ERROR = 1011
"""The server hit an unexpected condition."""
SERVICE_RESTART = 1012
"""The server is restarting; clients should reconnect (with a randomized delay)."""
TRY_AGAIN_LATER = 1013
"""The server is overloaded; clients should come back later."""

#: What each close code means (RFC 6455 §7.4.1 and the IANA registry, reference/real-systems.md §7).
CLOSE_CODES = {
    NORMAL_CLOSURE: "normal closure: the purpose of the connection was fulfilled",
    GOING_AWAY: "going away: server going down or browser leaving the page",
    ABNORMAL_CLOSURE: "abnormal closure: never sent, seen locally when the connection died without a close frame",
    INTERNAL_ERROR: "internal error: the server hit an unexpected condition",
    SERVICE_RESTART: "service restart: reconnect, with a randomised delay",
    TRY_AGAIN_LATER: "try again later: the server is overloaded",
}

#: Handshake and frame sizes used for byte accounting, in bytes (order of magnitude of a
#: browser's Upgrade request / 101 response and of a small frame header).
HANDSHAKE_BYTES = 500
FRAME_HEADER_BYTES = 6
