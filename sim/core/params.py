"""Validated, frozen parameter objects: one per scenario.

A scenario's parameters are a frozen dataclass deriving from :class:`Params`, each field
declared with :func:`param` (default, unit, help, allowed range). From that one declaration
come the validation (on creation), the CLI's ``describe`` table and ``--set`` parsing, and
the JSON record of a run.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Iterable

from sim.core.distributions import SPEC_HELP, Distribution, parse_distribution
from sim.core.errors import ParameterError

_NONE_WORDS = {"none", "null", "unlimited", "inf", "infinite", "off"}


def param(default: Any, *, help: str, unit: str = "", ge: float | None = None, gt: float | None = None,
          le: float | None = None, lt: float | None = None, choices: Iterable[str] | None = None,
          none_means: str = "unset", cli: bool = True) -> Any:
    """Declare one parameter field.

    ``ge``/``gt``/``le``/``lt`` bound numbers (and every item of a tuple); ``choices`` lists
    the allowed strings; ``none_means`` says what ``None`` stands for (e.g. ``unlimited``).
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


@dataclass(frozen=True)
class Params:
    """Base class of every scenario's parameters (see the module docstring)."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            coerced = _check_field(f, hints[f.name], value)
            if coerced is not value:
                object.__setattr__(self, f.name, coerced)
        self.validate()

    def validate(self) -> None:
        """Cross-field checks; override and raise :class:`ParameterError`."""

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
            allowed = []
            if meta.get("choices"):
                allowed.append("one of " + ", ".join(meta["choices"]))
            elif base is bool:
                allowed.append("true or false")
            elif isinstance(base, type) and issubclass(base, Distribution):
                allowed.append(SPEC_HELP)
            else:
                bounds = _bounds_text(meta)
                if bounds:
                    allowed.append(("each " if typing.get_origin(base) is tuple else "") + bounds)
                if typing.get_origin(base) is tuple:
                    allowed.append("as A,B,C or START:STOP:STEP (STOP included)")
            if optional:
                allowed.append(f"or none ({meta.get('none_means', 'unset')})")
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            out.append(ParamInfo(f.name, _type_name(base), _show(default), meta.get("unit", ""),
                                 " ".join(allowed) or "any", meta.get("help", "")))
        return out

    # --- records ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (distributions as their text form, tuples as lists)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def replace(self, **changes: Any):
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)


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
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ParameterError(name, f"must be {_allowed(meta, what)}{suffix}, got {value!r}")
    else:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise ParameterError(name, f"must be {_allowed(meta, what)}{suffix}, got {value!r}")
        value = float(value)
        if math.isinf(value):
            finite = what.replace("a number", "a finite number")
            raise ParameterError(name, f"must be {_allowed(meta, finite)}{suffix}, got {value!r}")
    ok = ((meta.get("ge") is None or value >= meta["ge"]) and (meta.get("gt") is None or value > meta["gt"])
          and (meta.get("le") is None or value <= meta["le"]) and (meta.get("lt") is None or value < meta["lt"]))
    if not ok:
        raise ParameterError(name, f"must be {_allowed(meta, what)}{suffix}, got {value!r}")
    return value


def _check_field(f: dataclasses.Field, hint: Any, value: Any) -> Any:
    name, meta = f.name, f.metadata
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
            raise ParameterError(name, f"must be a non-empty list of {item.__name__}{none_hint}, got {value!r}")
        return tuple(_check_number(name, meta, item, v, f"{item.__name__}s") for v in value)
    if base in (int, float):
        what = "an integer" if base is int else "a number"
        return _check_number(name, meta, base, value, what, none_hint)
    if base is bool:
        if not isinstance(value, bool):
            raise ParameterError(name, f"must be true or false, got {value!r}")
        return value
    if base is str:
        choices = meta.get("choices")
        if not isinstance(value, str) or (choices and value not in choices):
            allowed = f"one of {', '.join(choices)}" if choices else "a string"
            raise ParameterError(name, f"must be {allowed}, got {value!r}")
        return value
    if isinstance(base, type) and issubclass(base, Distribution):
        if not isinstance(value, Distribution):
            raise ParameterError(name, f"must be a distribution ({SPEC_HELP}), got {value!r}")
        return value
    return value


def _parse(name: str, hint: Any, meta: dict, text: str) -> Any:
    """Text from the command line -> a value of the field's type (validated afterwards)."""
    base, optional = _hint_parts(hint)
    raw = text.strip()
    if optional and raw.lower() in _NONE_WORDS:
        return None
    try:
        if typing.get_origin(base) is tuple:
            return _parse_list(raw, typing.get_args(base)[0])
        if base is int:
            number = float(raw)
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
    except (ValueError, OverflowError):
        kinds = {int: "an integer", float: "a number", bool: "true or false"}
        what = kinds.get(base, f"a list of {_type_name(base)[8:]}s (A,B,C or START:STOP:STEP)")
        suffix = f", or none ({meta.get('none_means', 'unset')})" if optional else ""
        raise ParameterError(name, f"must be {what}{suffix}, got {text!r}") from None
    if isinstance(base, type) and issubclass(base, Distribution):
        return parse_distribution(raw, parameter=name)
    return raw


def _parse_list(raw: str, item: type) -> tuple:
    if ":" in raw:
        parts = raw.split(":")
        if len(parts) != 3:
            raise ValueError
        start, stop, step = (item(float(p)) if item is float else int(p) for p in parts)
        if step <= 0 or stop < start:
            raise ValueError
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        # start + i * step, rounded so that 0.1:0.3:0.1 ends at 0.3 and not 0.30000000000000004
        return tuple(start + i * step if item is int else round(start + i * step, 12) for i in range(count))
    return tuple(item(float(p)) if item is float else int(p) for p in raw.split(",") if p.strip())
