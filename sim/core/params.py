"""Validated, frozen parameter objects: one per scenario.

A scenario's parameters are a frozen dataclass deriving from :class:`Params`, each field
declared with :func:`param` (default, unit, help, allowed range). From that one declaration
come the validation (on creation), the CLI's ``describe`` table and ``--set`` parsing, and
the JSON record of a run.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable

from sim.core.distributions import SPEC_HELP, Distribution, parse_distribution
from sim.core.errors import ParameterError

_NONE_WORDS = {"none", "null", "unlimited", "inf", "infinite", "off"}

MAX_LIST_ITEMS = 10_000
"""Longest list a parameter takes (a range is counted before it is expanded)."""
MAX_INT = 2**53
"""Largest integer a parameter takes: beyond it a float cannot hold it and no model runs it anyway."""
UNIT_LIMITS = {"s": (1e-6, 1e9), "1/s": (1e-9, 1e7), "B": (1e-9, 1e12), "B/s": (1e-9, 1e12), "": (1e-9, 1e12)}
"""Per unit, ``(smallest nonzero, largest)`` magnitude a model can run, for parameters that declare no
tighter bound: below a microsecond the clock stops moving in practice (``5e-324`` s intervals), past
``1e9`` s (31 years) or ``1e12`` bytes nothing fits in a run (``1e308`` sizes overflow)."""
MAX_COUNT = 10**6
"""Largest integer (nodes, pods, partitions...) a parameter takes unless it declares another bound."""
MAX_WORK_COUNT = 10**12
"""Largest integer for a parameter the work estimate scales with (clients, events...): the estimate refuses sooner."""
REASONABLE_SECONDS = 600.0
"""A run whose estimated time exceeds this is refused unless forced (see :class:`WorkModel`)."""


@dataclass(frozen=True)
class WorkModel:
    """How long a scenario takes, for refusing runs that would not finish in reasonable time.

    The estimate is ``seconds_at_defaults`` (measured on the course's machine, see
    ``benchmarks/``) times ``value / default`` of every factor (and the number of replications):
    event-driven runs grow about in proportion to clients x simulated time.
    """

    seconds_at_defaults: float
    """Measured seconds of one run with the default parameters."""
    factors: tuple[str, ...]
    """Parameters the work grows in proportion to (lists count by their sum)."""


class WorkError(ParameterError):
    """A legal value that would take far too long (or too much memory); ``force=True`` runs it anyway."""


def param(default: Any, *, help: str, unit: str = "", ge: float | None = None, gt: float | None = None,
          le: float | None = None, lt: float | None = None, choices: Iterable[str] | None = None,
          none_means: str = "unset", cli: bool = True) -> Any:
    """Declare one parameter field.

    ``ge``/``gt``/``le``/``lt`` bound numbers (and every item of a tuple, and the mean of a
    distribution); ``choices`` lists the allowed strings; ``none_means`` says what ``None``
    stands for (e.g. ``unlimited``). Bounds should say what the model can do (e.g. a latency
    whose mean is 0 would freeze the clock), so that ``describe`` shows the real limits.
    """
    meta = {"help": help, "unit": unit, "ge": ge, "gt": gt, "le": le, "lt": lt,
            "choices": tuple(choices) if choices is not None else None, "none_means": none_means, "cli": cli}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ParamInfo:
    """What ``describe`` shows for one parameter."""

    name: str
    type: str
    default: str
    unit: str
    allowed: str
    help: str


def _hint_parts(hint: Any) -> tuple[Any, bool]:
    """``(base type, None allowed)`` of a type hint such as ``int | None``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


def _type_name(base: Any) -> str:
    if typing.get_origin(base) is tuple:
        return f"list of {typing.get_args(base)[0].__name__}"
    if isinstance(base, type) and issubclass(base, Distribution):
        return "distribution"
    return getattr(base, "__name__", str(base))


def _bounds_text(meta: dict) -> str:
    parts = []
    for key, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if meta.get(key) is not None:
            parts.append(f"{sym} {meta[key]:g}")
    return " and ".join(parts)


