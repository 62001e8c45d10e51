"""How many persistent connections one node holds before its configuration refuses the next one.

The course (6A) says a real-time service « nécessite des serveurs capables de gérer des milliers
de connexions persistantes ». What a node must hold is the busiest node's share of the clients
(``clients / nodes`` times the balancer's imbalance, see ``load-balancing``); what it *can*
hold is first set by two defaults, long before memory or CPU run out
(``data/node_limits.json``):

* **NGINX in front** (:class:`NginxLimits`): each worker has ``worker_connections`` slots (512),
  a proxied WebSocket takes two of them (the client's connection and the upstream one) and the
  worker keeps two for itself (its listening socket and its channel to the master), so a stock
  NGINX proxies ``(512 - 2) // 2 = 255`` WebSockets; the next ones are refused.
* **The server process itself** (:data:`PROCESS_NOFILE`): one file descriptor per socket, and
  Linux starts every process with a soft limit of 1,024 open files.

Simplification: the limits are counted, not simulated (the scenarios do not refuse a connection
past them); the notebook compares them with the busiest node's connections.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim import data
from sim.core.errors import ParameterError


def presets() -> dict[str, dict]:
    """``data/node_limits.json``: NGINX's and Linux's defaults, each with its source."""
    return data.load("node_limits")


_NGINX = presets()["nginx"]  # read once: the methods below are called per sizing question
PROCESS_NOFILE: int = presets()["linux"]["nofile_soft"]
"""Open files a process may hold under Linux's default soft ``RLIMIT_NOFILE`` (1,024): one per
socket, so a server that keeps a socket per client holds about that many until it is raised."""


@dataclass(frozen=True)
class NginxLimits:
    """An NGINX reverse proxy's connection slots (defaults: the stock configuration)."""

    worker_connections: int = _NGINX["worker_connections"]
    """Connection slots of one worker process (NGINX ``worker_connections``)."""
    worker_processes: int = _NGINX["worker_processes"]
    """Worker processes (NGINX ``worker_processes``)."""
    listeners: int = 1
    """Listening sockets (``listen`` directives): each takes a slot in every worker."""

    def __post_init__(self) -> None:
        for name in ("worker_connections", "worker_processes", "listeners"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(name, f"must be an integer >= 1, got {value!r}")
        if self.worker_connections <= self.listeners + 1:
            raise ParameterError("worker_connections", f"must be > listeners + 1 ({self.listeners + 1}): a worker "
                                                       f"keeps that many slots for itself, got {self.worker_connections}")

    def proxied_websockets(self) -> int:
        """WebSockets this NGINX proxies at once: two slots each, after the worker's own
        (its listening sockets and its channel to the master)."""
        return self._websockets_per_worker(free=0) * self.worker_processes

    def draining_from(self) -> int:
        """Proxied WebSockets from which a burst of new ones may see a few dropped before the last
        slot is taken: NGINX closes connections whose request it has not read yet once no more than
        1/16 of a worker's slots are free (``ngx_drain_connections``)."""
        free = int(self.worker_connections * _NGINX["drain_below_free_fraction"])
        return self._websockets_per_worker(free) * self.worker_processes

    def _websockets_per_worker(self, free: int) -> int:
        """Proxied WebSockets that fit in one worker's slots, leaving ``free`` of them unused."""
        own = self.listeners + _NGINX["own_slots_per_worker"] - 1  # one listener is in the preset's count
        return (self.worker_connections - own - free) // _NGINX["slots_per_proxied_connection"]


__all__ = ["PROCESS_NOFILE", "NginxLimits", "presets"]
