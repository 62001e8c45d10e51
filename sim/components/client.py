"""A client that holds one persistent connection to a server through the simulated network.

It connects (handshake, answered by accept or refuse, or by nothing within
``connect_timeout``), sends and receives data frames, and notices a disconnection either
*cleanly* (the server's close frame, with its code) or by *timeout* (no frame at all from the
server for ``heartbeat_timeout`` seconds while it pings every ``heartbeat_interval``): the
latter is what a crash or a network cut looks like from the client, reported as 1006.

Heartbeats cost events, so they are off unless asked for. Reconnection policies (backoff)
belong to the resilience components that drive this primitive.
"""

from __future__ import annotations

from typing import Any, Callable

import simpy

from sim.core.context import Context
from sim.core.errors import ParameterError
from sim.core.network import Message, Network
from sim.core.timer import Deadlines, Timer, cancel, deadlines
from sim.components import frames

DISCONNECTED, CONNECTING, CONNECTED = "disconnected", "connecting", "connected"
_NAN = float("nan")


def _connect_timed_out(client: "Client") -> None:
    client._connect_timed_out()


class Client:
    """A client node called ``name`` that talks to the server node ``server``."""

    __slots__ = (
        "ctx", "env", "name", "network", "server", "connect_timeout", "heartbeat_interval", "heartbeat_timeout",
        "on_message", "on_disconnect", "on_connect", "state", "connected_at", "last_heard", "close_code", "_pending",
        "connect_deadline", "_deadlines", "_heartbeat_timer", "received", "handshake_data",
    )

    def __init__(self, ctx: Context, name: str, network: Network, server: str, *, connect_timeout: float = 10.0,
                 heartbeat_interval: float | None = None, heartbeat_timeout: float | None = None,
                 on_message: Callable[["Client", Any], None] | None = None,
                 on_disconnect: Callable[["Client", str, int], None] | None = None,
                 on_connect: Callable[["Client"], None] | None = None) -> None:
        if not connect_timeout > 0:
            raise ParameterError("connect_timeout", f"must be a number of seconds > 0, got {connect_timeout!r}")
        if heartbeat_interval is not None and not heartbeat_interval > 0:
            raise ParameterError("heartbeat_interval", f"must be seconds > 0 or None, got {heartbeat_interval!r}")
        if heartbeat_interval is not None:
            heartbeat_timeout = heartbeat_timeout if heartbeat_timeout is not None else 2 * heartbeat_interval
            if not heartbeat_timeout >= heartbeat_interval:
                raise ParameterError("heartbeat_timeout", f"must be >= heartbeat_interval ({heartbeat_interval} s)")
        self.ctx = ctx
        self.env: simpy.Environment = ctx.env
        self.name = name
        self.network = network
        self.server = server
        """Network name of the server this client talks to (may change between connections)."""
        self.connect_timeout = connect_timeout
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.on_message = on_message
        """Called as ``on_message(client, payload)`` for each data frame."""
        self.on_disconnect = on_disconnect
        """Called as ``on_disconnect(client, how, code)`` with ``how`` = ``clean`` (close frame),
        ``reset`` (TCP reset: the server process died) or ``timeout`` (heartbeats went unanswered)."""
        self.on_connect = on_connect
        """Called as ``on_connect(client)`` each time a handshake is accepted (e.g. to replay an outbox)."""
        self.state = DISCONNECTED
        self.connected_at = float("nan")
        self.last_heard = float("nan")
        self.close_code = 0
        """Close code of the last disconnection (1006 when it was noticed by timeout)."""
        self.received = 0
        """Data frames received."""
        self.handshake_data = None
        """What the opening handshake carries besides the upgrade itself (e.g. the client's
        address and a bearer token, for a server's gate); None by default."""
        self._pending: simpy.Event | None = None
        self.connect_deadline = _NAN
        """When the handshake under way times out (nan: none under way)."""
        self._deadlines: Deadlines | None = None
        self._heartbeat_timer: Timer | None = None
        network.attach(name, self._on_frame)

    # --- connecting ---------------------------------------------------------------------
    def connect(self) -> simpy.Event:
        """Start a handshake; the event fires with ``accepted``, ``refused``, ``timeout`` or ``closed``
        (abandoned by :meth:`close`)."""
        if self.state != DISCONNECTED:  # before touching _pending: a waiting handshake keeps its event
            raise RuntimeError(f"{self.name} is {self.state}; connect() needs a disconnected client")
        pending = self._pending = self.env.event()
        self._handshake()
        return pending

    def _handshake(self) -> None:
        if self.state != DISCONNECTED:
            raise RuntimeError(f"{self.name} is {self.state}; connect() needs a disconnected client")
        self.state = CONNECTING
        self.network.send(self.name, self.server, (frames.CONNECT, self.handshake_data), frames.HANDSHAKE_BYTES)
        # nearly every handshake is answered long before its timeout: one shared queue of
        # deadlines instead of a simpy event each (see Deadlines)
        queue = self._deadlines
        if queue is None or queue.delay != self.connect_timeout:
            queue = self._deadlines = deadlines(self.env, self.connect_timeout, _connect_timed_out, "connect_deadline")
        queue.add(self)

    def _connect_timed_out(self) -> None:
        self._settle("timeout")

    def _settle(self, outcome: str) -> None:
        self.connect_deadline = _NAN  # the handshake is over, whichever way
        if outcome == "accepted":
            self.state = CONNECTED
            self.connected_at = self.last_heard = self.env.now
            if self.heartbeat_interval is not None:
                self._arm_heartbeat()
            if self.on_connect is not None:
                self.on_connect(self)
        else:
            self.state = DISCONNECTED
        self._outcome(outcome)

    def _outcome(self, outcome: str) -> None:
        """A handshake ended; subclasses that drive their own reconnection override this."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.succeed(outcome)

    def adopt_connection(self) -> None:
        """Start out connected (the server side must :meth:`Server.adopt` the same connection):
        for scenarios that begin in steady state rather than with everyone's handshake."""
        self.state = CONNECTED
        self.connected_at = self.last_heard = self.env.now
        if self.heartbeat_interval is not None:
            self._arm_heartbeat()

    # --- receiving ----------------------------------------------------------------------
    def _on_frame(self, msg: Message) -> None:
        kind, data = msg.payload
        if kind == frames.ACCEPT and (msg.src != self.server or self.state != CONNECTING):
            # an accept for a handshake this client gave up on: close it, or the server would
            # hold a connection nobody uses
            self.network.send(self.name, msg.src, (frames.CLOSE, frames.NORMAL_CLOSURE), frames.FRAME_HEADER_BYTES)
            return
        if msg.src != self.server:
            return  # a late frame from a server this client has left
        if self.state == CONNECTING:
            if kind == frames.ACCEPT:
                self._settle("accepted")
            elif kind == frames.REFUSE:
                self._settle("refused")
            return
        if self.state != CONNECTED:
            return
        self.last_heard = self.env.now
        if kind == frames.DATA:
            self.received += 1
            if self.on_message is not None:
                self.on_message(self, data)
        elif kind == frames.CLOSE:
            # RFC 6455 5.5.1: answer a close frame with one, so the server can release the connection
            self.network.send(self.name, msg.src, (frames.CLOSE, data), frames.FRAME_HEADER_BYTES)
            self._lost("clean", data)
        elif kind == frames.RESET:
            self._lost("reset", frames.ABNORMAL_CLOSURE)

    # --- heartbeats ---------------------------------------------------------------------
    def _arm_heartbeat(self) -> None:
        cancel(self._heartbeat_timer)  # one heartbeat loop per connection
        self._heartbeat_timer = Timer(self.env, self.heartbeat_interval, self._heartbeat)

    def _heartbeat(self) -> None:
        self._heartbeat_timer = None
        if self.env.now - self.last_heard >= self.heartbeat_timeout:
            self._lost("timeout", frames.ABNORMAL_CLOSURE)
            return
        self.network.send(self.name, self.server, (frames.PING, None), frames.FRAME_HEADER_BYTES)
        self._arm_heartbeat()

    # --- sending and closing ------------------------------------------------------------
    def send(self, payload: Any, size_bytes: int = 0) -> bool:
        """Send a data frame; False (nothing sent) when not connected."""
        if self.state != CONNECTED:
            return False
        self.network.send(self.name, self.server, (frames.DATA, payload), frames.FRAME_HEADER_BYTES + size_bytes)
        return True

    def close(self, code: int = frames.NORMAL_CLOSURE) -> None:
        """Close the connection cleanly from this side."""
        if self.state == CONNECTED:
            self.network.send(self.name, self.server, (frames.CLOSE, code), frames.FRAME_HEADER_BYTES)
        elif self.state == CONNECTING:
            self._settle("closed")  # whoever waits on connect() hears that it was abandoned
        cancel(self._heartbeat_timer)
        self._heartbeat_timer = None
        self.state = DISCONNECTED
        self.close_code = code

    def _lost(self, how: str, code: int) -> None:
        cancel(self._heartbeat_timer)
        self._heartbeat_timer = None
        self.state = DISCONNECTED
        self.close_code = code
        if self.on_disconnect is not None:
            self.on_disconnect(self, how, code)