def _limits_text(meta: dict) -> str:
    parts = []
    if meta.get("limit_le") is not None:
        parts.append(f"at most {meta['limit_le']:g}")
    if meta.get("min_nonzero") is not None:
        parts.append(f"at least {meta['min_nonzero']:g}")
    return "; ".join(parts)


def effective_meta(meta: Any, base: Any, is_factor: bool = False) -> dict:
    """A field's declared bounds plus what every model can do (``UNIT_LIMITS``, ``MAX_COUNT``)."""
    meta = dict(meta)
    item = typing.get_args(base)[0] if typing.get_origin(base) is tuple else base
    if item not in (int, float):
        return meta
    unit = meta.get("unit", "")
    if item is int and unit not in ("B", "B/s"):
        if meta.get("le") is None and meta.get("lt") is None:
            meta["limit_le"] = MAX_WORK_COUNT if is_factor else MAX_COUNT
        return meta
    smallest, largest = UNIT_LIMITS.get(unit, UNIT_LIMITS[""])
    if meta.get("le") is None and meta.get("lt") is None:
        meta["limit_le"] = largest
    # a strictly positive quantity (a period, a rate, a size) below `smallest` makes the model
    # spin or overflow; one that may be 0 (a delay, a downtime) is harmless when tiny
    if item is float and meta.get("ge") is None and meta.get("gt") is not None and meta["gt"] < smallest:
        meta["min_nonzero"] = smallest
    return meta


