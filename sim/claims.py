"""The claims ledger: every claim of the course's answers, its verdict, and what measures it.

``data/claims.json`` (installed as ``sim.presets``) holds one entry per claim of the French
course text (every bullet and every table cell of the seven answers), with the French text quoted
exactly, an English rendering, a verdict, a one-line reason, and where it is measured: a notebook,
a heading of that notebook, a registered scenario and a *check* — the dotted name of a function
(in :mod:`sim.claims_checks`) that runs the scenario with the notebook's defaults over several
seeds and raises :class:`ClaimNotSupported` unless the condition that makes the verdict true holds
on 95 % confidence intervals. A check returns one line of evidence (the intervals it compared).

``load_claims()`` reads and validates the ledger; a bad entry raises :class:`LedgerError` with one
line naming the claim and the field. ``run_check(claim)`` runs a claim's check.

The notebooks' closing "what to add to the course's answer" tables carry each claim's id and
verdict; :func:`verdict_table` reads them back (``tests/test_claims.py`` keeps both in agreement).
"""

from __future__ import annotations

import ast
import importlib
import json
import re
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from sim.core.errors import UserError

LEDGER = "claims.json"
"""The ledger's file name inside ``data/`` (the ``sim.presets`` package)."""
COURSE_TEXT = "course-questions-and-answers.fr.md"
"""The course's answers in French (shared beside the checkout, not copied into it)."""

VERDICTS = ("holds", "holds with a condition", "half true", "misleading", "not measured yet")
"""Allowed verdicts, from the kindest to the one that says nothing yet."""
NOT_MEASURED = "not measured yet"

_ID = re.compile(r"^([1-7])([A-C])-([1-9][0-9]?)$")


class LedgerError(UserError, ValueError):
    """The ledger (or a notebook's verdict table) is malformed: one line naming the claim and field."""


class ClaimNotSupported(AssertionError):
    """A check found that its scenario no longer supports the claim's verdict."""


@dataclass(frozen=True)
class Claim:
    """One claim of the course's answers (see the module docstring)."""

    id: str
    """``"3B-2"``: question, part, rank within the part."""
    question: int
    """1 to 7."""
    part: str
    """``"3B"``: the question and the letter of the answer's part."""
    fr: str
    """The French text, exactly as the course writes it (a substring of the course file)."""
    en: str
    """English rendering."""
    verdict: str
    """One of :data:`VERDICTS`."""
    reason: str
    """Why, in one line."""
    notebook: str
    """File name in ``notebooks/`` (e.g. ``03_websockets_vs_webhooks.ipynb``)."""
    section: str
    """A heading of that notebook, as written (without the leading ``#``)."""
    scenario: str
    """The registered scenario that measures it (``""`` when not measured yet)."""
    check: str
    """Dotted name of the check function (``""`` when not measured yet)."""

    @property
    def measured(self) -> bool:
        return self.verdict != NOT_MEASURED


FIELDS = tuple(f.name for f in fields(Claim))


def _validate(entry: Any, index: int, seen: set[str]) -> Claim:
    where = f"claims.json entry {index}"
    if not isinstance(entry, dict):
        raise LedgerError(f"{where}: must be an object, got {type(entry).__name__}")
    name = entry.get("id")
    if isinstance(name, str) and name:
        where = f"claims.json claim {name}"
    missing = [f for f in FIELDS if f not in entry]
    if missing:
        raise LedgerError(f"{where}: field {missing[0]!r} is missing")
    unknown = sorted(set(entry) - set(FIELDS))
    if unknown:
        raise LedgerError(f"{where}: field {unknown[0]!r} is not a claim field ({', '.join(FIELDS)})")
    for f in FIELDS:
        expected = int if f == "question" else str
        value = entry[f]
        if isinstance(value, bool) or not isinstance(value, expected):
            raise LedgerError(f"{where}: field {f!r} must be a{'n integer' if expected is int else ' string'}, "
                              f"got {value!r}")
    m = _ID.match(entry["id"])
    if not m:
        raise LedgerError(f"{where}: field 'id' must look like 3B-2 (question 1-7, part A-C, rank), "
                          f"got {entry['id']!r}")
    if entry["id"] in seen:
        raise LedgerError(f"{where}: field 'id' is used twice")
    if entry["question"] != int(m.group(1)):
        raise LedgerError(f"{where}: field 'question' must be {m.group(1)} (from the id), got {entry['question']}")
    if entry["part"] != m.group(1) + m.group(2):
        raise LedgerError(f"{where}: field 'part' must be {m.group(1) + m.group(2)!r} (from the id), "
                          f"got {entry['part']!r}")
    if entry["verdict"] not in VERDICTS:
        raise LedgerError(f"{where}: field 'verdict' must be one of {', '.join(VERDICTS)}; got {entry['verdict']!r}")
    for f in ("fr", "en", "reason", "notebook", "section"):
        if not entry[f].strip():
            raise LedgerError(f"{where}: field {f!r} is empty")
        if "\n" in entry[f] and f != "fr":
            raise LedgerError(f"{where}: field {f!r} must be one line")
    if not entry["notebook"].endswith(".ipynb") or "/" in entry["notebook"]:
        raise LedgerError(f"{where}: field 'notebook' must be a file name in notebooks/ ending in .ipynb, "
                          f"got {entry['notebook']!r}")
    measured = entry["verdict"] != NOT_MEASURED
    for f in ("scenario", "check"):
        if measured and not entry[f].strip():
            raise LedgerError(f"{where}: field {f!r} is empty, but verdict {entry['verdict']!r} needs one "
                              f"(or say 'not measured yet')")
    if not measured and entry["check"]:
        raise LedgerError(f"{where}: field 'check' must be empty for a claim 'not measured yet'")
    if entry["check"] and not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)+", entry["check"]):
        raise LedgerError(f"{where}: field 'check' must be a dotted name (module.function), got {entry['check']!r}")
    seen.add(entry["id"])
    return Claim(**entry)


