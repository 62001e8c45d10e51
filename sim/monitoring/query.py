"""Evaluate PromQL text on simulated scrapes: the dashboard's panels and the alerting rules run on
the simulator's series from the same expressions a real Prometheus would run.

The expression is parsed by **promql-parser** (the Rust ``promql-parser`` crate, a port of
Prometheus' own parser) and evaluated here on a subset of the language that covers
``data/grafana`` and ``data/prometheus``: instant and range selectors with label matchers and
``offset``; ``rate``, ``increase``, ``delta``, ``histogram_quantile`` and ``*_over_time``
(see :mod:`sim.monitoring.promql`); ``sum``/``avg``/``min``/``max``/``count`` with ``by`` or
``without``; arithmetic and comparison operators (with ``bool``) between a vector and a scalar
or between two vectors matched on all labels or ``on(...)``; parentheses and unary minus.
Anything else raises ``ValueError`` naming what is not supported.

An instant selector at ``t`` takes each series' latest sample in ``(t - 5m, t]`` (Prometheus'
default lookback delta). A function or aggregation drops the metric name, as PromQL does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from sim.monitoring import promql

if TYPE_CHECKING:
    import pandas as pd

LOOKBACK_S = 300.0
"""Prometheus' default ``--query.lookback-delta`` (5m)."""

Labels = tuple[tuple[str, str], ...]
"""Sorted label pairs of one series (without ``__name__``)."""


@dataclass
class Store:
    """Scraped samples indexed by metric name: name -> labels -> [(time_s, value), ...]."""

    series: dict[str, dict[Labels, list[tuple[float, float]]]]

    @classmethod
    def from_frame(cls, scrapes: "pd.DataFrame") -> "Store":
        labels = [c for c in scrapes.columns if c not in ("time_s", "name", "kind", "value")]
        out: dict[str, dict[Labels, list[tuple[float, float]]]] = {}
        cols = [scrapes[c].tolist() for c in labels]
        for i, (t, name, v) in enumerate(zip(scrapes["time_s"].tolist(), scrapes["name"].tolist(),
                                             scrapes["value"].tolist())):
            key = tuple(sorted((c, col[i]) for c, col in zip(labels, cols) if isinstance(col[i], str)))
            out.setdefault(name, {}).setdefault(key, []).append((t, v))
        return cls(out)

    def names(self) -> set[str]:
        return set(self.series)


def parse(expr: str):
    """The AST of ``expr`` (``ValueError`` with the parser's message when it is not PromQL)."""
    import promql_parser

    try:
        return promql_parser.parse(expr)
    except ValueError as e:
        raise ValueError(f"not PromQL: {expr!r}: {e}") from None


def metric_names(expr: str) -> set[str]:
    """Every metric name an expression selects."""
    import promql_parser

    names: set[str] = set()

    def visit(node, *_):
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        return True

    promql_parser.walk(parse(expr), visit)
    return names


def instant_query(store: Store, expr: str, at: float) -> float | dict[Labels, float]:
    """``expr`` at time ``at``: a scalar, or an instant vector ``{labels: value}``."""
    return _Eval(store, at).eval(parse(expr))


def range_query(store: Store, expr: str, times: Iterable[float]) -> "pd.DataFrame":
    """``expr`` at each of ``times`` (like ``/api/v1/query_range``): columns ``time_s, labels, value``,
    ``labels`` the series' label text (``{}`` for a scalar or a fully aggregated vector)."""
    import pandas as pd

    ast = parse(expr)
    rows = []
    for t in times:
        out = _Eval(store, t).eval(ast)
        if isinstance(out, float):
            rows.append({"time_s": t, "labels": "{}", "value": out})
        else:
            for labels, v in sorted(out.items()):
                rows.append({"time_s": t, "labels": _text(labels), "value": v})
    return pd.DataFrame(rows, columns=["time_s", "labels", "value"])


def _text(labels: Labels) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}"


