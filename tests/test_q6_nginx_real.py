"""The balancer's ``consistent_hash`` and ``ip_hash``, and a node's connection slots, against a real NGINX on 127.0.0.1.

NGINX is started here with eight backends (``server`` blocks of the same NGINX that answer
their own port), some marked ``down``, and a front that proxies ``/chash`` through ``hash
$arg_key consistent`` and ``/iphash`` through ``ip_hash`` (client address taken from
X-Forwarded-For by the realip module). Every key the model maps to a server must land on that
server in NGINX too. A second NGINX, with its stock ``events {}``, proxies WebSocket upgrades to
a Python upstream that holds every connection: it must hold as many as
:class:`~sim.components.node_limits.NginxLimits` says. Skipped with one line when no ``nginx``
binary is installed (``.ci/run`` installs the Debian package).
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import contextlib
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sim.calibration.local import free_ports, stop
from sim.components.load_balancer import ClientKey, LoadBalancer, ip_text
from sim.components.node_limits import NginxLimits
from sim.core import Context

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx)")
BACKENDS = 8
DOWN = (2, 5)  # indexes of the servers marked down


@pytest.fixture(scope="module")
def nginx(tmp_path_factory):
    root = tmp_path_factory.mktemp("nginx")
    *ports, front = free_ports(BACKENDS + 1)
    servers = [f"127.0.0.1:{p}" for p in ports]

    def upstream(name: str, method: str) -> str:
        lines = [f"server {s}{' down' if i in DOWN else ''};" for i, s in enumerate(servers)]
        return f"upstream {name} {{ {method}; {' '.join(lines)} }}"

    backends = " ".join(f"server {{ listen {s}; location / {{ return 200 '{s}'; }} }}" for s in servers)
    temp = " ".join(f"{k}_temp_path {root}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (root / "nginx.conf").write_text(f"""
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  {temp}
  {upstream("chash", "hash $arg_key consistent")}
  {upstream("iphash", "ip_hash")}
  {backends}
  server {{
    listen 127.0.0.1:{front};
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Forwarded-For;
    location /chash {{ proxy_pass http://chash; }}
    location /iphash {{ proxy_pass http://iphash; }}
  }}
}}
""")
    with running_nginx(root, front):
        yield servers, front


@contextlib.contextmanager
def running_nginx(root: Path, front: int):
    """NGINX with ``root/nginx.conf``, until it answers on ``front`` (10 s at most); stopped on exit."""
    proc = subprocess.Popen([NGINX, "-p", str(root), "-c", str(root / "nginx.conf"), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10.0
        while True:
            try:
                socket.create_connection(("127.0.0.1", front), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.poll() is not None else "timeout"
                    pytest.fail(f"nginx did not start: {err.strip()[:300]}")
                time.sleep(0.05)
        yield proc
    finally:
        stop(proc, grace_s=5)


def _model(policy: str, servers: list[str]) -> LoadBalancer:
    lb = LoadBalancer(Context(0), policy, servers)
    for i in DOWN:
        lb.mark_down(servers[i])
    return lb


def _get(conn: http.client.HTTPConnection, path: str, headers: dict | None = None) -> str:
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    body = response.read().decode()
    assert response.status == 200, body
    return body


def test_consistent_hash_lands_where_nginx_sends_the_key(nginx):
    servers, front = nginx
    lb = _model("consistent_hash", servers)
    conn = http.client.HTTPConnection("127.0.0.1", front, timeout=5)
    checked = 0
    for i in range(400):
        key = ClientKey(f"user-{i}", 0)
        expected = lb.owner(key)
        if expected is None:  # NGINX would fall back to round robin: not a keyed answer
            continue
        assert _get(conn, f"/chash?key={key.name}") == expected.name, key.name
        checked += 1
    conn.close()
    assert checked > 350


def test_ip_hash_lands_where_nginx_sends_the_address(nginx):
    servers, front = nginx
    lb = _model("ip_hash", servers)
    conn = http.client.HTTPConnection("127.0.0.1", front, timeout=5)
    rng = np.random.default_rng(11)
    checked = 0
    for ip in rng.integers(1 << 24, 0xDF000000, size=300):  # public-looking unicast IPv4 addresses
        key = ClientKey("c", int(ip))
        expected = lb.owner(key)
        if expected is None:
            continue
        assert _get(conn, "/iphash", {"X-Forwarded-For": ip_text(int(ip))}) == expected.name, ip_text(int(ip))
        checked += 1
    conn.close()
    assert checked > 250


@pytest.mark.parametrize("worker_connections", [None, 128])
def test_a_stock_nginx_proxies_as_many_websockets_as_its_slots_allow(tmp_path, worker_connections):
    """Offer more upgraded connections than NGINX has slots for; a Python upstream holds every one
    it is given. NGINX keeps between :meth:`NginxLimits.draining_from` (it drops a few not-yet-read
    requests once 1/16 of its slots are left) and :meth:`NginxLimits.proxied_websockets`, never more,
    and says its worker_connections are not enough."""
    limits = NginxLimits() if worker_connections is None else NginxLimits(worker_connections=worker_connections)
    upstream_port, front = free_ports(2)
    held: list[socket.socket] = []
    listener = socket.create_server(("127.0.0.1", upstream_port), backlog=1024)

    def hold_everything():
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=hold_everything, daemon=True).start()
    temp = " ".join(f"{k}_temp_path {tmp_path}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    events = "" if worker_connections is None else f"worker_connections {worker_connections};"
    (tmp_path / "nginx.conf").write_text(f"""
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log warn;
events {{ {events} }}
http {{
  access_log off;
  {temp}
  server {{
    listen 127.0.0.1:{front};
    location / {{
      proxy_pass http://127.0.0.1:{upstream_port};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
    }}
  }}
}}
""")
    offered = limits.proxied_websockets() + 150  # past the ceiling, with room under a 1,024 fd limit for the rest
    clients: list[socket.socket] = []
    try:
        with running_nginx(tmp_path, front):
            time.sleep(0.2)  # the probe connection of running_nginx is gone
            for _ in range(offered):
                c = socket.create_connection(("127.0.0.1", front), timeout=5)
                c.sendall(b"GET /chat HTTP/1.1\r\nHost: node\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                clients.append(c)
            deadline, seen, stable_since = time.monotonic() + 10.0, -1, time.monotonic()
            while time.monotonic() < deadline and time.monotonic() - stable_since < 1.0:  # until it settles
                if len(held) != seen:
                    seen, stable_since = len(held), time.monotonic()
                time.sleep(0.05)
            log = (tmp_path / "error.log").read_text()
        assert limits.draining_from() <= len(held) <= limits.proxied_websockets(), (len(held), offered)
        assert f"{limits.worker_connections} worker_connections are not enough" in log
    finally:
        listener.close()
        for c in clients + held:
            c.close()
