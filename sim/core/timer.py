"""A cancellable timer: simpy cannot withdraw a scheduled timeout, so every component that needs
"do this in d seconds unless something happens first" uses this one helper instead of keeping
an epoch or session counter and comparing it when the timeout fires."""

from __future__ import annotations

from typing import Callable

import simpy


class Timer:
    """Calls ``callback()`` ``delay`` seconds from now, unless :meth:`cancel` is called first.

    One simpy timeout underneath (a cancelled timer still costs its event when it comes due,
    and does nothing then)."""

    __slots__ = ("callback", "active")

    def __init__(self, env: simpy.Environment, delay: float, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.active = True
        """True until the timer fires or is cancelled."""
        env.timeout(delay).callbacks.append(self._fire)

    def _fire(self, _event: simpy.Event) -> None:
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


__all__ = ["Timer", "cancel"]
