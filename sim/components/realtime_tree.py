"""A Firebase-Realtime-Database-like JSON tree with path listeners (course question 1).

What it reproduces (each point from ``data/firebase_rtdb.json`` and its sources):

* **one JSON tree**: ``set`` (``None`` removes), ``update`` (several paths, atomic: all or
  nothing), ``remove``, ``push`` (chronologically ordered push ids: 8 characters of milliseconds,
  12 random ones incremented within the same millisecond, as the JS SDK's ``nextPushId``),
  transactions (compare-and-set, retried by the client with the server's current value);
  arrays are stored as objects keyed by index and empty objects do not exist, as in RTDB;
* **listeners** on a path for ``value`` (the whole subtree at the listener's path, again on every
  change at or below it) and ``child_added/changed/removed/moved``, optionally through a query
  (``order_by_child`` + ``limit_to_last``); every event records the bytes of the snapshot handed
  to the application, and the server records the bytes it put on the wire;
* **security rules** ``.read``/``.write`` that cascade top-down (a grant at a parent cannot be
  revoked deeper) and ``.validate`` (non-cascading, every one must pass, ignored for deletes);
  rules are not filters: reading a parent with no grant at or above it is denied;
* **the wire**: like the SDK's persistent connection, the server pushes *the written data at
  its path* (action ``d``/``m``) to every listener at, above or below it; the client SDK merges it
  into its cache and raises the events (so an ancestor listener pays on the wire for every
  change below it, and its callback is handed its whole subtree each time);
* **latency compensation**: the client applies its own write locally first and raises local
  events at once; the server's ``ok`` confirms it, a rejection rolls it back (events fire again
  with the server's data); writes made while offline wait in order in a queue and are sent on
  reconnection; ``onDisconnect`` operations are stored by the server (checked against the rules
  when set and again when run) and executed when the connection closes or times out;
* **limits**: connections per database (refused beyond), writes per second per database
  (sustained: writes wait in the database's queue, so latency grows without bound beyond it),
  path depth, key length and size of one write (rejected).

Not modelled (the notebook says so): server timestamps, priorities, ``equalTo``/``startAt``
ranges, disk persistence of the client cache, auth token expiry, sharding across databases.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from sim import data
from sim.components.server import Server, ServerSpec
from sim.core.distributions import Constant
from sim.core.errors import ParameterError, UserError
from sim.core.timer import Timer
from sim.core.timer import cancel as cancel_timer

Path = tuple[str, ...]
_FORBIDDEN_KEY = re.compile(r"[.$#\[\]/\x00-\x1f\x7f]")


class PathError(UserError, ValueError):
    """A path the database would refuse (bad key, too deep, wrong syntax)."""


class RuleError(UserError, ValueError):
    """A security rule that does not parse, or uses something the rules language lacks."""


def presets() -> dict:
    """The documented limits and defaults of Firebase RTDB (``data/firebase_rtdb.json``)."""
    return data.load("firebase_rtdb")


_LIMITS = presets()["limits"]
MAX_DEPTH: int = _LIMITS["max_depth"]["value"]
"""Each path must be less than this many levels deep."""
MAX_KEY_BYTES: int = _LIMITS["key_length_bytes"]["value"]


# ============================================================================== paths ====
def parse_path(path: str | Iterable[str]) -> Path:
    """``"/a/b"`` (or ``("a", "b")``) -> ``("a", "b")``; the root is ``"/"`` or ``""``.

    Raises :class:`PathError` for keys RTDB refuses (``. $ # [ ] /``, control characters,
    longer than 768 bytes, empty segments) and for paths 32 or more levels deep."""
    if isinstance(path, str):
        text = path.strip()
        if "//" in text:
            raise PathError(f"path {path!r}: empty segment ('//') is not allowed")
        parts = tuple(p for p in text.split("/") if p != "")
    else:
        parts = tuple(path)
    for key in parts:
        if not isinstance(key, str) or key == "":
            raise PathError(f"path {path!r}: keys must be non-empty strings")
        if _FORBIDDEN_KEY.search(key):
            raise PathError(f"path {path!r}: key {key!r} contains one of . $ # [ ] / or a control character")
        if len(key.encode("utf-8")) > MAX_KEY_BYTES:
            raise PathError(f"path {path!r}: a key is longer than {MAX_KEY_BYTES} bytes")
    if len(parts) >= MAX_DEPTH:
        raise PathError(f"path {path!r}: {len(parts)} levels; each path must be less than {MAX_DEPTH} levels deep")
    return parts


def path_text(path: Path) -> str:
    return "/" + "/".join(path)


def _wire(obj: Any) -> Any:
    """How the protocol's objects look on the wire, for byte counts."""
    if isinstance(obj, Query):
        return {k: v for k, v in (("o", obj.order_by_child), ("l", obj.limit_to_last)) if v is not None}
    if isinstance(obj, Write):
        return {"r": obj.id, "b": {"/".join(p): v for p, v in obj.paths.items()}}
    raise TypeError(type(obj).__name__)


def json_bytes(value: Any) -> int:
    """Size of ``value`` as compact JSON (UTF-8), the unit of every byte count here."""
    return len(json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False,
                          default=_wire).encode("utf-8"))


