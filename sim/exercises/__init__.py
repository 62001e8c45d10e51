"""The notebooks' exercise checks, kept in the package so that the student's page holds no answer.

Each self-check cell of a notebook is one call::

    from sim.exercises import check

    check("06.1", my_moved_share)

:func:`check` runs the exercise's check against values computed here (from the simulator's own
components, never from a formula printed on the page) and returns a :class:`Result`. Jupyter
displays it as one line (``PASS``, ``not yet`` with a hint, or ``error``) and stores, next to
the text, a machine-readable copy under the MIME type :data:`MIME`: that is what
``python -m sim grade`` reads from the executed notebook (:mod:`sim.grade`).

Exercise ids are ``"NN.K"``: notebook ``NN``, exercise ``K``. :data:`NOTEBOOKS` names the module
holding each notebook's checks; a module registers its checks with :func:`exercise`.
"""

from __future__ import annotations

import importlib
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable

MIME = "application/vnd.sim.exercise+json"
"""MIME type of a self-check's machine-readable result in a notebook's outputs."""

PASS, NOT_YET, ERROR = "pass", "not yet", "error"
STATUSES = (PASS, NOT_YET, ERROR)

#: Notebook number -> module (in this package) that registers its exercises.
NOTEBOOKS = {
    "00": "primer",
    "01": "cloud_services",
    "02": "security",
    "03": "webhooks",
    "04": "crdt",
    "05": "monitoring",
    "06": "deployment",
    "07": "resilience",
}


@dataclass(frozen=True)
class Result:
    """What one self-check found: ``status`` is ``"pass"``, ``"not yet"`` or ``"error"``."""

    exercise: str
    title: str
    status: str
    message: str = ""
    details: tuple[str, ...] = field(default=())
    """Further lines shown under the verdict (e.g. the student's values next to the simulation)."""

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def line(self) -> str:
        verdict = {PASS: "PASS", NOT_YET: "not yet", ERROR: "error"}[self.status]
        head = f"Exercise {self.exercise} ({self.title}): {verdict}"
        return f"{head} — {self.message}" if self.message else head

    def __str__(self) -> str:
        return "\n".join([self.line(), *("  " + d for d in self.details)])

    def to_dict(self) -> dict[str, Any]:
        return {"exercise": self.exercise, "title": self.title, "status": self.status, "message": self.message}

    def _repr_mimebundle_(self, include=None, exclude=None):
        colour = {PASS: "#1a7f37", NOT_YET: "#9a6700", ERROR: "#cf222e"}[self.status]
        verdict = {PASS: "PASS", NOT_YET: "not yet", ERROR: "error"}[self.status]
        html = (f'<p><b>Exercise {_escape(self.exercise)}</b> ({_escape(self.title)}): '
                f'<b style="color:{colour}">{verdict}</b>'
                + (f" — {_escape(self.message)}" if self.message else "") + "</p>")
        if self.details:
            html += "<pre>" + _escape("\n".join(self.details)) + "</pre>"
        return {"text/plain": str(self), "text/html": html, MIME: self.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Result":
        status = data.get("status")
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        return cls(str(data["exercise"]), str(data.get("title", "")), status, str(data.get("message", "")))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- outcomes a check reports ----------------------------------------------------------------
class Outcome(Exception):
    """Raised (or returned) by a check to end it with a verdict."""

    def __init__(self, status: str, message: str = "", details: tuple[str, ...] = ()):
        super().__init__(message)
        self.status, self.message, self.details = status, message, tuple(details)


def passed(message: str = "", details=()) -> Outcome:
    return Outcome(PASS, message, details)


def not_yet(message: str, details=()) -> Outcome:
    return Outcome(NOT_YET, message, details)


NOT_ANSWERED = "not answered yet (replace the TODO placeholder)"


class StudentCodeError(Exception):
    """The student's function raised: reported as ``error`` with what it raised."""


def call(fn: Callable, *args, name: str = "your function"):
    """``fn(*args)``, turning anything it raises into :class:`StudentCodeError`."""
    if not callable(fn):
        raise not_yet(f"{name} should be a function, got {fn!r}")
    try:
        return fn(*args)
    except Exception as err:  # noqa: BLE001 — any mistake in the student's code is reported, not raised
        raise StudentCodeError(f"{name} raised {type(err).__name__}: {err}") from None


def is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def close(value, expected: float, rel: float = 1e-9, abs_tol: float = 0.0) -> bool:
    """``value`` is a real number close to ``expected`` (both nan counts as equal)."""
    if not is_number(value):
        return False
    value = float(value)
    if math.isnan(expected):
        return math.isnan(value)
    return math.isclose(value, expected, rel_tol=rel, abs_tol=abs_tol)


# --- the registry ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Exercise:
    id: str
    title: str
    arguments: str
    """The self-check's arguments as the notebook writes them, e.g. ``"my_rate, seed=SEED"``."""
    run: Callable[..., Outcome | None]

    @property
    def notebook(self) -> str:
        return self.id.split(".")[0]

    @property
    def number(self) -> int:
        return int(self.id.split(".")[1])

    @property
    def answer_names(self) -> list[str]:
        """The notebook names the check reads as answers (its positional arguments)."""
        return [a.strip() for a in self.arguments.split(",") if "=" not in a]

    @property
    def call(self) -> str:
        return f'check("{self.id}", {self.arguments})'

    @property
    def cell_source(self) -> str:
        """The canonical self-check cell (``python -m sim grade`` puts it back before running)."""
        return (f"# Self-check for exercise {self.number}: the check lives in the package (sim.exercises),\n"
                f"# so this page holds no answer. It shows PASS, or a hint of what is not right yet.\n"
                f"from sim.exercises import check\n\n{self.call}")


_REGISTRY: dict[str, Exercise] = {}


def exercise(exercise_id: str, title: str, arguments: str):
    """Register the decorated function as the check of ``exercise_id`` (``"NN.K"``)."""
    def register(fn):
        if exercise_id in _REGISTRY:
            raise ValueError(f"exercise {exercise_id!r} is registered twice")
        _REGISTRY[exercise_id] = Exercise(exercise_id, title, arguments, fn)
        return fn
    return register


def exercises(notebook: str) -> list[Exercise]:
    """The exercises of notebook ``notebook`` (``"06"``), in order."""
    if notebook not in NOTEBOOKS:
        raise KeyError(f"no notebook {notebook!r}; known: {', '.join(NOTEBOOKS)}")
    importlib.import_module(f"{__name__}.{NOTEBOOKS[notebook]}")
    return sorted((e for e in _REGISTRY.values() if e.notebook == notebook), key=lambda e: e.number)


def get(exercise_id: str) -> Exercise:
    notebook = exercise_id.split(".")[0]
    if notebook in NOTEBOOKS:
        exercises(notebook)
    if exercise_id not in _REGISTRY:
        raise KeyError(f"no exercise {exercise_id!r}")
    return _REGISTRY[exercise_id]


def check(exercise_id: str, *answers, **context) -> Result:
    """Check the answers of exercise ``exercise_id``; never raises on a wrong answer."""
    ex = get(exercise_id)
    try:
        outcome = ex.run(*answers, **context)
        if outcome is None:
            outcome = passed()
    except Outcome as raised:
        outcome = raised
    except StudentCodeError as err:
        outcome = Outcome(ERROR, str(err))
    except Exception as err:  # noqa: BLE001 — e.g. an answer of a type the check cannot use
        outcome = Outcome(ERROR, f"the check could not use your answer: {type(err).__name__}: {err}")
    return Result(ex.id, ex.title, outcome.status, outcome.message, outcome.details)
