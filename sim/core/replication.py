"""The one replication runner: run a scenario's configurations ``replications`` times, then
aggregate (desmod's ``simulate_many``, Ciw's records).

A scenario writes one function that simulates replication ``r`` (its streams come from
``Context(seed, replication=r)``: every seed is derived from the run's seed alone, so the same
seed gives the same numbers serial or parallel, and asking for more replications leaves the
first ones unchanged). It returns one row (a dict) per configuration, and optionally named
tables (time series) of that replication::

    reps = replicate(p.replications, lambda r: [simulate(p, seed, r, mode) for mode in p.modes])
    summary = reps.summary(by=["mode"], columns=["lost", "delay_p99_s"])
    return Result("x", seed, p, summary, {"replications": reps.rows, **reps.series})

``reps.rows`` has one row per (replication, configuration), with a ``replication`` column
first. ``summary`` groups them by the key columns and, for each summary column ``X``, gives the
mean ``X`` and the Student-t interval ``X_ci_low``/``X_ci_high`` (:func:`sim.core.stats.mean_ci`;
``nan`` with one replication, where ``X`` is the replication's own value, type kept), then a
``replications`` count. Within one replication every configuration shares the same streams
(common random numbers).

pandas is imported when a runner is used, not when this module is imported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence, Union

from sim.core.errors import ParameterError
from sim.core.params import param
from sim.core.stats import mean_ci

if TYPE_CHECKING:
    import pandas as pd

Row = Mapping[str, Any]
Outcome = Union[Row, Sequence[Row], tuple[Union[Row, Sequence[Row]], Mapping[str, "pd.DataFrame"]]]
"""What one replication returns: a row, a list of rows, or ``(rows, {name: DataFrame})``."""

REPLICATION = "replication"
"""Column naming the replication a row or series row came from."""
COUNT = "replications"
"""Summary column: how many replications each summary row averages."""


def replications_param(default: int = 1) -> Any:
    """The standard ``replications`` parameter: the same name, meaning and validation in every scenario."""
    return param(default, ge=1, help="independent runs, seeds derived from the run's seed; "
                                     "summary columns get 95 % confidence intervals (X_ci_low, X_ci_high), "
                                     "which need at least 2")


@dataclass
class Replications:
    """The rows and series of every replication (see the module docstring)."""

    rows: "pd.DataFrame"
    """One row per (replication, configuration), ``replication`` first."""
    series: dict[str, "pd.DataFrame"] = field(default_factory=dict)
    """Each named table of every replication, concatenated, with a ``replication`` column first."""

    def summary(self, by: Sequence[str], columns: Iterable[str] | None = None, *, keep: Sequence[str] = (),
                confidence: float = 0.95) -> "pd.DataFrame":
        """One row per distinct ``by`` (in first-seen order): ``by``, ``keep`` (first value),
        then ``X, X_ci_low, X_ci_high`` for each of ``columns``, then ``replications``.

        ``columns=None`` means every numeric column (booleans too: their mean is a fraction) not
        in ``by`` or ``keep``; the other columns (labels, descriptions) are kept like ``keep``."""
        return summarize(self.rows, by, columns, keep=keep, confidence=confidence)


def replicate(replications: int, once: Callable[[int], Outcome]) -> Replications:
    """Call ``once(r)`` for ``r = 0 .. replications - 1`` and collect its rows and series."""
    import pandas as pd

    if isinstance(replications, bool) or not isinstance(replications, int) or replications < 1:
        raise ParameterError("replications", f"must be an integer >= 1, got {replications!r}")
    rows: list[dict] = []
    tables: dict[str, list[pd.DataFrame]] = {}
    for r in range(replications):
        outcome = once(r)
        found, named = outcome if isinstance(outcome, tuple) else (outcome, {})
        for row in ([found] if isinstance(found, Mapping) else found):
            rows.append({REPLICATION: r, **row})
        for name, frame in named.items():
            tables.setdefault(name, []).append(frame.assign(**{REPLICATION: r})[[REPLICATION, *frame.columns]])
    series = {name: pd.concat(frames, ignore_index=True) for name, frames in tables.items()}
    return Replications(pd.DataFrame(rows), series)


def summarize(rows: "pd.DataFrame", by: Sequence[str], columns: Iterable[str] | None = None, *,
              keep: Sequence[str] = (), confidence: float = 0.95) -> "pd.DataFrame":
    """Aggregate per-replication ``rows`` by ``by`` (see :meth:`Replications.summary`)."""
    import pandas as pd
    from pandas.api.types import is_numeric_dtype

    by = list(by)
    fixed = {*by, *keep, REPLICATION}
    if columns is None:
        numeric = [c for c in rows.columns if c not in fixed and is_numeric_dtype(rows[c])]
        keep = [*keep, *(c for c in rows.columns if c not in fixed and c not in numeric)]
        columns = numeric
    columns = list(columns)
    out = []
    groups = rows.groupby(by, sort=False, dropna=False) if by else [((), rows)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, Any] = dict(zip(by, key))
        first = group.iloc[0]
        for col in keep:
            row[col] = first[col]
        for col in columns:
            if len(group) == 1:  # the replication's own value, its type kept: nothing to average
                row[col], row[f"{col}_ci_low"], row[f"{col}_ci_high"] = first[col], math.nan, math.nan
            else:
                row[col], row[f"{col}_ci_low"], row[f"{col}_ci_high"] = mean_ci(group[col].to_numpy(float),
                                                                                confidence)
        row[COUNT] = len(group)
        out.append(row)
    frame = pd.DataFrame(out)
    for col in columns:  # one replication: give back the column's own dtype (ints stay ints)
        if (frame[COUNT] == 1).all() and col in rows:
            frame[col] = frame[col].astype(rows[col].dtype)
    return frame


def distinguishable(summary: "pd.DataFrame", column: str, a: Row, b: Row) -> bool | None:
    """Whether the intervals of ``column`` for the summary rows matching ``a`` and ``b`` are disjoint.

    ``None`` when an interval is undefined (one replication). Overlapping 95 % intervals mean the
    two options are not told apart at this number of replications (a conservative test)."""
    def pick(match: Row):
        mask = True
        for k, v in match.items():
            mask = mask & (summary[k] == v)
        found = summary[mask]
        if len(found) != 1:
            raise ValueError(f"{dict(match)} matches {len(found)} summary rows, not 1")
        return found.iloc[0]

    x, y = pick(a), pick(b)
    lows, highs = (x[f"{column}_ci_low"], y[f"{column}_ci_low"]), (x[f"{column}_ci_high"], y[f"{column}_ci_high"])
    if any(math.isnan(v) for v in (*lows, *highs)):
        return None
    return bool(x[f"{column}_ci_high"] < y[f"{column}_ci_low"] or y[f"{column}_ci_high"] < x[f"{column}_ci_low"])


__all__ = ["COUNT", "REPLICATION", "Replications", "distinguishable", "replicate", "replications_param", "summarize"]
