"""A cancellable timer: simpy cannot withdraw a scheduled timeout, so every component that needs
"do this in d seconds unless something happens first" uses this one helper instead of keeping
an epoch or session counter and comparing it when the timeout fires."""

from __future__ import annotations

import math
import weakref
from collections import deque
from typing import Any, Callable

import simpy


def call_later(env: simpy.Environment, delay: float, callback: Callable[[Any], None], arg: Any = None) -> None:
    """Call ``callback(arg)`` in ``delay`` seconds: in the calendar lane of a
    :class:`sim.core.environment.Environment` (the runs' own), else through a simpy timeout."""
    lane = getattr(env, "call_later", None)
    if lane is not None:
        lane(delay, callback, arg)
    else:
        env.timeout(delay, arg).callbacks.append(lambda event: callback(event.value))


class Timer:
    """Calls ``callback()`` ``delay`` seconds from now, unless :meth:`cancel` is called first.

    One entry of the environment's calendar underneath (see :func:`call_later`; a cancelled
    timer still costs its turn when it comes due, and does nothing then)."""

    __slots__ = ("callback", "active")

    def __init__(self, env: simpy.Environment, delay: float, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.active = True
        """True until the timer fires or is cancelled."""
        call_later(env, delay, self._fire)

    def _fire(self, _arg: Any = None) -> None:
        if self.active:
            self.active = False
            self.callback()

    def cancel(self) -> None:
        """Do not call the callback (no effect once it has fired)."""
        self.active = False


def cancel(timer: Timer | None) -> None:
    """Cancel ``timer`` if there is one."""
    if timer is not None:
        timer.active = False


class Deadlines:
    """Many timers of the same length ``delay`` that are nearly always cancelled (connect timeouts).

    A :class:`Timer` costs one calendar entry even when it is cancelled, and sits in the calendar
    until then; here the deadlines wait in one FIFO (they come due in the order they were set,
    since they all have the same length) and one calendar entry at a time stands for the earliest
    live one. An owner waits for a deadline by keeping it in its attribute ``attr``
    (:meth:`add` sets it); it cancels by changing that attribute (e.g. to nan). When the deadline
    comes, at exactly the time a Timer would have fired, the attribute is set to nan and
    ``callback(owner)`` is called. Deadlines that fall due at the same instant are served in the
    order they were set, as Timers would be.
    """

    __slots__ = ("env", "delay", "callback", "attr", "_queue", "_armed_for", "__weakref__")

    def __init__(self, env: simpy.Environment, delay: float, callback: Callable[[Any], None],
                 attr: str = "deadline") -> None:
        self.env = env
        self.delay = delay
        self.callback = callback
        self.attr = attr
        self._queue: deque[tuple[float, Any]] = deque()
        self._armed_for = math.nan  # deadline of the calendar entry in flight (nan: none)

    def add(self, owner: Any) -> float:
        """Wait ``delay`` seconds on behalf of ``owner``; returns (and stores in ``owner``) the deadline."""
        env = self.env
        deadline = env.now + self.delay  # the very sum simpy makes for a timeout of `delay`
        attr, queue = self.attr, self._queue
        # forget the oldest deadlines already cancelled, so the queue holds about as many as are
        # live (a herd retrying at once sets thousands a second and cancels each within a round trip)
        while queue and getattr(queue[0][1], attr) != queue[0][0]:
            queue.popleft()
        setattr(owner, attr, deadline)
        queue.append((deadline, owner))
        if self._armed_for != self._armed_for:  # nan: nothing armed
            self._armed_for = deadline
            call_later(env, self.delay, self._due)
        return deadline

    def _due(self, _arg: Any = None) -> None:
        now = self.env.now
        queue, attr, callback = self._queue, self.attr, self.callback
        while queue and queue[0][0] <= now:
            deadline, owner = queue.popleft()
            if getattr(owner, attr) == deadline:
                setattr(owner, attr, math.nan)
                callback(owner)
        while queue and getattr(queue[0][1], attr) != queue[0][0]:  # cancelled since: forget them
            queue.popleft()
        if not queue:
            self._armed_for = math.nan
            return
        deadline = queue[0][0]
        delay = deadline - now
        while now + delay < deadline:  # simpy adds now + delay: land on the deadline exactly
            delay = math.nextafter(delay, math.inf)
        while delay > 0 and now + delay > deadline:
            delay = math.nextafter(delay, -math.inf)
        self._armed_for = deadline
        call_later(self.env, delay, self._due)


_DEADLINES: "weakref.WeakKeyDictionary[simpy.Environment, dict[tuple, Deadlines]]" = weakref.WeakKeyDictionary()


def deadlines(env: simpy.Environment, delay: float, callback: Callable[[Any], None], attr: str = "deadline") -> Deadlines:
    """The one :class:`Deadlines` of ``env`` for this delay, callback and attribute (created on first use)."""
    per_env = _DEADLINES.get(env)
    if per_env is None:
        per_env = _DEADLINES[env] = {}
    key = (delay, callback, attr)
    found = per_env.get(key)
    if found is None:
        found = per_env[key] = Deadlines(env, delay, callback, attr)
    return found


__all__ = ["Deadlines", "Timer", "call_later", "cancel", "deadlines"]
