"""The simulation context: one simpy environment and named random streams from one seed."""

from __future__ import annotations

import hashlib
import sys
from typing import Callable

import numpy as np
import simpy

from sim.core.environment import Environment
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
        self.env: Environment = Environment()
        """The simpy environment (with a calendar lane for timers); ``env.now`` is the simulated time in seconds."""
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


def run_with_progress(env: simpy.Environment, until: float, desc: str,
                      status: Callable[[], str] | None = None, steps: int = 200) -> None:
    """``env.run(until=until)``, with a progress bar of simulated time when stderr is a terminal.

    Off a terminal (notebooks, tests, pipes) it is one ``env.run``. On one, the run stops
    ``steps`` times to redraw the bar (``status()`` adds e.g. the attempts so far): each stop is
    an urgent event of simpy's own that runs before anything else due at that instant and does
    nothing else, so the run is the same event for event.
    """
    global _bars
    if not sys.stderr.isatty():
        env.run(until=until)
        return
    from tqdm.auto import tqdm

    _bars += 1
    try:
        _run_with_bar(env, until, desc, status, steps, tqdm)
    finally:
        _bars -= 1


_bars = 0  # progress bars being drawn now


def progress_shown() -> bool:
    """True while :func:`run_with_progress` draws a bar (the CLI's own ticker then keeps quiet)."""
    return _bars > 0


def _run_with_bar(env: simpy.Environment, until: float, desc: str, status: Callable[[], str] | None, steps: int,
                  tqdm) -> None:
    start = env.now
    with tqdm(total=round(until - start, 3), desc=desc, unit="sim s", file=sys.stderr, dynamic_ncols=True,
              leave=False, bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} sim s "
                                      "[{elapsed}<{remaining}]{postfix}") as bar:
        for k in range(1, steps + 1):
            stop = start + (until - start) * k / steps if k < steps else until
            if stop > env.now:
                env.run(until=stop)
            bar.n = round(env.now - start, 3)
            if status is not None:
                bar.set_postfix_str(status(), refresh=False)
            bar.refresh()