@dataclass(frozen=True)
class Params:
    """Base class of every scenario's parameters (see the module docstring)."""

    work: ClassVar[WorkModel | None] = None
    """How the scenario's running time grows with its parameters (``None``: not estimated)."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        factors = type(self).work.factors if type(self).work is not None else ()
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            meta = effective_meta(f.metadata, _hint_parts(hints[f.name])[0], f.name in factors)
            coerced = _check_field(f, hints[f.name], value, meta)
            if coerced is not value:
                object.__setattr__(self, f.name, coerced)
        self.validate()

    def validate(self) -> None:
        """Cross-field checks; override and raise :class:`ParameterError`."""

    # --- work estimate ------------------------------------------------------------------
    def estimated_seconds(self) -> tuple[float, str | None, int]:
        """``(seconds, the factor that grew most, its power)`` by the class's :class:`WorkModel`."""
        model = type(self).work
        if model is None:
            return 0.0, None, 1
        defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())  # type: ignore[misc]
                    for f in dataclasses.fields(self)}
        factors = tuple(model.factors) + (("replications",) if "replications" in defaults else ())
        estimate, worst, worst_ratio = model.seconds_at_defaults, None, -math.inf
        for name in dict.fromkeys(factors):
            value, default = getattr(self, name), defaults[name]
            if value is None or default is None:
                continue
            base = _total(default)
            if base <= 0:
                continue
            ratio = _total(value) / base
            estimate *= ratio ** factors.count(name)
            if ratio > worst_ratio:
                worst, worst_ratio = name, ratio
        return estimate, worst, factors.count(worst) if worst else 1

    def work_warning(self, above: float = 60.0) -> str | None:
        """One line to show before a run estimated to take more than ``above`` seconds (it names
        the parameter that grew most), or None. Notebooks print it before their long cells."""
        estimate, worst, _ = self.estimated_seconds()
        if worst is None or not estimate > above:
            return None
        return (f"this run is estimated at about {estimate:.0f} s here, mostly because of {worst}="
                f"{_show(getattr(self, worst))}: make {worst} smaller for a quick look")

    def check_work(self, force: bool = False) -> None:
        """Refuse (:class:`WorkError`) a run estimated to take more than ``REASONABLE_SECONDS``.

        The message names the parameter that grew most, the estimate and the largest value of
        that parameter (the others unchanged) that runs in about ``REASONABLE_SECONDS``.
        """
        if force:
            return
        estimate, worst, power = self.estimated_seconds()
        if worst is None or not estimate > REASONABLE_SECONDS:
            return
        value = getattr(self, worst)
        largest = _total(value) * (REASONABLE_SECONDS / estimate) ** (1 / power)
        integral = isinstance(value, int) or (isinstance(value, tuple) and isinstance(value[0], int))
        largest_text = f"{int(largest):d}" if integral else f"{largest:.3g}"
        raise WorkError(worst, f"{_show(value) if not isinstance(value, tuple) else 'a list'} would take about "
                               f"{estimate:.3g} s here (estimate); the largest value that runs in about "
                               f"{REASONABLE_SECONDS:g} s is {largest_text}"
                               f"{' (in total)' if isinstance(value, tuple) else ''}; "
                               f"force=True (CLI: --force) runs it anyway")

    # --- construction from text ---------------------------------------------------------
    @classmethod
    def from_strings(cls, values: dict[str, str], base: "Params | None" = None):
        """Parameters from ``name -> text`` (the CLI's ``--set``), on top of ``base`` or the defaults."""
        fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)}
        hints = typing.get_type_hints(cls)
        parsed = {}
        for name, text in values.items():
            if name not in fields:
                raise ParameterError(name, f"unknown parameter; {cls.scenario_hint()}known: {', '.join(fields)}")
            parsed[name] = _parse(name, hints[name], fields[name].metadata, text)
        return dataclasses.replace(base, **parsed) if base is not None else cls(**parsed)

    @classmethod
    def scenario_hint(cls) -> str:
        return ""

    @classmethod
    def describe(cls) -> list[ParamInfo]:
        hints = typing.get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            if not f.metadata.get("cli", True):
                continue
            base, optional = _hint_parts(hints[f.name])
            meta = f.metadata
            if not (isinstance(base, type) and issubclass(base, Distribution)):
                meta = effective_meta(meta, base, cls.work is not None and f.name in cls.work.factors)
            allowed = []
            if meta.get("choices"):
                allowed.append("one of " + ", ".join(meta["choices"]))
            elif base is bool:
                allowed.append("true or false")
            elif isinstance(base, type) and issubclass(base, Distribution):
                allowed.append(SPEC_HELP)
                if _bounds_text(meta):
                    allowed.append(f"with mean {_bounds_text(meta)}")
            else:
                bounds = _bounds_text(meta)
                if bounds:
                    allowed.append(("each " if typing.get_origin(base) is tuple else "") + bounds)
                if _limits_text(meta):
                    allowed.append(f"({_limits_text(meta)})")
                if typing.get_origin(base) is tuple:
                    allowed.append("as A,B,C or START:STOP:STEP (STOP included)")
            if optional:
                allowed.append(f"or none ({meta.get('none_means', 'unset')})")
            largest = cls._largest_in_reasonable_time(f.name)
            if largest:
                allowed.append(f"(runs in about {REASONABLE_SECONDS:g} s up to {largest} with the other defaults; "
                               f"beyond needs force)")
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            out.append(ParamInfo(f.name, _type_name(base), _show(default), meta.get("unit", ""),
                                 " ".join(allowed) or "any", meta.get("help", "")))
        return out

    @classmethod
    def _largest_in_reasonable_time(cls, name: str) -> str:
        model = cls.work
        if model is None or name not in model.factors:
            return ""
        default = next(f.default for f in dataclasses.fields(cls) if f.name == name)
        if not isinstance(default, (int, float)) or isinstance(default, bool) or default <= 0:
            return ""
        largest = default * (REASONABLE_SECONDS / model.seconds_at_defaults) ** (1 / model.factors.count(name))
        return f"{int(largest):d}" if isinstance(default, int) else f"{largest:.3g}"

    # --- records ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (distributions as their text form, tuples as lists)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def replace(self, **changes: Any):
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def _total(value: Any) -> float:
    return float(sum(value)) if isinstance(value, tuple) else float(value)


