"""simpy's environment with a second lane for the many timers that only call a function.

A storm of 1,000,000 clients keeps ~250,000 retry timers pending for tens of seconds each. In
simpy's one binary heap every event then pays ~18 levels of tuple comparisons scattered over
memory, and the run slows down threefold (measured: 1.2 M callbacks/s with 1,000 pending,
0.37 M/s with 250,000). :meth:`Environment.call_later` keeps such timers in a calendar
instead: buckets of ``bucket_s`` seconds, each a plain list until its turn comes, then sorted
once by time (a stable sort of float keys, which Python compares without a call, where a heap
compares whole tuples at every level) and read in order. A timer set for the bucket under way
(or an earlier one) goes to a small heap beside it, so a burst of them (a crash resets 250,000
connections at once) costs log n each; buckets are narrow enough that messages in flight (tens
of milliseconds) land in later buckets, and that heap is usually empty. simpy's own heap keeps
the short-lived events (processes, simpy timeouts), so it stays small.

:meth:`Environment.run` also tunes Python's cyclic garbage collector while it runs, the one
place a run does. It freezes what exists when the run starts (the clients, servers and
collaborators built before, which live until the end; the collector scanned them again and again,
a third of a 100,000-client storm), and unfreezes it after so it can be freed. It also looks at
young objects every ``gc_young_threshold`` allocations instead of every 700: a storm allocates
millions of short-lived, acyclic objects (messages, calendar entries), and the default rate spent
about 4 s of a 1,000,000-client run (3,853 young and 350 middle collections, 19 full ones)
finding nothing to collect. Reference counting frees them as before; only cycles wait a little
longer.

The order of events is exactly simpy's: a calendar entry takes its ``(time, priority, id)`` from
the same clock and the same event counter a Timeout would, and :meth:`step` takes whichever of
the two lanes holds the smaller key. A bucket's entries are appended in id order, and the sort is
stable, so entries of equal time stay in id order; the heap beside it orders by the whole key.
A run is the same event for event with or without the lane.
"""

from __future__ import annotations

import gc
from heapq import heappop, heappush
from operator import itemgetter
from time import monotonic, sleep
from typing import Any, Callable

import simpy
from simpy.core import EmptySchedule, Infinity, StopSimulation
from simpy.events import NORMAL, URGENT, EventPriority

_AT = itemgetter(0)  # an entry's time