def parse_claims(text: str) -> list[Claim]:
    """Claims from the ledger's JSON text (a list of objects, or ``{"claims": [...]}``), validated."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise LedgerError(f"claims.json: not JSON: {err}") from None
    if isinstance(data, dict):  # the ledger's form: {"_about": ..., "verdicts": [...], "claims": [...]}
        if "verdicts" in data and data["verdicts"] != list(VERDICTS):
            raise LedgerError(f"claims.json: 'verdicts' must list {', '.join(VERDICTS)}")
        data = data.get("claims")
    if not isinstance(data, list):
        raise LedgerError("claims.json: must hold a list of claims (or an object with a 'claims' list)")
    seen: set[str] = set()
    return [_validate(entry, i, seen) for i, entry in enumerate(data)]


@lru_cache(maxsize=1)
def _load_cached() -> tuple[Claim, ...]:
    from sim import data

    return tuple(parse_claims(data.text(LEDGER)))


def load_claims(path: str | Path | None = None) -> list[Claim]:
    """Every claim of the ledger, in the course's order (``path``: another ledger file)."""
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise LedgerError(f"{path}: cannot be read: {err.strerror or err}") from None
        return parse_claims(text)
    return list(_load_cached())


def get_claim(claim_id: str) -> Claim:
    """The claim with this id (:class:`LedgerError` if there is none)."""
    for claim in load_claims():
        if claim.id == claim_id:
            return claim
    raise LedgerError(f"no claim {claim_id!r} in the ledger")


def course_text() -> str:
    """The course's answers, in French, as the ledger quotes them: :func:`sim.data.course_text` (the shared
    course file beside the checkout; a :class:`~sim.core.errors.UserError` naming where it looked if absent)."""
    from sim import data

    return data.course_text()


def resolve_check(claim: Claim) -> Callable[[], str]:
    """The claim's check function (:class:`LedgerError` if it names nothing)."""
    module, _, name = claim.check.rpartition(".")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise LedgerError(f"claims.json claim {claim.id}: field 'check': {claim.check!r} names no function") from None
    if not callable(fn):
        raise LedgerError(f"claims.json claim {claim.id}: field 'check': {claim.check!r} is not callable")
    return fn


def run_check(claim: Claim) -> str:
    """Run the claim's check: its evidence line, or :class:`ClaimNotSupported`."""
    if not claim.measured:
        raise LedgerError(f"claim {claim.id} is 'not measured yet': it has no check")
    return resolve_check(claim)()


# --- notebooks ------------------------------------------------------------------------------------
def notebook_dir() -> Path:
    """The repository's ``notebooks/`` folder (the checkout this package runs from)."""
    return Path(__file__).resolve().parent.parent / "notebooks"


def _cells(notebook: str) -> list[dict]:
    path = notebook_dir() / notebook
    try:
        return json.loads(path.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError) as err:
        raise LedgerError(f"{notebook}: cannot be read as a notebook: {err}") from None


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def notebook_headings(notebook: str) -> list[str]:
    """Every markdown heading of the notebook, as written, without the leading ``#`` (code fences skipped)."""
    out = []
    for cell in _cells(notebook):
        if cell.get("cell_type") != "markdown":
            continue
        fenced = False
        for line in _source(cell).splitlines():
            if line.lstrip().startswith("```"):
                fenced = not fenced
            elif not fenced and re.match(r"^#{1,6} ", line):
                out.append(line.lstrip("#").strip())
    return out