def expand_names(parameter: str, text: str, allowed: tuple[str, ...],
                 groups: dict[str, tuple[str, ...]] | None = None) -> tuple[str, ...]:
    """Names from ``text``: one name, several separated by commas, or a group (default ``all``).

    Order is kept and repeats dropped; an unknown name raises :class:`ParameterError` for
    ``parameter`` listing what is allowed.
    """
    groups = {"all": allowed} if groups is None else groups
    names: list[str] = []
    for item in (s.strip() for s in text.split(",")):
        for name in groups.get(item, (item,)):
            if name not in allowed:
                choices = ", ".join((*groups, *allowed))
                raise ParameterError(parameter, f"must be one or more of {choices} (separated by commas); got {item!r}")
            if name not in names:
                names.append(name)
    return tuple(names)


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ",".join(_show(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Distribution):
        return value.spec()
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def _allowed(meta: dict, what: str) -> str:
    bounds = _bounds_text(meta)
    return f"{what} {bounds}" if bounds else what


def _check_number(name: str, meta: dict, base: type, value: Any, what: str, suffix: str = "") -> Any:
    def refuse(shown: Any = value, kind: str = what) -> ParameterError:
        return ParameterError(name, f"must be {_allowed(meta, kind)}{suffix}, got {_short(shown)}")

    # numpy integers and floats are numbers.Integral / numbers.Real; booleans are not numbers here
    if isinstance(value, bool) or _is_numpy_bool(value) or not isinstance(value, numbers.Real):
        raise refuse()
    if base is int:
        if isinstance(value, numbers.Integral):
            value = int(value)
        else:
            number = float(value)
            if not (math.isfinite(number) and number.is_integer()):
                raise refuse(number)
            value = int(number)
        if abs(value) > MAX_INT:
            raise ParameterError(name, f"must be {_allowed(meta, what)}{suffix} and at most {MAX_INT:.3g} in size, "
                                       f"got {_short(value)}")
    else:
        try:
            value = float(value)
        except OverflowError:  # e.g. 10**400
            raise ParameterError(name, f"must be {_allowed(meta, what.replace('a number', 'a finite number'))}"
                                       f"{suffix}, got {_short(value)} (too large for a float)") from None
        if math.isnan(value):
            raise refuse(value)
        if math.isinf(value):
            raise refuse(value, what.replace("a number", "a finite number"))
    if not _within(meta, value):
        raise refuse(value)
    _check_limits(name, meta, value)
    return value


def _is_numpy_bool(value: Any) -> bool:
    return type(value).__module__ == "numpy" and type(value).__name__ in ("bool_", "bool")


def _within(meta: dict, value: float) -> bool:
    return ((meta.get("ge") is None or value >= meta["ge"]) and (meta.get("gt") is None or value > meta["gt"])
            and (meta.get("le") is None or value <= meta["le"]) and (meta.get("lt") is None or value < meta["lt"]))


def _check_limits(name: str, meta: dict, value: float) -> None:
    """What the model can run (``effective_meta``), checked after the declared bounds."""
    unit = _unit(meta)
    largest, smallest = meta.get("limit_le"), meta.get("min_nonzero")
    if largest is not None and abs(value) > largest:
        raise ParameterError(name, f"must be at most {largest:g}{unit} in size (what the model can run), "
                                   f"got {_short(value)}")
    if smallest is not None and value != 0 and abs(value) < smallest:
        raise ParameterError(name, f"must be at least {smallest:g}{unit} (what the model can run), "
                                   f"got {_short(value)}")


def _short(value: Any) -> str:
    """``repr(value)``, cut to one short line (a 400-digit integer, a long list)."""
    text = " ".join(repr(value).split())
    if len(text) <= 60:
        return text
    return f"{text[:24]}...({len(text)} digits)" if isinstance(value, int) else f"{text[:50]}... ({len(text)} chars)"


def _check_field(f: dataclasses.Field, hint: Any, value: Any, meta: Any = None) -> Any:
    name, meta = f.name, (f.metadata if meta is None else meta)
    base, optional = _hint_parts(hint)
    none_hint = f", or none ({meta.get('none_means', 'unset')})" if optional else ""
    if value is None:
        if optional:
            return None
        raise ParameterError(name, "must be set (none is not allowed)")
    if typing.get_origin(base) is tuple:
        item = typing.get_args(base)[0]
        if isinstance(value, (list, range)):
            value = tuple(value)
        if not isinstance(value, tuple) or not value:
            raise ParameterError(name, f"must be a non-empty list of {item.__name__}{none_hint}, got {_short(value)}")
        if len(value) > MAX_LIST_ITEMS:
            raise ParameterError(name, f"must have at most {MAX_LIST_ITEMS} items, got {len(value)}")
        return tuple(_check_number(name, meta, item, v, f"{item.__name__}s") for v in value)
    if base in (int, float):
        what = "an integer" if base is int else "a number"
        return _check_number(name, meta, base, value, what, none_hint)
    if base is bool:
        if _is_numpy_bool(value):  # numpy's
            return bool(value)
        if not isinstance(value, bool):
            raise ParameterError(name, f"must be true or false, got {_short(value)}")
        return value
    if base is str:
        choices = meta.get("choices")
        if not isinstance(value, str) or (choices and value not in choices):
            allowed = f"one of {', '.join(choices)}" if choices else "a string"
            raise ParameterError(name, f"must be {allowed}, got {_short(value)}")
        return value
    if isinstance(base, type) and issubclass(base, Distribution):
        if not isinstance(value, Distribution):
            raise ParameterError(name, f"must be a distribution ({SPEC_HELP}), got {_short(value)}")
        mean = value.mean
        if not math.isfinite(mean):
            raise ParameterError(name, f"must have a finite mean, got {value.spec()} (mean {mean:g})")
        if not _within(meta, mean):
            raise ParameterError(name, f"must have a mean {_bounds_text(meta)}{_unit(meta)}, got {value.spec()} "
                                       f"(mean {mean:g})")
        return value
    return value


def _unit(meta: dict) -> str:
    return f" {meta['unit']}" if meta.get("unit") else ""


def _parse(name: str, hint: Any, meta: dict, text: str) -> Any:
    """Text from the command line -> a value of the field's type (validated afterwards)."""
    base, optional = _hint_parts(hint)
    raw = text.strip()
    if optional and raw.lower() in _NONE_WORDS:
        return None
    try:
        if typing.get_origin(base) is tuple:
            return _parse_list(raw, typing.get_args(base)[0], name)
        if base is int:
            try:
                return int(raw)
            except ValueError:
                number = float(raw)  # 1e6 is an integer too
            if not number.is_integer():
                raise ValueError
            return int(number)
        if base is float:
            return float(raw)
        if base is bool:
            low = raw.lower()
            if low in ("true", "yes", "1", "on"):
                return True
            if low in ("false", "no", "0", "off"):
                return False
            raise ValueError
    except ParameterError:
        raise
    except (ValueError, OverflowError):
        kinds = {int: "an integer", float: "a number", bool: "true or false"}
        what = kinds.get(base, f"a list of {_type_name(base)[8:]}s (A,B,C or START:STOP:STEP)")
        suffix = f", or none ({meta.get('none_means', 'unset')})" if optional else ""
        raise ParameterError(name, f"must be {what}{suffix}, got {text!r}") from None
    if isinstance(base, type) and issubclass(base, Distribution):
        return parse_distribution(raw, parameter=name)
    return raw


def _parse_list(raw: str, item: type, name: str = "list") -> tuple:
    def one(text: str):
        return item(float(text)) if item is float else int(float(text)) if "e" in text.lower() else int(text)

    if ":" in raw:
        parts = raw.split(":")
        if len(parts) != 3:
            raise ValueError
        start, stop, step = (one(p) for p in parts)
        if step <= 0 or stop < start or not all(math.isfinite(x) for x in (start, stop, step)):
            raise ValueError
        span = (stop - start) / step  # counted before expanding: 1:1000000000:1 is refused, not built
        if not span < MAX_LIST_ITEMS:
            raise ParameterError(name, f"the range {raw} has {span + 1:.6g} items; at most {MAX_LIST_ITEMS}")
        count = int(math.floor(span + 1e-9)) + 1
        # start + i * step, rounded so that 0.1:0.3:0.1 ends at 0.3 and not 0.30000000000000004
        return tuple(start + i * step if item is int else round(start + i * step, 12) for i in range(count))
    if not raw:
        return ()  # refused by the field check as an empty list
    items = raw.split(",")
    for position, text in enumerate(items, 1):
        if not text.strip():
            raise ParameterError(name, f"item {position} of {raw!r} is empty; write A,B,C or START:STOP:STEP")
    if len(items) > MAX_LIST_ITEMS:
        raise ParameterError(name, f"must have at most {MAX_LIST_ITEMS} items, got {len(items)}")
    return tuple(one(p.strip()) for p in items)