class Environment(simpy.Environment):
    """A :class:`simpy.Environment` with :meth:`call_later` (see the module docstring)."""

    bucket_s = 0.004
    """Width of a calendar bucket, in seconds: a few dozen timers each in a 1,000,000-client storm,
    and narrower than a message's flight, so replies seldom land in the bucket under way (measured
    on the 100,000-client storm: 13.06 G instructions at 4 ms, 13.45 G at 10 ms, 14.65 G at 100 ms)."""

    gc_young_threshold = 100_000
    """Allocations between two collections of the youngest generation while :meth:`run` runs
    (the thresholds in force before, Python's default 700 for most, are restored after)."""

    now: float = 0.0
    """The current simulated time, in seconds: a plain attribute here, not simpy's property. Models
    read the clock several times per event (eight per attempt in a storm, 36 M reads in a
    1,000,000-client one), and a property is a function call each time. Every step sets it
    together with simpy's ``_now``, which simpy's own methods keep using."""

    def __init__(self, initial_time: float = 0) -> None:
        super().__init__(initial_time)
        self.now = self._now
        self._buckets: dict[int, list[tuple]] = {}  # bucket number -> entries, in id order
        self._bucket_keys: list[int] = []  # heap of the numbers in _buckets
        self._current: list[tuple] = []  # entries of bucket _current_key, sorted when it was loaded
        self._next = 0  # index in _current of the next entry due (those before it are done)
        self._late: list[tuple] = []  # heap of entries set since, for _current_key's bucket or earlier
        self._current_key = -(1 << 62)
        self._per_s = 1 / self.bucket_s  # buckets per second (a product is cheaper than a floor division)

    def call_later(self, delay: float, callback: Callable[[Any], None], arg: Any = None) -> None:
        """Call ``callback(arg)`` in ``delay`` seconds (>= 0), exactly when ``env.timeout(delay)``
        would fire; it cannot be withdrawn (see :class:`~sim.core.timer.Timer` for that)."""
        if delay < 0:
            raise ValueError(f"Negative delay {delay}")
        at = self._now + delay  # the very sum simpy makes for a timeout
        entry = (at, NORMAL, next(self._eid), callback, arg)
        key = int(at * self._per_s)  # any non-decreasing map of time to bucket keeps the order
        if key <= self._current_key:
            heappush(self._late, entry)
            return
        bucket = self._buckets.get(key)
        if bucket is None:
            self._buckets[key] = [entry]
            heappush(self._bucket_keys, key)
        else:
            bucket.append(entry)

    def calendar(self) -> list[tuple[float, Callable[[Any], None], Any]]:
        """The calendar's pending entries as ``(time, callback, arg)``, earliest first (for tests and
        debugging: simpy's own pending events stay in ``_queue``)."""
        entries = sorted([*self._current[self._next:], *self._late,
                          *(e for bucket in self._buckets.values() for e in bucket)])
        return [(at, callback, arg) for at, _priority, _id, callback, arg in entries]

    def _calendar_head(self) -> tuple | None:
        """The calendar's earliest entry (None if empty), loading the next bucket when needed."""
        current, late = self._current, self._late
        if self._next == len(current):
            if late:
                return late[0]
            keys = self._bucket_keys
            if not keys:
                return None
            key = heappop(keys)
            current = self._current = self._buckets.pop(key)
            current.sort(key=_AT)  # stable: equal times stay in id order
            self._next = 0
            self._current_key = key
            return current[0]
        head = current[self._next]
        return late[0] if late and late[0] < head else head

    def _take(self, head: tuple) -> None:
        """Remove ``head`` (what :meth:`_calendar_head` returned) from the calendar."""
        late = self._late
        if late and late[0] is head:
            heappop(late)
        else:
            self._next += 1

    def peek(self) -> float:
        head = self._calendar_head()
        at = self._queue[0][0] if self._queue else Infinity
        return at if head is None or head[0] > at else head[0]

    def step(self) -> None:
        """Process the next event of either lane (the one with the smaller (time, priority, id))."""
        head = self._calendar_head()
        if head is not None:
            queue = self._queue
            if not queue or head < queue[0]:  # ids are unique: the comparison never reaches the event
                self._take(head)
                self._now = self.now = head[0]
                head[3](head[4])
                return
        self._simpy_step()

    def _simpy_step(self) -> None:
        """simpy 4's ``Environment.step``, setting :attr:`now` as well as ``_now`` before the callbacks."""
        try:
            self._now, _, _, event = heappop(self._queue)
        except IndexError:
            raise EmptySchedule from None
        self.now = self._now
        callbacks, event.callbacks = event.callbacks, None
        try:
            for callback in callbacks:
                callback(event)
        except StopSimulation:
            # simpy's own recovery: the remaining callbacks run when the simulation resumes
            event.callbacks = callbacks[callbacks.index(callback) + 1:]
            self.schedule(event, EventPriority(-1))
            raise
        if not event._ok and not hasattr(event, "_defused"):
            exc = type(event._value)(*event._value.args)
            exc.__cause__ = event._value
            raise exc

    def run(self, until: Any = None) -> Any:
        """simpy's ``run``, with its loop of :meth:`step` written out: the loop is the hot path of
        every run, and a call of ``step`` per event costs a tenth of a storm."""
        if until is not None and not isinstance(until, simpy.Event):
            at = until if isinstance(until, int) else float(until)
            if at <= self.now:
                raise ValueError(f"until ({at}) must be greater than the current simulation time")
            until = simpy.Event(self)
            until._ok = True
            until._value = None
            self.schedule(until, URGENT, at - self.now)
        elif until is not None and until.callbacks is None:
            return until.value
        if until is not None:
            until.callbacks.append(StopSimulation.callback)
        queue = self._queue
        simpy_step = self._simpy_step
        thresholds = gc.get_threshold()
        gc.set_threshold(max(thresholds[0], self.gc_young_threshold), *thresholds[1:])
        gc.freeze()
        try:
            late = self._late
            while True:
                i = self._next
                current = self._current
                if i < len(current) and not late:  # the common case, written out
                    head = current[i]
                    at = head[0]
                    # the times first (a float comparison, no call), the whole keys only on a tie
                    if not queue or at < queue[0][0] or (at == queue[0][0] and head < queue[0]):
                        self._next = i + 1
                        self._now = self.now = at
                        head[3](head[4])
                        continue
                    simpy_step()
                    continue
                head = self._calendar_head()
                if head is not None and (not queue or head < queue[0]):
                    self._take(head)
                    self._now = self.now = head[0]
                    head[3](head[4])
                    continue
                simpy_step()
        except StopSimulation as exc:
            return exc.args[0]
        except EmptySchedule:
            if until is not None:
                assert not until.triggered
                raise RuntimeError(f'No scheduled events left but "until" event was not triggered: {until}') from None
        finally:
            gc.unfreeze()
            gc.set_threshold(*thresholds)
        return None


class RealtimeEnvironment(Environment):
    """:class:`Environment` on a wall clock, as :class:`simpy.rt.RealtimeEnvironment` is
    simpy's: the event at simulated time ``t`` is processed no sooner than ``factor * t`` wall
    seconds after the start (``python -m sim live``). A slow step is caught up, never an error
    (simpy's ``strict=False``). Same events in the same order as :class:`Environment`; only the
    pauses between them differ."""

    def __init__(self, initial_time: float = 0, factor: float = 1.0) -> None:
        super().__init__(initial_time)
        self.factor = factor
        """Wall seconds per simulated second."""
        self.env_start = initial_time
        self.real_start = monotonic()

    def sync(self) -> None:
        """Restart the wall clock from now (after a long set-up, as simpy's ``sync``)."""
        self.real_start = monotonic()

    def step(self) -> None:
        at = self.peek()
        if at is Infinity:
            raise EmptySchedule
        real_time = self.real_start + (at - self.env_start) * self.factor
        while (delta := real_time - monotonic()) > 0:  # a loop: sleep() may wake early
            sleep(delta)
        super().step()

    def run(self, until: Any = None) -> Any:
        """simpy's own loop of :meth:`step` (not the inlined one: each step waits for the clock)."""
        return simpy.Environment.run(self, until)


__all__ = ["Environment", "RealtimeEnvironment"]