def normalize(value: Any) -> Any:
    """A JSON value as RTDB stores it: lists become objects keyed by index, ``None`` children and
    empty objects vanish (``None`` means "nothing here")."""
    if isinstance(value, (list, tuple)):
        value = {str(i): v for i, v in enumerate(value)}
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            parse_path((str(k),))
            nv = normalize(v)
            if nv is not None:
                out[str(k)] = nv
        return out or None
    if value is None or isinstance(value, (str, bool, int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise PathError(f"value {value!r}: numbers must be finite")
        return value
    raise PathError(f"value {value!r}: only JSON values (objects, arrays, strings, numbers, booleans) can be stored")


def get_in(root: Any, path: Path) -> Any:
    node = root
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
        if node is None:
            return None
    return node


def set_in(root: Any, path: Path, value: Any) -> Any:
    """A new root with ``value`` at ``path`` (copy-on-write along the path; old roots stay valid)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    node = dict(root) if isinstance(root, dict) else {}
    child = set_in(node.get(head), rest, value)
    if child is None:
        node.pop(head, None)
    else:
        node[head] = child
    return node or None


def related(a: Path, b: Path) -> bool:
    """True if one path is at or below the other."""
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def depth(value: Any) -> int:
    if not isinstance(value, dict):
        return 0
    return 1 + max((depth(v) for v in value.values()), default=0)


# ========================================================================== push ids ====
PUSH_CHARS = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"


class PushIdGenerator:
    """Push ids as the JS SDK makes them (``nextPushId`` in ``core/util/NextPushId.ts``):
    8 characters of the time in ms (so ids sort chronologically) then 12 random characters,
    incremented by one when two ids are made in the same millisecond (so they still sort)."""

    def __init__(self, uniform: Callable[[], float], epoch_s: float = 1_767_225_600.0) -> None:
        self.uniform = uniform
        self.epoch_s = epoch_s
        """Wall-clock time of simulated time 0 (default 2026-01-01 UTC), so ids look like real ones."""
        self.last_ms = -1
        self.last_rand = [0] * 12

    def next(self, now_s: float) -> str:
        ms = int((self.epoch_s + now_s) * 1000)
        if ms == self.last_ms:
            i = 11
            while i >= 0 and self.last_rand[i] == 63:
                self.last_rand[i] = 0
                i -= 1
            self.last_rand[i] += 1
        else:
            self.last_rand = [int(self.uniform() * 64) for _ in range(12)]
        self.last_ms = ms
        t, stamp = ms, []
        for _ in range(8):
            stamp.append(PUSH_CHARS[t % 64])
            t //= 64
        return "".join(reversed(stamp)) + "".join(PUSH_CHARS[r] for r in self.last_rand)


# ========================================================================= queries ====
def _sort_rank(v: Any) -> tuple:
    """RTDB's orderByChild order: null, false, true, numbers, strings, objects."""
    if v is None:
        return (0,)
    if v is False:
        return (1,)
    if v is True:
        return (2,)
    if isinstance(v, (int, float)):
        return (3, v)
    if isinstance(v, str):
        return (4, v)
    return (5,)


@dataclass(frozen=True)
class Query:
    """``orderByChild(order_by_child)`` then ``limitToLast(limit_to_last)`` (either optional)."""

    order_by_child: str | None = None
    limit_to_last: int | None = None

    def __post_init__(self) -> None:
        if self.order_by_child is not None:
            parse_path(self.order_by_child)
        if self.limit_to_last is not None and (isinstance(self.limit_to_last, bool)
                                               or not isinstance(self.limit_to_last, int) or self.limit_to_last < 1):
            raise ParameterError("limit_to_last", f"must be an integer >= 1, got {self.limit_to_last!r}")

    def ordered(self, value: Any) -> list[tuple[str, Any]]:
        """The children of ``value`` in query order, cut to the window."""
        if not isinstance(value, dict):
            return []
        if self.order_by_child is None:
            items = sorted(value.items())
        else:
            child = parse_path(self.order_by_child)
            items = sorted(value.items(), key=lambda kv: (_sort_rank(get_in(kv[1], child)), kv[0]))
        if self.limit_to_last is not None:
            items = items[-self.limit_to_last:]
        return items

    def window(self, value: Any) -> Any:
        """What a listener through this query sees of ``value``."""
        if self.order_by_child is None and self.limit_to_last is None:
            return value
        return dict(self.ordered(value)) or None


NO_QUERY = Query()


# ============================================================================ events ====
@dataclass(frozen=True)
class Event:
    """One event raised to an application callback."""

    type: str
    """``value``, ``child_added``, ``child_changed``, ``child_removed``, ``child_moved`` or ``cancel``."""
    path: Path
    """The listener's path (for child events, the parent's)."""
    key: str | None
    value: Any
    previous: str | None
    """previousChildName: the key before this child in query order (``None`` = first)."""
    snapshot_bytes: int
    """Bytes of the snapshot handed to the callback."""
    time: float
    local: bool
    """Raised by latency compensation (the client's own write, not yet confirmed)."""


EVENT_TYPES = ("value", "child_added", "child_changed", "child_removed", "child_moved")


def diff_events(event_type: str, path: Path, query: Query, old: Any, new: Any, time: float, local: bool,
                initial: bool = False) -> list[Event]:
    """Events a listener of ``event_type`` raises when its view goes from ``old`` to ``new``
    (both already through the query's window)."""
    if event_type == "value":
        if initial or old != new:
            return [Event("value", path, path[-1] if path else None, new, None, json_bytes(new), time, local)]
        return []
    old_items = query.ordered(old)
    new_items = query.ordered(new)
    old_map, new_map = dict(old_items), dict(new_items)
    new_keys = [k for k, _ in new_items]
    prev_of = {k: (new_keys[i - 1] if i else None) for i, k in enumerate(new_keys)}
    out = []
    if event_type == "child_removed":
        for k, v in old_items:
            if k not in new_map:
                out.append(Event(event_type, path, k, v, None, json_bytes(v), time, local))
    elif event_type == "child_added":
        for k, v in new_items:
            if k not in old_map:
                out.append(Event(event_type, path, k, v, prev_of[k], json_bytes(v), time, local))
    elif event_type == "child_changed":
        for k, v in new_items:
            if k in old_map and old_map[k] != v:
                out.append(Event(event_type, path, k, v, prev_of[k], json_bytes(v), time, local))
    elif event_type == "child_moved":
        # as the SDK's EventGenerator: a child that changed and whose indexed (sort) value changed
        if query.order_by_child is not None:
            child = parse_path(query.order_by_child)
            for k, v in new_items:
                if k in old_map and old_map[k] != v and get_in(old_map[k], child) != get_in(v, child):
                    out.append(Event(event_type, path, k, v, prev_of[k], json_bytes(v), time, local))
    else:
        raise ParameterError("event_type", f"must be one of {', '.join(EVENT_TYPES)}, got {event_type!r}")
    return out


# ============================================================================= rules ====
class RuleSnapshot:
    """``data``, ``newData`` and ``root`` inside a rule: a read-only view of a tree at a path."""

    __slots__ = ("_root", "_path")

    def __init__(self, root: Any, path: Path) -> None:
        self._root = root
        self._path = path

    def _value(self) -> Any:
        return get_in(self._root, self._path)

    def val(self):
        return self._value()

    def exists(self) -> bool:
        return self._value() is not None

    def child(self, rel: str) -> "RuleSnapshot":
        return RuleSnapshot(self._root, self._path + parse_path(str(rel)))

    def parent(self) -> "RuleSnapshot":
        return RuleSnapshot(self._root, self._path[:-1])

    def hasChild(self, rel: str) -> bool:  # noqa: N802 — the rules language's names
        return self.child(rel).exists()

    def hasChildren(self, keys: list | None = None) -> bool:  # noqa: N802
        v = self._value()
        if not isinstance(v, dict):
            return False
        return all(k in v for k in keys) if keys is not None else bool(v)

    def isString(self) -> bool:  # noqa: N802
        return isinstance(self._value(), str)

    def isNumber(self) -> bool:  # noqa: N802
        v = self._value()
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def isBoolean(self) -> bool:  # noqa: N802
        return isinstance(self._value(), bool)


class _Auth:
    """``auth`` in a rule: ``None`` when signed out, else ``uid`` and ``token`` claims."""

    __slots__ = ("uid", "token")

    def __init__(self, uid: str, token: dict) -> None:
        self.uid = uid
        self.token = _Claims(token)


class _Claims:
    __slots__ = ("_claims",)

    def __init__(self, claims: dict) -> None:
        self._claims = claims

    def __getattr__(self, name: str):
        return self._claims.get(name)


_SNAPSHOT_METHODS = {"val", "exists", "child", "parent", "hasChild", "hasChildren", "isString", "isNumber", "isBoolean"}
_STRING_METHODS = {"contains": lambda s, x: x in s, "beginsWith": lambda s, x: s.startswith(x),
                   "endsWith": lambda s, x: s.endswith(x), "toLowerCase": str.lower, "toUpperCase": str.upper}


def _translate(expr: str) -> str:
    """RTDB rule syntax (JavaScript-like) -> a Python expression for :mod:`ast` to parse."""
    out, i, n = [], 0, len(expr)
    while i < n:
        c = expr[i]
        if c in "'\"":  # copy string literals untouched
            j = i + 1
            while j < n and expr[j] != c:
                j += 2 if expr[j] == "\\" else 1
            if j >= n:
                raise RuleError(f"rule {expr!r}: unterminated string")
            out.append(expr[i:j + 1])
            i = j + 1
            continue
        two, three = expr[i:i + 2], expr[i:i + 3]
        if three in ("===", "!=="):
            out.append(" == " if three == "===" else " != ")
            i += 3
        elif two == "&&":
            out.append(" and ")
            i += 2
        elif two == "||":
            out.append(" or ")
            i += 2
        elif two in ("==", "!=", "<=", ">="):
            out.append(two)
            i += 2
        elif c == "!":
            out.append(" not ")
            i += 1
        elif c == "$":
            out.append("_var_")
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


_ALLOWED_NODES = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.Compare,
                  ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Name, ast.Load, ast.Attribute, ast.Call,
                  ast.Constant, ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Mod, ast.List)


class Rule:
    """One compiled rule expression (``true``, ``false`` or an expression string)."""

    __slots__ = ("text", "_tree")

    def __init__(self, text: str | bool, scope: Iterable[str] = ()) -> None:
        if isinstance(text, bool):
            text = "true" if text else "false"
        if not isinstance(text, str):
            raise RuleError(f"rule {text!r}: must be a string or a boolean")
        self.text = text
        try:
            tree = ast.parse(_translate(text).strip(), mode="eval")
        except SyntaxError as err:
            raise RuleError(f"rule {text!r} does not parse: {err.msg}") from None
        for node in ast.walk(tree):
            if not isinstance(node, _ALLOWED_NODES):
                raise RuleError(f"rule {text!r}: {type(node).__name__} is not part of the rules language")
            if isinstance(node, ast.Name) and node.id not in ("auth", "data", "newData", "root", "now", "true",
                                                               "false", "null"):
                if node.id.startswith("_var_") and node.id[5:] in scope:
                    continue
                shown = "$" + node.id[5:] if node.id.startswith("_var_") else node.id
                raise RuleError(f"rule {text!r}: unknown variable {shown!r}")
        self._tree = tree.body

    def evaluate(self, env: dict) -> bool:
        try:
            return self._eval(self._tree, env) is True
        except (TypeError, AttributeError, KeyError, ZeroDivisionError, PathError):
            return False  # an error in a rule denies, as in RTDB

    def _eval(self, node, env):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in ("true", "false"):
                return node.id == "true"
            if node.id == "null":
                return None
            return env[node.id]
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                return all(self._eval(v, env) is True for v in node.values)
            return any(self._eval(v, env) is True for v in node.values)
        if isinstance(node, ast.UnaryOp):
            v = self._eval(node.operand, env)
            return (v is not True) if isinstance(node.op, ast.Not) else -v
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, env)
            for op, right_node in zip(node.ops, node.comparators):
                right = self._eval(right_node, env)
                ok = {ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Lt: lambda a, b: a < b,
                      ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b,
                      ast.GtE: lambda a, b: a >= b}[type(op)](left, right)
                if not ok:
                    return False
                left = right
            return True
        if isinstance(node, ast.BinOp):
            a, b = self._eval(node.left, env), self._eval(node.right, env)
            return {ast.Add: lambda: a + b, ast.Sub: lambda: a - b, ast.Mult: lambda: a * b,
                    ast.Div: lambda: a / b, ast.Mod: lambda: a % b}[type(node.op)]()
        if isinstance(node, ast.List):
            return [self._eval(e, env) for e in node.elts]
        if isinstance(node, ast.Attribute):
            obj = self._eval(node.value, env)
            if node.attr == "length" and isinstance(obj, str):
                return len(obj)
            if obj is None:
                raise TypeError("attribute of null")
            if isinstance(obj, (_Auth, _Claims)):
                return getattr(obj, node.attr)
            raise TypeError(f"no attribute {node.attr}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            obj = self._eval(node.func.value, env)
            args = [self._eval(a, env) for a in node.args]
            name = node.func.attr
            if isinstance(obj, RuleSnapshot) and name in _SNAPSHOT_METHODS:
                return getattr(obj, name)(*args)
            if isinstance(obj, str) and name in _STRING_METHODS:
                return _STRING_METHODS[name](obj, *args)
            raise TypeError(f"no method {name}")
        raise TypeError(type(node).__name__)


class Rules:
    """Security rules in RTDB's JSON form: ``{"rules": {"rooms": {"$room": {".read": "..."}}}}``.

    ``.read``/``.write`` cascade: access is granted if *any* rule on the way from the root to the
    path says so (a deeper ``false`` cannot revoke it). ``.validate`` does not cascade: every
    ``.validate`` on a non-null node being written must pass; deletes are not validated.
    """

    def __init__(self, spec: dict | None) -> None:
        if spec is None:
            spec = {"rules": {".read": True, ".write": True}}
        if not isinstance(spec, dict) or "rules" not in spec or not isinstance(spec["rules"], dict):
            raise RuleError('rules must be a JSON object {"rules": {...}}')
        self.tree = self._compile(spec["rules"], (), ())

    def _compile(self, node: dict, at: Path, scope: tuple[str, ...]) -> dict:
        out: dict = {}
        wildcard = None
        for key, value in node.items():
            if key in (".read", ".write", ".validate"):
                out[key] = Rule(value, scope)
            elif key == ".indexOn":
                continue
            elif key.startswith("."):
                raise RuleError(f"rules at {path_text(at)}: unknown rule {key!r} (use .read, .write, .validate, .indexOn)")
            elif not isinstance(value, dict):
                raise RuleError(f"rules at {path_text(at + (key,))}: must be an object of rules")
            elif key.startswith("$"):
                if wildcard is not None:
                    raise RuleError(f"rules at {path_text(at)}: two wildcards ({wildcard}, {key}) at one level")
                wildcard = key
                out["$"] = (key[1:], self._compile(value, at + (key,), scope + (key[1:],)))
            else:
                parse_path((key,))
                out.setdefault("children", {})[key] = self._compile(value, at + (key,), scope)
        return out

    def _nodes(self, path: Path) -> Iterable[tuple[int, dict, dict]]:
        """(depth, rule node, captured $variables) from the root down along ``path``."""
        node, variables = self.tree, {}
        yield 0, node, dict(variables)
        for i, key in enumerate(path):
            child = node.get("children", {}).get(key)
            if child is None and "$" in node:
                name, child = node["$"]
                variables[f"_var_{name}"] = key
            if child is None:
                return
            node = child
            yield i + 1, node, dict(variables)

    def _env(self, auth, root, new_root, path, variables, now):
        env = {"auth": None if auth is None else _Auth(auth.get("uid"), auth),
               "data": RuleSnapshot(root, path), "newData": RuleSnapshot(new_root, path),
               "root": RuleSnapshot(root, ()), "now": int(now * 1000)}
        env.update(variables)
        return env

    def can_read(self, path: Path, auth: dict | None, root: Any, now: float = 0.0) -> bool:
        for d, node, variables in self._nodes(path):
            rule = node.get(".read")
            if rule is not None and rule.evaluate(self._env(auth, root, root, path[:d], variables, now)):
                return True
        return False

    def can_write(self, path: Path, auth: dict | None, root: Any, new_root: Any, now: float = 0.0) -> bool:
        granted = False
        for d, node, variables in self._nodes(path):
            rule = node.get(".write")
            if rule is not None and rule.evaluate(self._env(auth, root, new_root, path[:d], variables, now)):
                granted = True
                break
        return granted and self._validate(path, auth, root, new_root, now)

    def _validate(self, path: Path, auth, root, new_root, now) -> bool:
        # every .validate on the path from the root to the written node, then below it in the new data
        last = None
        for d, node, variables in self._nodes(path):
            last = (d, node, variables)
            rule = node.get(".validate")
            at = path[:d]
            if rule is not None and get_in(new_root, at) is not None:
                if not rule.evaluate(self._env(auth, root, new_root, at, variables, now)):
                    return False
        if last is None or last[0] != len(path):
            return True
        return self._validate_below(path, last[1], last[2], auth, root, new_root, now)

    def _validate_below(self, at: Path, node: dict, variables: dict, auth, root, new_root, now) -> bool:
        value = get_in(new_root, at)
        if not isinstance(value, dict):
            return True
        for key in value:
            child = node.get("children", {}).get(key)
            child_vars = variables
            if child is None and "$" in node:
                name, child = node["$"]
                child_vars = {**variables, f"_var_{name}": key}
            if child is None:
                continue
            rule = child.get(".validate")
            if rule is not None and not rule.evaluate(self._env(auth, root, new_root, at + (key,), child_vars, now)):
                return False
            if not self._validate_below(at + (key,), child, child_vars, auth, root, new_root, now):
                return False
        return True


# ====================================================================== the database ====
@dataclass(frozen=True)
class Write:
    """One write as it travels: ``paths`` maps each path to its new value (``None`` removes)."""

    id: int
    client: str
    paths: dict
    kind: str = "set"
    """``set``, ``update``, ``remove``, ``push`` or ``transaction``."""
    expected: Any = None
    """For transactions: the value the client based its new value on (compare-and-set)."""
    sent_at: float = 0.0


def make_write(id: int, client: str, kind: str, path: str | Path, value: Any = None, sent_at: float = 0.0,
               expected: Any = None) -> Write:
    """A validated :class:`Write`: ``update`` takes ``{relative path: value}``; others one value."""
    base = parse_path(path)
    if kind == "update":
        if not isinstance(value, dict) or not value:
            raise PathError("update takes a non-empty object of {relative path: value}")
        paths = {}
        for rel, v in value.items():
            full = base + parse_path(rel)
            paths[full] = normalize(v)
        keys = list(paths)
        for i, a in enumerate(keys):  # RTDB refuses overlapping paths in one update
            for b in keys[i + 1:]:
                if related(a, b):
                    raise PathError(f"update: paths {path_text(a)} and {path_text(b)} overlap")
    elif kind == "remove":
        paths = {base: None}
    else:
        paths = {base: normalize(value)}
    for p, v in paths.items():
        if len(p) + depth(v) >= MAX_DEPTH:
            raise PathError(f"write at {path_text(p)}: data would be {len(p) + depth(v)} levels deep "
                            f"(each path must be less than {MAX_DEPTH})")
    return Write(id, client, paths, kind, expected, sent_at)


class Database:
    """The authoritative tree, its rules and the writes' commit (no network: see :class:`RealtimeServer`)."""

    def __init__(self, rules: dict | None = None, *, max_write_bytes: int | None = None) -> None:
        self.root: Any = None
        self.rules = Rules(rules)
        self.max_write_bytes = max_write_bytes if max_write_bytes is not None else \
            _LIMITS["single_write_bytes_sdk"]["value"]
        self.version = 0
        """Number of writes committed."""

    def get(self, path: str | Path) -> Any:
        return get_in(self.root, parse_path(path))

    def check(self, write: Write, auth: dict | None, now: float = 0.0) -> tuple[str, Any]:
        """``("ok", new_root)`` or ``(reason, current value)`` — nothing is changed."""
        size = sum(json_bytes(v) for v in write.paths.values())
        if size > self.max_write_bytes:
            return "write_too_big", None
        if write.kind == "transaction":
            (p, _), = write.paths.items()
            current = get_in(self.root, p)
            if current != write.expected:
                return "datastale", current
        new_root = self.root
        for p, v in write.paths.items():
            new_root = set_in(new_root, p, v)
        for p in write.paths:
            if not self.rules.can_write(p, auth, self.root, new_root, now):
                return "permission_denied", None
        return "ok", new_root

    def commit(self, new_root: Any) -> None:
        self.root = new_root
        self.version += 1


class _Listen:
    __slots__ = ("client", "path", "query", "tag")

    def __init__(self, client: str, path: Path, query: Query, tag: int) -> None:
        self.client, self.path, self.query, self.tag = client, path, query, tag


class RealtimeServer:
    """The database behind its network address: connections, listens, writes through the
    database's write queue (``write_rate`` per second sustained) and ``commit_latency`` before
    the write is durable and acknowledged, ``onDisconnect`` operations.

    It drives a :class:`~sim.components.server.Server` (connection limit, close and reset
    frames) with ``on_data``; clients talk to it with :class:`RealtimeClient`."""

    def __init__(self, ctx, name: str, network, database: Database, *, max_connections: int | None = None,
                 write_rate: float | None = None, commit_latency=None, idle_timeout: float = 60.0) -> None:
        self.ctx, self.env, self.name, self.network = ctx, ctx.env, name, network
        self.db = database
        self.server = TrackingServer(ctx, name, ServerSpec(max_connections=max_connections), network,
                                      on_data=self._on_data, on_gone=self._connection_gone)
        self.write_rate = write_rate
        self.commit_latency = (commit_latency or Constant(0.0)).bind(ctx.rng(f"rtdb.{name}.commit"))
        self.idle_timeout = idle_timeout
        self.auth: dict[str, dict | None] = {}
        self.listens: dict[str, dict[int, _Listen]] = {}
        self.on_disconnect_ops: dict[str, list[Write]] = {}
        self._queue: deque = deque()
        self._busy = False
        self._commit_timer: Timer | None = None  # the commit in progress (cancelled by a crash)
        m = ctx.metrics
        self.m_writes = m.counter("rtdb_writes_total", "Writes by outcome", ("server", "outcome"))
        self.m_wire = m.counter("rtdb_wire_bytes_total", "Bytes pushed to listeners", ("server",)).labels(server=name)
        self.m_pushes = m.counter("rtdb_pushes_total", "Data messages pushed to listeners",
                                  ("server",)).labels(server=name)
        self.m_queue = m.gauge("rtdb_write_queue", "Writes waiting for the database", ("server",),
                               track=True).labels(server=name)
        self.m_commit = m.histogram("rtdb_write_wait_seconds", "Receipt to commit of a write",
                                    ("server",)).labels(server=name)
        if idle_timeout:
            self.env.process(self._sweeper())

    # --- messages from clients -------------------------------------------------------------
    def _send(self, client: str, msg: dict) -> None:
        self.server.send_to(client, msg, json_bytes(msg))

    def _on_data(self, _server, client: str, msg: dict) -> None:
        kind = msg["a"]
        if kind == "auth":
            self.auth[client] = msg["cred"]
            self._send(client, {"a": "auth_ok"})
        elif kind == "listen":
            self._listen(client, msg)
        elif kind == "unlisten":
            self.listens.get(client, {}).pop(msg["tag"], None)
        elif kind == "write":
            self._enqueue(client, msg["w"], on_disconnect=False)
        elif kind == "on_disconnect":
            w: Write = msg["w"]
            # checked when set (and again when run, in _run_on_disconnect)
            status, _ = self.db.check(w, self.auth.get(client), self.env.now)
            if status == "ok":
                self.on_disconnect_ops.setdefault(client, []).append(w)
            self._send(client, {"a": "od_ack", "id": w.id, "status": status})
        elif kind == "on_disconnect_cancel":
            self.on_disconnect_ops.pop(client, None)

    def _listen(self, client: str, msg: dict) -> None:
        path, query, tag = msg["path"], msg["query"], msg["tag"]
        if not self.db.rules.can_read(path, self.auth.get(client), self.db.root, self.env.now):
            self._send(client, {"a": "cancel", "tag": tag, "reason": "permission_denied"})
            return
        self.listens.setdefault(client, {})[tag] = _Listen(client, path, query, tag)
        value = query.window(get_in(self.db.root, path))
        out = {"a": "d", "tag": tag, "p": path, "d": value, "full": True}
        self.m_wire.inc(json_bytes(out))
        self._send(client, out)

    # --- the write queue ---------------------------------------------------------------------
    def _enqueue(self, client: str, write: Write, on_disconnect: bool) -> None:
        self._queue.append((client, write, on_disconnect, self.env.now))
        self.m_queue.set(len(self._queue))
        if not self._busy:
            self._next()

    def _next(self, _e=None) -> None:
        if not self._queue:
            self._busy = False
            return
        self._busy = True
        service = 0.0 if self.write_rate is None else 1.0 / self.write_rate
        self._commit_timer = Timer(self.env, service, self._apply_head)

    def _apply_head(self) -> None:
        client, write, on_disconnect, arrived = self._queue.popleft()
        self.m_queue.set(len(self._queue))
        auth = self.auth.get(client)
        status, extra = self.db.check(write, auth, self.env.now)
        if status == "ok":
            old_root = self.db.root
            self.db.commit(extra)
            self.m_commit.observe(self.env.now - arrived)
            self._broadcast(write, old_root)
            if not on_disconnect:
                done = self.env.timeout(self.commit_latency.sample(), (client, write))
                done.callbacks.append(lambda e: self._send(e.value[0], {"a": "ok", "id": e.value[1].id}))
        elif not on_disconnect:
            self._send(client, {"a": "nack", "id": write.id, "status": status, "current": extra})
        self.m_writes.labels(server=self.name, outcome=status if not on_disconnect else f"on_disconnect_{status}").inc()
        self._next()

    def _broadcast(self, write: Write, old_root: Any) -> None:
        """Push the written data at its path to every listen at, above or below it."""
        root = self.db.root
        for client, listens in self.listens.items():
            for listen in list(listens.values()):
                touched = [p for p in write.paths if related(p, listen.path)]
                if not touched:
                    continue
                if not self.db.rules.can_read(listen.path, self.auth.get(client), root, self.env.now):
                    del listens[listen.tag]
                    self._send(client, {"a": "cancel", "tag": listen.tag, "reason": "permission_denied"})
                    continue
                if listen.query != NO_QUERY:
                    # a query: the server sends what changed in the listener's window (children
                    # that entered or changed, and null for those that left it)
                    old = listen.query.window(get_in(old_root, listen.path)) or {}
                    new = listen.query.window(get_in(root, listen.path)) or {}
                    if old == new:
                        continue
                    parts = {listen.path + (k,): v for k, v in new.items() if old.get(k) != v}
                    parts.update({listen.path + (k,): None for k in old if k not in new})
                    if not isinstance(old, dict) or not isinstance(new, dict):
                        parts = {listen.path: new or None}
                    msg = {"a": "m", "tag": listen.tag, "parts": [(list(p), v) for p, v in parts.items()]}
                else:
                    # the SDK's 'm' (merge) / 'd' (put) action: written data at its path, clipped to the listen
                    parts = {}
                    for p in touched:
                        if len(p) >= len(listen.path):
                            parts[p] = write.paths[p]
                        else:  # written above the listen: only the part at the listen's path
                            parts[listen.path] = get_in(root, listen.path)
                    msg = {"a": "m", "tag": listen.tag, "parts": [(list(p), v) for p, v in parts.items()]}
                size = json_bytes(msg)
                self.m_wire.inc(size)
                self.m_pushes.inc()
                self.server.send_to(client, msg, size)

    # --- connection loss: onDisconnect -------------------------------------------------------
    def _connection_gone(self, client: str) -> None:
        self.listens.pop(client, None)
        for w in self.on_disconnect_ops.pop(client, []):
            self._enqueue(client, w, on_disconnect=True)  # re-checked against the rules when run

    def _sweeper(self):
        while True:
            yield self.env.timeout(self.idle_timeout / 2)
            now = self.env.now
            for client, heard in list(self.server.last_heard.items()):
                if client in self.server.connections and now - heard > self.idle_timeout:
                    self.server.drop(client)

    def crash_and_restart(self, downtime: float) -> None:
        """The front end dies (connections reset, listens and queued, uncommitted writes lost);
        the committed tree is durable and survives."""
        lost = list(self._queue)
        self._queue.clear()
        cancel_timer(self._commit_timer)
        self._busy = False
        self.m_queue.set(0)
        for client, _w, _od, _t in lost:
            self.m_writes.labels(server=self.name, outcome="lost_in_crash").inc()
        self.listens.clear()
        self.on_disconnect_ops.clear()
        self.server.crash()
        self.env.timeout(downtime).callbacks.append(lambda _e: self.server.restart())


class TrackingServer(Server):
    """A :class:`Server` that remembers when it last heard from each client and says when a
    connection is gone (close frame or idle drop): what ``onDisconnect`` needs."""

    def __init__(self, *args, on_gone: Callable[[str], None], **kwargs) -> None:
        self.on_gone = on_gone
        self.last_heard: dict[str, float] = {}
        super().__init__(*args, **kwargs)

    def _on_message(self, msg) -> None:
        self.last_heard[msg.src] = self.env.now
        super()._on_message(msg)

    def _forget(self, client: str) -> None:
        was = client in self.connections
        super()._forget(client)
        if was:
            self.last_heard.pop(client, None)
            self.on_gone(client)


# ========================================================================= the client ====
class _LocalListener:
    __slots__ = ("path", "event_type", "query", "callback", "tag", "view", "synced", "cancelled")

    def __init__(self, path, event_type, query, callback, tag) -> None:
        self.path, self.event_type, self.query, self.callback, self.tag = path, event_type, query, callback, tag
        self.view: Any = None
        self.synced = False
        self.cancelled = False


class RealtimeClient:
    """A client SDK: a cache of what it listens to, latency compensation, an offline write
    queue, listeners, transactions and ``onDisconnect`` (see the module docstring).

    The connection is a :class:`~sim.components.resilient_client.ResilientClient` that reconnects
    with ``policy`` (Firebase's own backoff preset by default); on every (re)connection the client
    authenticates, re-listens and re-sends every unconfirmed write in order."""

    def __init__(self, ctx, name: str, network, server: str, *, auth: dict | None = None, policy=None,
                 tracker=None, heartbeat_interval: float | None = -1.0) -> None:
        from sim.components.backoff import make_backoff
        from sim.components.resilient_client import ResilientClient

        self.ctx, self.env, self.name = ctx, ctx.env, name
        self.auth = auth
        if heartbeat_interval == -1.0:
            heartbeat_interval = presets()["defaults"]["client_heartbeat_s"]["value"]
        self.conn = ResilientClient(ctx, name, network, server, policy or make_backoff("firebase_rtdb"),
                                    tracker, ctx.rng("rtdb.client.jitter").random,
                                    heartbeat_interval=heartbeat_interval,
                                    on_message=self._on_message, on_connect=self._on_connect,
                                    on_disconnect=self._on_disconnect)
        self.server_cache: dict[int, Any] = {}
        """Per listen tag: the server's data at the listener's path (what it last confirmed)."""
        self.pending: dict[int, Write] = {}
        """Writes applied locally and not yet confirmed, in order (the offline queue too)."""
        self.listeners: dict[int, _LocalListener] = {}
        self.events: list[Event] = []
        """Every event raised to a callback, in order (also passed to the callback)."""
        self.rejected: list[tuple[Write, str]] = []
        self.confirmed = 0
        self.push_ids = PushIdGenerator(ctx.rng(f"rtdb.pushid.{name}").random)
        self._next_id = 0
        self._next_tag = 0
        self._transactions: dict[int, tuple[Path, Callable[[Any], Any], int, Callable | None]] = {}
        self._on_disconnect: list[Write] = []
        self.on_complete: dict[int, Callable[[str], None]] = {}

    # --- connection ---------------------------------------------------------------------------
    def connect(self) -> None:
        self.conn.start()

    @property
    def online(self) -> bool:
        return self.conn.state == "connected"

    def go_offline(self) -> None:
        """``goOffline()``: close the connection and stop reconnecting (writes keep queueing)."""
        self.conn.stop()

    def go_online(self) -> None:
        """``goOnline()``: reconnect (after the backoff policy's delay)."""
        self.conn.resume()

    def _send(self, msg: dict) -> bool:
        return self.conn.send(msg, json_bytes(msg))

    def _on_connect(self, _conn) -> None:
        self._send({"a": "auth", "cred": self.auth})
        for listener in self.listeners.values():
            if not listener.cancelled:
                self._send({"a": "listen", "path": listener.path, "query": listener.query, "tag": listener.tag})
        for w in self._on_disconnect:
            self._send({"a": "on_disconnect", "w": w})
        for w in self.pending.values():  # the offline queue, in order
            self._send({"a": "write", "w": w})

    def _on_disconnect(self, _conn, _how, _code) -> None:
        for listener in self.listeners.values():
            listener.synced = False

    # --- listeners ----------------------------------------------------------------------------
    def on(self, path: str | Path, event_type: str, callback: Callable[[Event], None] | None = None,
           query: Query = NO_QUERY) -> int:
        """Attach a listener; returns its tag (for :meth:`off`)."""
        if event_type not in EVENT_TYPES:
            raise ParameterError("event_type", f"must be one of {', '.join(EVENT_TYPES)}, got {event_type!r}")
        p = parse_path(path)
        self._next_tag += 1
        tag = self._next_tag
        self.listeners[tag] = _LocalListener(p, event_type, query, callback, tag)
        self._send({"a": "listen", "path": p, "query": query, "tag": tag})
        return tag

    def off(self, tag: int) -> None:
        if self.listeners.pop(tag, None) is not None:
            self.server_cache.pop(tag, None)
            self._send({"a": "unlisten", "tag": tag})

    def _local_view(self, listener: _LocalListener) -> Any:
        """Server data plus every pending write that touches the listener (latency compensation)."""
        value = self.server_cache.get(listener.tag)
        for w in self.pending.values():
            for p, v in w.paths.items():
                if related(p, listener.path):
                    if len(p) >= len(listener.path):
                        value = set_in(value, p[len(listener.path):], v)
                    else:
                        value = get_in(v, listener.path[len(p):])
        return listener.query.window(value)

    def _refresh(self, listener: _LocalListener, local: bool, initial: bool = False) -> None:
        new = self._local_view(listener)
        events = diff_events(listener.event_type, listener.path, listener.query, listener.view, new,
                             self.env.now, local, initial=initial)
        listener.view = new
        for e in events:
            self.events.append(e)
            if listener.callback is not None:
                listener.callback(e)

    def _refresh_all(self, paths: Iterable[Path], local: bool) -> None:
        paths = list(paths)
        for listener in list(self.listeners.values()):
            if listener.synced and not listener.cancelled and any(related(p, listener.path) for p in paths):
                self._refresh(listener, local)

    # --- writes -------------------------------------------------------------------------------
    def _write(self, kind: str, path, value=None, expected=None, on_complete=None) -> Write:
        self._next_id += 1
        w = make_write(self._next_id, self.name, kind, path, value, self.env.now, expected)
        self.pending[w.id] = w
        if on_complete is not None:
            self.on_complete[w.id] = on_complete
        self._refresh_all(w.paths, local=True)  # the local event first
        self._send({"a": "write", "w": w})  # queued (pending) if offline; re-sent on reconnection
        return w

    def set(self, path, value, on_complete=None) -> Write:
        return self._write("set", path, value, on_complete=on_complete)

    def update(self, path, values: dict, on_complete=None) -> Write:
        return self._write("update", path, values, on_complete=on_complete)

    def remove(self, path, on_complete=None) -> Write:
        return self._write("remove", path, on_complete=on_complete)

    def push(self, path, value, on_complete=None) -> tuple[str, Write]:
        """A new child with a chronological push id; returns ``(key, write)``."""
        key = self.push_ids.next(self.env.now)
        return key, self._write("push", parse_path(path) + (key,), value, on_complete=on_complete)

    def transaction(self, path, update: Callable[[Any], Any], on_complete=None, max_retries: int = 25) -> Write:
        """Compare-and-set: ``update(current)`` gives the new value; if the server's value moved on,
        the server answers with it and the client retries (up to ``max_retries``, as the SDK's 25)."""
        p = parse_path(path)
        current = self._known(p)
        w = self._write("transaction", p, update(current), expected=current, on_complete=on_complete)
        self._transactions[w.id] = (p, update, max_retries, on_complete)
        return w

    def _known(self, p: Path) -> Any:
        for listener in self.listeners.values():
            if listener.synced and related(listener.path, p) and len(listener.path) <= len(p) \
                    and listener.query == NO_QUERY:
                return get_in(self._local_view(listener), p[len(listener.path):])
        return None

    def on_disconnect_set(self, path, value) -> Write:
        """``onDisconnect().set(value)``: stored by the server, run when this connection is gone."""
        self._next_id += 1
        w = make_write(self._next_id, self.name, "set", path, value, self.env.now)
        self._on_disconnect.append(w)
        self._send({"a": "on_disconnect", "w": w})
        return w

    def on_disconnect_remove(self, path) -> Write:
        self._next_id += 1
        w = make_write(self._next_id, self.name, "remove", path, None, self.env.now)
        self._on_disconnect.append(w)
        self._send({"a": "on_disconnect", "w": w})
        return w

    # --- messages from the server ---------------------------------------------------------------
    def _on_message(self, _conn, msg: dict) -> None:
        kind = msg["a"]
        if kind == "d":
            listener = self.listeners.get(msg["tag"])
            if listener is None:
                return
            self.server_cache[msg["tag"]] = msg["d"]
            initial = not listener.synced
            listener.synced = True
            self._refresh(listener, local=False, initial=initial and listener.view is None)
        elif kind == "m":
            listener = self.listeners.get(msg["tag"])
            if listener is None:
                return
            value = self.server_cache.get(msg["tag"])
            for p, v in msg["parts"]:
                value = set_in(value, tuple(p)[len(listener.path):], v)
            self.server_cache[msg["tag"]] = value
            self._refresh(listener, local=False)
        elif kind == "ok":
            w = self.pending.pop(msg["id"], None)
            if w is not None:
                self.confirmed += 1
                self._transactions.pop(w.id, None)
                cb = self.on_complete.pop(w.id, None)
                if cb is not None:
                    cb("ok")
        elif kind == "nack":
            self._rejected(msg)
        elif kind == "cancel":
            listener = self.listeners.get(msg["tag"])
            if listener is not None:
                listener.cancelled = True
                e = Event("cancel", listener.path, None, None, None, 0, self.env.now, False)
                self.events.append(e)
                if listener.callback is not None:
                    listener.callback(e)

    def _rejected(self, msg: dict) -> None:
        w = self.pending.pop(msg["id"], None)
        if w is None:
            return
        tx = self._transactions.pop(w.id, None)
        if tx is not None and msg["status"] == "datastale" and tx[2] > 0:
            p, update, retries, cb = tx
            self._refresh_all(w.paths, local=False)
            current = msg["current"]
            nw = self._write("transaction", p, update(current), expected=current, on_complete=cb)
            self.on_complete.pop(w.id, None)
            self._transactions[nw.id] = (p, update, retries - 1, cb)
            return
        self.rejected.append((w, msg["status"]))
        self._refresh_all(w.paths, local=False)  # roll back: events fire again with the server's data
        cb = self.on_complete.pop(w.id, None)
        if cb is not None:
            cb(msg["status"])
