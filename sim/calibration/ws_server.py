"""A real WebSocket server (the ``websockets`` library) on 127.0.0.1, run as its own process.

Started by :mod:`sim.calibration.reconnect` as ``python -m sim.calibration.ws_server`` so that
the server has its own event loop (and, on a multi-core machine, its own core), like the one
server of the model. It is driven by JSON lines on stdin and reports JSON lines on stdout,
every time a :func:`time.monotonic` reading (the same clock in every process on Linux):

* ``{"cmd": "admission", "rate": R, "burst": B}`` turns on the model's admission rule (a token
  bucket of ``B`` handshakes refilled at ``R`` per second, the excess answered with HTTP 503),
  as in :class:`sim.components.server.Server`; before it, every handshake is accepted (warm-up);
* ``{"cmd": "crash"}`` is an abrupt stop: the listening socket is closed (new connections get
  ECONNREFUSED from the kernel) and every open connection is reset (``SO_LINGER`` 0, so the
  kernel sends RST, the clients see 1006 at once), the model's ``crash="process"``;
* ``{"cmd": "restart"}`` listens again on the same port with a full bucket;
* ``{"cmd": "report"}`` prints every handshake decision ``[t, accepted]``; ``{"cmd": "quit"}``.

The process exits by itself after ``--time-limit`` seconds, or when its stdin closes (its
parent died), so it can never outlive the calibration that started it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import struct
import sys
import time
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection, serve

HOST = "127.0.0.1"


def raise_open_file_limit(wanted: int) -> int:
    """Raise this process's soft limit on open files towards ``wanted`` (bounded by the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


class TokenBucket:
    """The model's admission rule (the token bucket of ``Server._complete_handshake``), on the monotonic clock."""

    def __init__(self, rate: float | None, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = float(burst), time.monotonic()

    def refill(self) -> None:
        self.tokens, self.at = float(self.burst), time.monotonic()

    def admit(self, now: float) -> bool:
        if self.rate is None:
            return True
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class StormServer:
    """One WebSocket server that can be crashed and restarted on the same port."""

    def __init__(self, backlog: int) -> None:
        self.backlog = backlog
        self.port = 0
        self.bucket = TokenBucket(None, 1)
        self.handshakes: list[tuple[float, bool]] = []
        self.live: set[ServerConnection] = set()
        self.server = None
        server = self

        class Tracked(ServerConnection):
            """A connection the server can reset, even in the middle of its handshake."""

            def connection_made(self, transport):  # noqa: D401 (asyncio protocol callback)
                super().connection_made(transport)
                server.live.add(self)

            def connection_lost(self, exc):
                server.live.discard(self)
                super().connection_lost(exc)

        self.connection_class = Tracked

    def process_request(self, connection: ServerConnection, request):
        now = time.monotonic()
        admitted = self.bucket.admit(now)
        self.handshakes.append((now, admitted))
        if not admitted:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "admission limit\n")
        return None

    @staticmethod
    async def handler(connection: ServerConnection) -> None:
        await connection.wait_closed()

    async def listen(self) -> None:
        self.server = await serve(self.handler, HOST, self.port, process_request=self.process_request,
                                  compression=None, ping_interval=None, close_timeout=1,
                                  create_connection=self.connection_class, backlog=self.backlog)
        self.port = self.server.sockets[0].getsockname()[1]

    def crash(self) -> int:
        assert self.server is not None
        self.server.server.close()  # the listening socket only: no close frames, no 503s
        reset = 0
        linger = struct.pack("ii", 1, 0)
        for connection in list(self.live):
            sock = connection.transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                except OSError:
                    pass
            connection.transport.abort()
            reset += 1
        self.server = None
        return reset


def emit(**fields) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def main(backlog: int, time_limit: float, open_files: int) -> None:
    raise_open_file_limit(open_files)
    storm = StormServer(backlog)
    await storm.listen()
    emit(event="listening", port=storm.port, t=time.monotonic())
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    deadline = loop.time() + time_limit
    while True:
        try:
            line = await asyncio.wait_for(reader.readline(), max(0.0, deadline - loop.time()))
        except TimeoutError:
            emit(event="time_limit", t=time.monotonic())
            break
        if not line:  # the parent is gone
            break
        command = json.loads(line)
        cmd = command["cmd"]
        if cmd == "admission":
            storm.bucket = TokenBucket(float(command["rate"]), int(command["burst"]))
            emit(event="admission", t=time.monotonic())
        elif cmd == "crash":
            reset = storm.crash()
            emit(event="crashed", t=time.monotonic(), reset=reset)
        elif cmd == "restart":
            await storm.listen()
            storm.bucket.refill()
            emit(event="restarted", t=time.monotonic())
        elif cmd == "report":
            emit(event="report", handshakes=storm.handshakes, open=len(storm.live))
        elif cmd == "quit":
            break
    if storm.server is not None:
        storm.crash()
    emit(event="stopped", t=time.monotonic())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=100, help="listen backlog (asyncio's default: 100)")
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds before the server stops by itself")
    parser.add_argument("--open-files", type=int, default=4096, help="open-file soft limit to ask for")
    args = parser.parse_args()
    asyncio.run(main(args.backlog, args.time_limit, args.open_files))
