"""K users editing a shared document: typing, deleting, changing settings, adding comments.

Users act as independent Poisson processes of ``typing_rate`` edits per second each (simulated
as their superposition: one process, each event picks a user at random). User ``u`` edits the
replica ``u mod R`` and always types the same letter (``a`` for user 0, ``b`` for user 1, ...),
so a final text shows at a glance whose keystrokes survived.

Where the edits land:

* each user has a cursor and types forward from it; now and then (probability
  ``CURSOR_JUMP`` per edit) it moves to a random place in the text;
* a share ``hotspot`` of insertions goes at the **end** of the document, where everyone is
  typing at once (meeting notes): the canonical case of concurrent inserts at the same position;
* a deletion is a backspace at the cursor;
* a settings write picks one of a few keys, so writes to the same key are often concurrent.

All random numbers are drawn up front from the ``crdt.workload`` stream, the same number per
edit whatever the document holds, so every model sees the same users pressing the same keys
at the same instants (common random numbers); only the positions, computed from each model's
own copy of the text, differ.
"""

from __future__ import annotations

import string

import numpy as np
import simpy

from sim.core.context import Context
from sim.core.errors import ParameterError

__all__ = ["CURSOR_JUMP", "EditingWorkload", "LETTERS", "user_letter"]

#: The letter each user types (ASCII: pycrdt 0.14 indexes text by UTF-8 byte).
LETTERS = string.ascii_lowercase + string.ascii_uppercase + string.digits
#: Probability that a user's cursor moves to a random place before an edit.
CURSOR_JUMP = 0.1


def user_letter(user: int) -> str:
    return LETTERS[user]


class EditingWorkload:
    """Drives ``operations`` edits into ``replicas`` on behalf of ``users`` users."""

    def __init__(self, ctx: Context, replicas: list, *, users: int, operations: int, typing_rate: float,
                 delete_fraction: float = 0.15, setting_fraction: float = 0.05, comment_fraction: float = 0.02,
                 hotspot: float = 0.2, settings_keys: int = 3, start: float = 0.0) -> None:
        if not replicas:
            raise ParameterError("replicas", "must hold at least one replica")
        if not 1 <= users <= len(LETTERS):
            raise ParameterError("users", f"must be between 1 and {len(LETTERS)} (one letter each), got {users!r}")
        if operations < 0:
            raise ParameterError("operations", f"must be an integer >= 0, got {operations!r}")
        if not typing_rate > 0:
            raise ParameterError("typing_rate", f"must be > 0 edits per second, got {typing_rate!r}")
        for name, share in (("delete_fraction", delete_fraction), ("setting_fraction", setting_fraction),
                            ("comment_fraction", comment_fraction), ("hotspot", hotspot)):
            if not 0 <= share <= 1:
                raise ParameterError(name, f"must be between 0 and 1, got {share!r}")
        if settings_keys < 1:
            raise ParameterError("settings_keys", f"must be an integer >= 1, got {settings_keys!r}")
        if delete_fraction + setting_fraction + comment_fraction > 1:
            raise ParameterError("delete_fraction", "plus setting_fraction plus comment_fraction must be <= 1")
        self.env: simpy.Environment = ctx.env
        self.replicas = replicas
        self.users = users
        self.operations = operations
        self.thresholds = (delete_fraction, delete_fraction + setting_fraction,
                           delete_fraction + setting_fraction + comment_fraction)
        self.hotspot = hotspot
        self.settings_keys = settings_keys
        rng = ctx.rng("crdt.workload")
        times = start + np.cumsum(rng.exponential(1.0 / (users * typing_rate), operations))
        self.times: list[float] = times.tolist()
        """When each edit happens, in seconds."""
        self.who: list[int] = rng.integers(0, users, operations).tolist()
        self.draws: list[list[float]] = rng.random((operations, 4)).tolist()  # kind, hotspot, jump, where
        self.cursors = [0] * users
        self.counts = dict.fromkeys(("insert", "delete", "set", "append"), 0)
        """Edits done so far, by kind."""
        self.done: simpy.Event = self.env.event()
        """Succeeds after the last edit."""
        self.env.process(self._run())

    @property
    def end(self) -> float:
        """Time of the last edit, in seconds (known before the run: the draws are made up front)."""
        return self.times[-1] if self.times else 0.0

    def _run(self):
        env = self.env
        n_replicas = len(self.replicas)
        for i, t in enumerate(self.times):
            yield env.timeout(t - env.now)
            user = self.who[i]
            self._edit(i, user, self.replicas[user % n_replicas])
        self.done.succeed()

    def _edit(self, i: int, user: int, replica) -> None:
        kind_u, hot_u, jump_u, where_u = self.draws[i]
        length = replica.length()
        cursor = min(self.cursors[user], length)
        if jump_u < CURSOR_JUMP:
            cursor = int(where_u * (length + 1))
        deletes, sets, appends = self.thresholds
        if kind_u < deletes and length > 0:
            pos = cursor - 1 if cursor > 0 else 0  # backspace; at the very start, delete forward
            replica.delete(pos)
            self.cursors[user] = pos
            self.counts["delete"] += 1
        elif deletes <= kind_u < sets:
            replica.set_setting(f"setting-{int(where_u * self.settings_keys)}", f"u{user}-e{i}")
            self.counts["set"] += 1
        elif sets <= kind_u < appends:
            replica.append_comment(f"comment {i} by user {user}")
            self.counts["append"] += 1
        else:  # an insertion (also a deletion asked of an empty text)
            pos = length if hot_u < self.hotspot else cursor
            replica.insert(pos, LETTERS[user])
            self.cursors[user] = pos + 1
            self.counts["insert"] += 1