_ARITH = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
          "/": lambda a, b: a / b if b else (math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a)),
          "%": math.fmod, "^": lambda a, b: a ** b}
_CMP = {">": lambda a, b: a > b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b,
        "==": lambda a, b: a == b, "!=": lambda a, b: a != b}
_OVER_TIME = {"max_over_time": max, "min_over_time": min, "avg_over_time": lambda v: sum(v) / len(v),
              "sum_over_time": sum, "count_over_time": len}


class _Eval:
    def __init__(self, store: Store, at: float) -> None:
        self.store, self.at = store, at

    def eval(self, node):
        import promql_parser as pp

        kind = type(node).__name__
        if isinstance(node, pp.NumberLiteral):
            return float(node.val)
        if isinstance(node, pp.ParenExpr):
            return self.eval(node.expr)
        if isinstance(node, pp.UnaryExpr):
            inner = self.eval(node.expr)
            return -inner if isinstance(inner, float) else {k: -v for k, v in inner.items()}
        if isinstance(node, pp.VectorSelector):
            return self._instant(node)
        if isinstance(node, pp.Call):
            return self._call(node)
        if isinstance(node, pp.AggregateExpr):
            return self._aggregate(node)
        if isinstance(node, pp.BinaryExpr):
            return self._binary(node)
        raise ValueError(f"PromQL {kind} is not supported by the simulator's evaluator")

    # --- selectors ----------------------------------------------------------------------------
    def _matching(self, vs) -> dict[Labels, list[tuple[float, float]]]:
        found = self.store.series.get(vs.name, {})
        matchers = list(vs.matchers.matchers) if vs.matchers is not None else []
        if vs.matchers is not None and vs.matchers.or_matchers:
            raise ValueError("'or' label matchers are not supported")
        out = {}
        for labels, samples in found.items():
            d = dict(labels)
            if all(_match(m, d.get(m.name, "")) for m in matchers if m.name != "__name__"):
                out[labels] = samples
        return out

    def _offset(self, vs) -> float:
        if vs.at is not None:
            raise ValueError("the @ modifier is not supported")
        return vs.offset.total_seconds() if vs.offset is not None else 0.0

    def _instant(self, vs) -> dict[Labels, float]:
        t = self.at - self._offset(vs)
        out = {}
        for labels, samples in self._matching(vs).items():
            picked = promql.select_range(samples, t, LOOKBACK_S)
            if picked:
                out[labels] = picked[-1][1]
        return out

    # --- functions ----------------------------------------------------------------------------
    def _call(self, node):
        import promql_parser as pp

        name = node.func.name
        args = list(node.args)
        if name in ("rate", "increase", "delta") or name in _OVER_TIME:
            (ms,) = args
            if not isinstance(ms, pp.MatrixSelector):
                raise ValueError(f"{name}() needs a range selector such as x[1m] (subqueries are not supported)")
            vs, range_s = ms.vector_selector, ms.range.total_seconds()
            t = self.at - self._offset(vs)
            out = {}
            for labels, samples in self._matching(vs).items():
                if name in _OVER_TIME:
                    picked = promql.select_range(samples, t, range_s)
                    v = _OVER_TIME[name]([x for _t, x in picked]) if picked else math.nan
                else:
                    v = getattr(promql, name)(samples, t, range_s)
                if not math.isnan(v):
                    out[labels] = v
            return out
        if name == "histogram_quantile":
            q = self.eval(args[0])
            vector = self.eval(args[1])
            if not isinstance(q, float) or isinstance(vector, float):
                raise ValueError("histogram_quantile(scalar, vector)")
            groups: dict[Labels, list[tuple[str, float]]] = {}
            for labels, v in vector.items():
                d = dict(labels)
                if "le" not in d:
                    continue
                le = d.pop("le")
                groups.setdefault(tuple(sorted(d.items())), []).append((le, v))
            out = {}
            for labels, buckets in groups.items():
                value = promql.histogram_quantile(q, buckets)
                out[labels] = value  # nan stays: PromQL returns NaN for an empty histogram
            return out
        raise ValueError(f"PromQL function {name}() is not supported by the simulator's evaluator")

    def _aggregate(self, node):
        op = str(node.op)
        if node.param is not None:
            raise ValueError(f"{op}() with a parameter is not supported")
        vector = self.eval(node.expr)
        if isinstance(vector, float):
            raise ValueError(f"{op}() needs a vector")
        mod = node.modifier
        groups: dict[Labels, list[float]] = {}
        for labels, v in vector.items():
            if mod is None:
                key: Labels = ()
            elif str(mod.type).endswith("By"):
                key = tuple((k, x) for k, x in labels if k in mod.labels)
            else:
                key = tuple((k, x) for k, x in labels if k not in mod.labels)
            groups.setdefault(key, []).append(v)
        fn = {"sum": sum, "avg": lambda v: sum(v) / len(v), "min": min, "max": max, "count": len}.get(op)
        if fn is None:
            raise ValueError(f"aggregation {op}() is not supported by the simulator's evaluator")
        return {k: float(fn(v)) for k, v in groups.items()}

    def _binary(self, node):
        op = str(node.op)
        mod = node.modifier
        return_bool = bool(mod and mod.return_bool)
        lhs, rhs = self.eval(node.lhs), self.eval(node.rhs)
        if op in _CMP:
            fn = _CMP[op]
            combine = (lambda a, b: float(fn(a, b))) if return_bool else None
        elif op in _ARITH:
            fn = _ARITH[op]
            combine = fn
        else:
            raise ValueError(f"operator {op} is not supported by the simulator's evaluator")
        if isinstance(lhs, float) and isinstance(rhs, float):
            return float(fn(lhs, rhs)) if op in _ARITH or return_bool else _scalar_cmp_error(op)
        if isinstance(rhs, float):
            return _vector_scalar(lhs, rhs, fn, combine, keep="lhs")
        if isinstance(lhs, float):
            return _vector_scalar(rhs, lhs, lambda a, b: fn(b, a), None if combine is None else
                                  (lambda a, b: combine(b, a)), keep="rhs")
        on = None
        if mod is not None and mod.matching is not None:
            if not str(mod.matching.type).endswith("Include"):
                raise ValueError("ignoring(...) is not supported; use on(...)")
            on = set(mod.matching.labels)
        if mod is not None and "One" in str(mod.card) and not str(mod.card).endswith("OneToOne"):
            raise ValueError("group_left/group_right are not supported")
        key = (lambda labels: tuple((k, v) for k, v in labels if k in on)) if on is not None else (lambda labels: labels)
        right = {key(labels): v for labels, v in rhs.items()}
        out = {}
        for labels, a in lhs.items():
            b = right.get(key(labels))
            if b is None:
                continue
            if combine is None:  # a filtering comparison keeps the left sample
                if fn(a, b):
                    out[labels] = a
            else:
                out[labels] = float(combine(a, b))
        return out


def _vector_scalar(vector, scalar, fn, combine, keep):
    out = {}
    for labels, v in vector.items():
        if combine is None:
            if fn(v, scalar):
                out[labels] = v if keep == "lhs" else v
        else:
            out[labels] = float(combine(v, scalar))
    return out


def _scalar_cmp_error(op: str):
    raise ValueError(f"comparisons between scalars need bool: 1 {op} bool 2")


def _match(matcher, value: str) -> bool:
    op = str(matcher.op)
    if op.endswith("NotEqual"):
        return value != matcher.value
    if op.endswith("Equal"):
        return value == matcher.value
    if op.endswith("NotRe"):
        return re.fullmatch(matcher.value, value) is None
    if op.endswith("Re"):
        return re.fullmatch(matcher.value, value) is not None
    raise ValueError(f"label matcher {op} is not supported")
