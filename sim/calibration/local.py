"""Real servers on loopback, for calibrations and the tests that need one (redis-server,
Prometheus, NGINX, a Dask scheduler): one way to find free ports and one way to stop a child.

A free port is found by binding port 0 and reading what the kernel gave; another process can
take it between the probe and the server's own bind, so a caller that can tell (the server
exits at once) tries again with another port.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess

HOST = "127.0.0.1"


def free_ports(n: int, host: str = HOST) -> list[int]:
    """``n`` distinct ports free on ``host`` right now (all probe sockets are held until the last
    one is bound, so the kernel cannot hand the same port out twice)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port(host: str = HOST) -> int:
    """One port free on ``host`` right now."""
    return free_ports(1, host)[0]


def stop(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Stop a child process: SIGTERM, then SIGKILL if it has not exited within ``grace_s``
    seconds; returns once it is reaped. Does nothing if it has already exited."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=grace_s)


__all__ = ["HOST", "free_port", "free_ports", "stop"]
