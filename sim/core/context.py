"""The simulation context: one simpy environment and named random streams from one seed."""

from __future__ import annotations

import hashlib

import numpy as np
import simpy

from sim.core.metrics import Metrics


def _name_key(name: str) -> tuple[int, ...]:
    """A stable tuple of 32-bit words for a stream name (Python's ``hash`` is salted per process)."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))


class Context:
    """Everything a component needs from the run it belongs to.

    Random streams are derived from ``(seed, replication, name)`` alone, never from the order
    in which components ask for them, so adding a component leaves every other component's
    random numbers unchanged.
    """

    def __init__(self, seed: int, *, replication: int = 0) -> None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        if isinstance(replication, bool) or not isinstance(replication, (int, np.integer)) or replication < 0:
            raise ValueError(f"replication must be an integer >= 0, got {replication!r}")
        self.seed: int = int(seed)
        """The run's seed."""
        self.replication: int = int(replication)
        """Index of this independent replication of the same configuration."""
        self.env: simpy.Environment = simpy.Environment()
        """The simpy environment; ``env.now`` is the simulated time in seconds."""
        self.metrics: Metrics = Metrics(self.env)
        """Counters, gauges and histograms of this run."""
        self._streams: dict[str, np.random.Generator] = {}

    @property
    def now(self) -> float:
        """Simulated time, in seconds."""
        return self.env.now

    def rng(self, name: str) -> np.random.Generator:
        """The random stream called ``name`` (the same object on every call)."""
        stream = self._streams.get(name)
        if stream is None:
            seq = np.random.SeedSequence(self.seed, spawn_key=(self.replication, *_name_key(name)))
            stream = self._streams[name] = np.random.Generator(np.random.PCG64(seq))
        return stream

    def run(self, until: float | simpy.Event | None = None) -> None:
        """Advance the simulation (``until`` is a time in seconds or an event)."""
        self.env.run(until=until)