@lru_cache(maxsize=None)
def notebook_defaults(notebook: str) -> dict[str, Any]:
    """The values assigned in the notebook's cell tagged ``parameters`` (the notebook's defaults).

    That cell holds only constants and arithmetic on them; it is run with no builtins, so a
    check that uses these values follows the notebook when its defaults change."""
    for cell in _cells(notebook):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            namespace: dict[str, Any] = {}
            source = _source(cell)
            ast.parse(source)  # a syntax error is reported as such, before anything runs
            exec(compile(source, f"{notebook}:parameters", "exec"), {"__builtins__": {}}, namespace)
            return {k: v for k, v in namespace.items() if k.isupper()}
    raise LedgerError(f"{notebook}: has no cell tagged 'parameters'")


WHAT_TO_ADD = "What to add to the course's answer"
"""The heading (after its section number) of each notebook's closing table."""


def verdict_table(notebook: str) -> dict[str, str]:
    """``{claim id: verdict}`` from the notebook's closing "what to add" table.

    The table (a markdown cell, or a code cell that displays one) starts after the heading ending
    in :data:`WHAT_TO_ADD`; its rows are ``| 3B-2 | verdict | the course says | ... |``."""
    cells = _cells(notebook)
    start = None
    for i, cell in enumerate(cells):
        if cell.get("cell_type") == "markdown" and any(
                re.match(r"^#{1,6} ", line) and line.rstrip().endswith(WHAT_TO_ADD)
                for line in _source(cell).splitlines()):
            start = i
    if start is None:
        raise LedgerError(f"{notebook}: has no heading ending in {WHAT_TO_ADD!r}")
    rows: dict[str, str] = {}
    for cell in cells[start:start + 2]:
        text = _source(cell)
        if cell is cells[start]:
            text = text[text.index(WHAT_TO_ADD):]
        for line in text.splitlines():
            cols = [c.strip() for c in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else []
            if len(cols) >= 2 and _ID.match(cols[0]):
                if cols[0] in rows:
                    raise LedgerError(f"{notebook}: claim {cols[0]} has two rows in the 'what to add' table")
                rows[cols[0]] = cols[1]
        if rows:
            break
    return rows


# --- python -m sim claims -------------------------------------------------------------------------
def cli_main(args) -> int:
    """``python -m sim claims``: list the claims with their verdicts; ``--check`` runs their checks.

    Exit status 0, or 1 when a check fails; bad input (an unknown id, question or verdict, a
    broken ledger) is one line and exit status 2."""
    import textwrap
    import time

    claims = load_claims(args.ledger)
    chosen = claims
    if args.question is not None:
        if not 1 <= args.question <= 7:
            raise LedgerError(f"--question: must be 1 to 7, got {args.question}")
        chosen = [c for c in chosen if c.question == args.question]
    if args.verdict is not None:
        if args.verdict not in VERDICTS:
            raise LedgerError(f"--verdict: must be one of {', '.join(VERDICTS)}; got {args.verdict!r}")
        chosen = [c for c in chosen if c.verdict == args.verdict]
    if args.ids:
        known = {c.id: c for c in claims}
        unknown = [i for i in args.ids if i not in known]
        if unknown:
            raise LedgerError(f"unknown claim {unknown[0]!r}; ids look like 3B-2 (see `python -m sim claims`)")
        chosen = [c for c in chosen if c.id in set(args.ids)]
    width = max((len(v) for v in VERDICTS), default=0)
    failed = 0
    for c in chosen:
        print(f"{c.id:<5} {c.verdict:<{width}}  « {c.fr} »")
        if args.verbose:
            for line in textwrap.wrap(f"{c.en} — {c.reason} [{c.notebook}: {c.section}]", 92):
                print(" " * 8 + line)
        if args.check and c.measured:
            start = time.process_time()
            try:
                evidence, status = run_check(c), "PASS"
            except ClaimNotSupported as err:
                evidence, status = str(err), "FAIL"
                failed += 1
            except UserError:
                raise
            except Exception as err:  # a check that crashes (a renamed column, ...) fails, it does not stop the list
                evidence, status = f"the check crashed: {type(err).__name__}: {err}".replace("\n", " "), "ERROR"
                failed += 1
            print(f"        {status} ({time.process_time() - start:.1f} s CPU) {evidence}", flush=True)
    counts = {v: sum(c.verdict == v for c in chosen) for v in VERDICTS}
    print(f"{len(chosen)} claims: " + ", ".join(f"{n} {v}" for v, n in counts.items() if n)
          + (f"; {failed} check(s) failed" if failed else ("; every check passed" if args.check else "")))
    return 1 if failed else 0


__all__ = ["COURSE_TEXT", "Claim", "ClaimNotSupported", "FIELDS", "LEDGER", "LedgerError", "NOT_MEASURED",
           "VERDICTS", "WHAT_TO_ADD", "cli_main", "course_text", "get_claim", "load_claims", "notebook_defaults",
           "notebook_dir", "notebook_headings", "parse_claims", "resolve_check", "run_check", "verdict_table"]
