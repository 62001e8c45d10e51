"""``rate()``, ``increase()`` and ``histogram_quantile()`` exactly as PromQL computes them.

Followed line by line from Prometheus' own source (prometheus/prometheus):

- ``promql/functions.go``, ``extrapolatedRate``: the increase between the first and last samples
  of the range, corrected for counter resets (a drop means the counter restarted from zero), then
  **extrapolated towards the range's edges**: all the way to an edge when the first/last sample is
  within 1.1 average sample intervals of it, else only half an average interval (the series is
  taken to start or end there); and, for counters, never further back than the point where the
  counter would have been zero. ``rate`` divides by the range, ``increase`` does not, so
  ``increase`` is generally *not* an integer even for a counter of whole events.
- the range selector ``x[5m]`` evaluated at ``t`` takes the samples with ``t - 5m < ts <= t``
  (left-open since Prometheus 3.0; 2.x included the left edge), timestamps in whole milliseconds;
- ``promql/quantile.go``, ``BucketQuantile``: classic ``le`` buckets, sorted, equal bounds
  merged, made monotonic, then the rank ``q * count`` located and **linearly interpolated inside
  its bucket** (the lowest bucket starts at 0 when its bound is positive); a rank in the ``+Inf``
  bucket returns the highest finite bound.

Left out (not needed by a simulated exporter): native histograms, created-timestamp ("start
timestamp") zero injection (a feature flag), staleness markers and ``offset``/``@`` modifiers.

``prometheus=2`` reproduces Prometheus 2.x (the Debian package is 2.42): the left edge is
included and the zero-point bound is applied before the 1.1 threshold test rather than after.

No result (fewer than two samples in the range, no observations) is ``nan``, as "no sample" in
PromQL. Times are in seconds.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterable, Sequence

if TYPE_CHECKING:
    import pandas as pd

#: ``BucketQuantile``'s tolerance for float noise between adjacent cumulative bucket counts.
SMALL_DELTA_TOLERANCE = 1e-12


def _ms(t: float) -> int:
    """A timestamp in whole milliseconds, as Prometheus stores it."""
    return int(round(t * 1000.0))


def select_range(samples: Iterable[tuple[float, float]], at: float, range_s: float,
                 prometheus: int = 3) -> list[tuple[int, float]]:
    """The samples a range selector ``[range_s]`` evaluated at ``at`` sees, as ``(ms, value)``."""
    if not range_s > 0:
        raise ValueError(f"range must be > 0 s, got {range_s!r}")
    end = _ms(at)
    start = end - _ms(range_s)
    if prometheus == 2:
        return [(_ms(t), v) for t, v in samples if start <= _ms(t) <= end]
    return [(_ms(t), v) for t, v in samples if start < _ms(t) <= end]


def extrapolated_rate(points: Sequence[tuple[int, float]], at: float, range_s: float,
                      is_counter: bool, is_rate: bool, prometheus: int = 3) -> float:
    """``extrapolatedRate`` of promql/functions.go on the float samples ``points`` (ms, value)
    selected by ``[range_s]`` at ``at``: ``rate`` (is_rate), ``increase`` or ``delta``."""
    if len(points) < 2:
        return math.nan
    range_end = _ms(at)
    range_start = range_end - _ms(range_s)
    first_t, first_v = points[0]
    last_t, last_v = points[-1]
    result = last_v - first_v
    if is_counter:
        for (_t0, prev), (_t1, cur) in zip(points, points[1:]):
            if cur < prev:  # a reset: the counter restarted from zero
                result += prev
    duration_to_start = (first_t - range_start) / 1000
    duration_to_end = (range_end - last_t) / 1000
    sampled_interval = (last_t - first_t) / 1000
    average_interval = sampled_interval / (len(points) - 1)
    threshold = average_interval * 1.1

    if prometheus == 2:
        if is_counter and result > 0 and first_v >= 0:
            duration_to_zero = sampled_interval * (first_v / result)
            if duration_to_zero < duration_to_start:
                duration_to_start = duration_to_zero
        if duration_to_start >= threshold:
            duration_to_start = average_interval / 2
    else:
        if duration_to_start >= threshold:
            duration_to_start = average_interval / 2
        if is_counter:
            # counters cannot be negative: do not extrapolate back past the zero point
            duration_to_zero = duration_to_start
            if result > 0 and first_v >= 0:
                duration_to_zero = sampled_interval * (first_v / result)
            if duration_to_zero < duration_to_start:
                duration_to_start = duration_to_zero
    if duration_to_end >= threshold:
        duration_to_end = average_interval / 2

    factor = 1.0
    if sampled_interval != 0:
        factor = (sampled_interval + duration_to_start + duration_to_end) / sampled_interval
    if is_rate:
        factor /= _ms(range_s) / 1000
    return result * factor


def rate(samples: Iterable[tuple[float, float]], at: float, range_s: float, prometheus: int = 3) -> float:
    """PromQL ``rate(x[range_s])`` at time ``at`` of one counter series ``[(time_s, value), ...]``: per second."""
    return extrapolated_rate(select_range(samples, at, range_s, prometheus), at, range_s, True, True, prometheus)


def increase(samples: Iterable[tuple[float, float]], at: float, range_s: float, prometheus: int = 3) -> float:
    """PromQL ``increase(x[range_s])`` at ``at``: ``rate * range`` (extrapolated, so rarely a whole number)."""
    return extrapolated_rate(select_range(samples, at, range_s, prometheus), at, range_s, True, False, prometheus)


def delta(samples: Iterable[tuple[float, float]], at: float, range_s: float, prometheus: int = 3) -> float:
    """PromQL ``delta(g[range_s])`` of a gauge: last minus first, extrapolated (no reset handling)."""
    return extrapolated_rate(select_range(samples, at, range_s, prometheus), at, range_s, False, False, prometheus)


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """PromQL ``histogram_quantile(q, ...)`` on one set of classic buckets ``[(le, cumulative count), ...]``
    (``BucketQuantile`` in promql/quantile.go). ``le`` may be a float or Prometheus' label text."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    bs = sorted(((_le(le), float(n)) for le, n in buckets), key=lambda b: b[0])
    if not bs or not math.isinf(bs[-1][0]):
        return math.nan
    # coalesceBuckets: equal upper bounds are added up
    merged: list[list[float]] = []
    for le, n in bs:
        if merged and merged[-1][0] == le:
            merged[-1][1] += n
        else:
            merged.append([le, n])
    # ensureMonotonicAndIgnoreSmallDeltas
    prev = merged[0][1]
    for b in merged[1:]:
        cur = b[1]
        if cur == prev:
            continue
        if _almost_equal(prev, cur, SMALL_DELTA_TOLERANCE) or cur < prev:
            b[1] = prev
            continue
        prev = cur
    if len(merged) < 2:
        return math.nan
    observations = merged[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    # sort.Search over all but the +Inf bucket: the first bucket whose count >= rank
    b = next((i for i in range(len(merged) - 1) if merged[i][1] >= rank), len(merged) - 1)
    if b == len(merged) - 1:
        return merged[-2][0]
    if b == 0 and merged[0][0] <= 0:
        return merged[0][0]
    bucket_start, bucket_end, count = 0.0, merged[b][0], merged[b][1]
    if b > 0:
        bucket_start = merged[b - 1][0]
        count -= merged[b - 1][1]
        rank -= merged[b - 1][1]
    # Go's float division: 0/0 is NaN (only with rank 0 in an empty first bucket)
    return bucket_start + (bucket_end - bucket_start) * (rank / count if count else math.nan)


def _le(le: float | str) -> float:
    if isinstance(le, str):
        return math.inf if le == "+Inf" else float(le)
    return float(le)


_MIN_NORMAL = 2.2250738585072014e-308


def _almost_equal(a: float, b: float, epsilon: float) -> bool:
    """util/almost.Equal."""
    if a == b:
        return True
    abs_sum = abs(a) + abs(b)
    diff = abs(a - b)
    if a == 0 or b == 0 or abs_sum < _MIN_NORMAL:
        return diff < epsilon * _MIN_NORMAL
    return diff / min(abs_sum, 1.7976931348623157e308) < epsilon


# --- on a frame of scrapes (Metrics.scrapes_frame() or Scraper.frame()) -----------------------------
def series(scrapes: "pd.DataFrame", name: str, **match: str) -> dict[tuple, list[tuple[float, float]]]:
    """Every series of sample ``name`` matching the label values ``match``: label items -> samples."""
    rows = scrapes[scrapes["name"] == name]
    for label, value in match.items():
        rows = rows[rows[label] == value]
    labels = [c for c in rows.columns if c not in ("time_s", "name", "kind", "value") and rows[c].notna().any()]
    out: dict[tuple, list[tuple[float, float]]] = {}
    keys = rows[labels].itertuples(index=False, name=None) if labels else ((),) * len(rows)
    for key, t, v in zip(keys, rows["time_s"].tolist(), rows["value"].tolist()):
        out.setdefault(tuple(zip(labels, key)), []).append((t, v))
    return out


def eval_times(start: float, end: float, step: float) -> list[float]:
    """The evaluation times of a range query ``start..end`` every ``step`` (computed, not accumulated)."""
    if not step > 0:
        raise ValueError(f"step must be > 0 s, got {step!r}")
    n = int(math.floor((end - start) / step + 1e-9))
    return [start + k * step for k in range(n + 1)]


def query_range(scrapes: "pd.DataFrame", function: str, name: str, range_s: float, times: Iterable[float],
                by: Sequence[str] | None = None, **match: str) -> "pd.DataFrame":
    """``sum by (by) (function(name{match}[range_s]))`` at each of ``times`` (``by=None``: no sum,
    one row per series): columns ``time_s, <labels>, value``. ``function`` is ``rate``, ``increase``
    or ``delta``; series with no result at a time are left out of the sum, as in PromQL."""
    import pandas as pd

    fn = {"rate": rate, "increase": increase, "delta": delta}[function]
    found = series(scrapes, name, **match)
    times = list(times)
    rows = []
    for t in times:
        groups: dict[tuple, float] = {}
        for labels, samples in found.items():
            v = fn(samples, t, range_s)
            if math.isnan(v):
                continue
            key = labels if by is None else tuple((k, dict(labels).get(k, "")) for k in by)
            groups[key] = groups.get(key, 0.0) + v
        for key, v in groups.items():
            rows.append({"time_s": t, **dict(key), "value": v})
    columns = ["time_s", *(by or sorted({k for labels in found for k, _ in labels})), "value"]
    return pd.DataFrame(rows, columns=columns)


def quantile_range(scrapes: "pd.DataFrame", q: float, name: str, range_s: float, times: Iterable[float],
                   by: Sequence[str] = (), **match: str) -> "pd.DataFrame":
    """``histogram_quantile(q, sum by (le, by) (rate(name_bucket{match}[range_s])))`` at each of
    ``times``: columns ``time_s, <by>, value`` (nan where the window saw no observation)."""
    import pandas as pd

    rates = query_range(scrapes, "rate", f"{name}_bucket", range_s, times, by=("le", *by), **match)
    rows = []
    for key, group in rates.groupby(["time_s", *by], sort=True):
        key = key if isinstance(key, tuple) else (key,)
        value = histogram_quantile(q, zip(group["le"], group["value"]))
        rows.append({"time_s": key[0], **dict(zip(by, key[1:])), "value": value})
    return pd.DataFrame(rows, columns=["time_s", *by, "value"])
