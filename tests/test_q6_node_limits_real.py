"""A real server process under Linux's default open-files limit holds that many sockets, no more.

:data:`~sim.components.node_limits.PROCESS_NOFILE` says a process starts with a soft
``RLIMIT_NOFILE`` of 1,024 and that every socket is one file descriptor. Here a child Python
server is started with exactly that soft limit (as the kernel gives its first process) and accepts
connections until ``accept`` fails; it must hold the limit minus the descriptors it had already
opened (standard streams, the listening socket, the interpreter's own), to the socket, and then fail
with EMFILE ("Too many open files"). Linux only (``/proc/self/fd``).
"""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sim.calibration.local import stop
from sim.components.node_limits import PROCESS_NOFILE

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux's /proc/self/fd")

SERVER = r"""
import errno, json, os, resource, socket, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
listener = socket.create_server(("127.0.0.1", 0), backlog=limit + 200)
already = len(os.listdir("/proc/self/fd")) - 1  # listdir's own descriptor is closed again
print(json.dumps({"port": listener.getsockname()[1], "already": already}), flush=True)
held, error = [], None
listener.settimeout(5.0)
while error is None:
    try:
        held.append(listener.accept()[0])
    except OSError as exc:
        error = errno.errorcode.get(exc.errno, str(exc))
print(json.dumps({"held": len(held), "error": error}), flush=True)
sys.stdin.read()  # keep every socket open until the test is done
"""


def test_a_process_holds_as_many_sockets_as_its_open_files_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < PROCESS_NOFILE:
        pytest.skip(f"this machine's hard open-files limit ({hard}) is below Linux's default soft one ({PROCESS_NOFILE})")
    offered = PROCESS_NOFILE + 50
    if soft != resource.RLIM_INFINITY and soft < offered + 64:
        pytest.skip(f"the test itself needs {offered + 64} open files (ulimit -n is {soft})")
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(PROCESS_NOFILE)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    clients: list[socket.socket] = []
    try:
        started = json.loads(proc.stdout.readline())
        for _ in range(offered):  # the kernel completes handshakes into the backlog, accepted or not
            clients.append(socket.create_connection(("127.0.0.1", started["port"]), timeout=5))
        line = proc.stdout.readline()  # the server stops at its first failed accept (or after 5 s idle)
        assert line, "the server exited without a report"
        done = json.loads(line)
        assert done["error"] == "EMFILE", done
        assert done["held"] == PROCESS_NOFILE - started["already"], (done, started)
    finally:
        for c in clients:
            c.close()
        proc.stdin.close()
        stop(proc, grace_s=5)
