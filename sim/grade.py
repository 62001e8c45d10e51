"""``python -m sim grade``: run a student's notebook and report its exercises.

Each notebook's self-check cells (tagged ``self-check``, with the exercise id in their metadata)
call :func:`sim.exercises.check`, whose result carries a machine-readable copy under
:data:`sim.exercises.MIME`. The grader:

1. reads the notebook and finds which course notebook it is (from its self-check cells, else the
   file name's ``NN_`` prefix);
2. puts the canonical source back into every self-check cell (an edited check grades nothing);
3. executes it in a fresh kernel (nbclient), every cell time-limited, errors allowed so that one
   broken answer does not hide the others;
4. reads each exercise's result from the outputs: ``PASS``, ``not yet`` (with the check's hint),
   or ``error`` (the student's code raised, the self-check cell failed or timed out, or the cell
   is missing).

It prints one line per exercise and a total per notebook; ``--csv FILE`` writes one row per
(notebook, exercise). Exit status 0 when every exercise of every notebook passes, 1 otherwise,
2 for bad input (one line).

Module-level imports stay light: ``sim/cli.py`` imports this module to build its parser.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CELL_TIMEOUT = 300.0  # s per cell: the notebooks run in well under 30 s; a student's loop may not end
SELF_CHECK_TAG = "self-check"
_CHECK_CALL = re.compile(r"""check\(\s*["'](\d\d)\.(\d+)["']""")
_NAME_PREFIX = re.compile(r"(?:^|[^0-9])(\d\d)_")

HELP = """Execute students' filled-in notebooks in a fresh kernel and report each exercise: PASS, not yet
(with the self-check's hint) or error. Give notebooks or folders of notebooks (every *.ipynb inside,
subfolders included). Exit status: 0 when every exercise passes, 1 otherwise, 2 for bad input.

examples:
  python -m sim grade notebooks/06_deployment.ipynb
  python -m sim grade submissions/ --csv grades.csv --timeout 120"""


class GradeError(Exception):
    """A usage mistake (exit 2, one line)."""


@dataclass(frozen=True)
class Line:
    """One exercise of one graded notebook."""

    file: str
    notebook: str
    exercise: str
    title: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == "pass"


# --- command line ----------------------------------------------------------------------------
def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0 and <= 86400, got {text!r}")
    return value


def add_parser(sub) -> None:
    """The ``grade`` subcommand (the hook sim/cli.py calls)."""
    p = sub.add_parser("grade", help="run students' notebooks and report each exercise (PASS / not yet / error)",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="NOTEBOOK_OR_FOLDER", help="a .ipynb file or a folder of them")
    p.add_argument("--csv", metavar="FILE", default=None,
                   help="also write one row per (notebook, exercise) to FILE: file, notebook, exercise, title, "
                        "status, message")
    p.add_argument("--timeout", type=_timeout, default=DEFAULT_CELL_TIMEOUT,
                   help=f"seconds allowed per cell (default {DEFAULT_CELL_TIMEOUT:g}); a cell over it is "
                        "interrupted and its exercise reported as error")


def main(args: argparse.Namespace) -> int:
    try:
        files = collect(args.paths)
        if args.csv is not None:
            _check_csv_path(Path(args.csv))
        # read and identify every notebook before running any: a mistake costs nothing
        prepared = [(path, *_prepare(path, strict=explicit)) for path, explicit in files]
    except GradeError as err:
        print(f"python -m sim grade: error: {err}", file=sys.stderr)
        return 2
    lines: list[Line] = []
    for path, notebook, node, problem in prepared:
        graded = ([Line(str(path), notebook or "", "-", "", "error", problem)] if problem
                  else grade_notebook(node, notebook, path, timeout=args.timeout))
        _print(path, graded)
        lines += graded
    if len(prepared) > 1:
        done = sum(all(g.passed for g in lines if g.file == str(p)) for p, *_ in prepared)
        print(f"{done} of {len(prepared)} notebooks pass every exercise")
    if args.csv is not None:
        write_csv(Path(args.csv), lines)
    return 0 if lines and all(g.passed for g in lines) else 1


def _print(path: Path, lines: list[Line]) -> None:
    print(path)
    width = max((len(g.title) for g in lines), default=0)
    for g in lines:
        verdict = {"pass": "PASS", "not yet": "not yet", "error": "error"}[g.status]
        text = f"  {g.exercise:<5} {g.title:<{width}}  {verdict}"
        if g.message and not g.passed:
            text += f" — {g.message}"
        print(text)
    graded = [g for g in lines if g.exercise != "-"]
    if graded:
        print(f"  total: {sum(g.passed for g in graded)}/{len(graded)} PASS")


def collect(paths: list[str]) -> list[tuple[Path, bool]]:
    """The notebooks to grade: ``(path, given explicitly)``; folders are searched recursively."""
    out: list[tuple[Path, bool]] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
            if not found:
                raise GradeError(f"{text}: no .ipynb file in this folder")
            out += [(p, False) for p in found]
        elif path.is_file():
            if path.suffix != ".ipynb":
                raise GradeError(f"{text}: not a notebook (expected a .ipynb file or a folder)")
            out.append((path, True))
        else:
            raise GradeError(f"{text}: no such file or folder")
    return out


def _check_csv_path(path: Path) -> None:
    if path.is_dir():
        raise GradeError(f"--csv: {path} is a folder; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise GradeError(f"--csv: folder {parent} does not exist")
    import os

    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise GradeError(f"--csv: cannot write {path}")


def write_csv(path: Path, lines: list[Line]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "notebook", "exercise", "title", "status", "message"])
        for g in lines:
            w.writerow([g.file, g.notebook, g.exercise, g.title, g.status, g.message])
    tmp.replace(path)


# --- reading a notebook ------------------------------------------------------------------------
def _prepare(path: Path, strict: bool):
    """``(notebook id, prepared notebook, problem)``; with ``strict`` a problem is a usage error."""
    try:
        node, notebook = prepare(path)
    except GradeError as err:
        if strict:
            raise
        return None, None, str(err)
    return notebook, node, None


def identify(node, path: Path | None = None) -> str:
    """The course notebook's number (``"06"``): from its self-check cells, else the file name."""
    from sim.exercises import NOTEBOOKS

    found = set()
    for cell in node.cells:
        exercise = cell.get("metadata", {}).get("exercise")
        if isinstance(exercise, str) and exercise[:2] in NOTEBOOKS:
            found.add(exercise[:2])
        if cell.cell_type == "code":
            found.update(m.group(1) for m in _CHECK_CALL.finditer(cell.source) if m.group(1) in NOTEBOOKS)
    if len(found) > 1:
        raise GradeError(f"{path}: self-checks of several notebooks ({', '.join(sorted(found))}); grade one at a time")
    if found:
        return found.pop()
    m = _NAME_PREFIX.search(path.name) if path is not None else None
    if m and m.group(1) in NOTEBOOKS:
        return m.group(1)
    raise GradeError(f"{path}: no self-check cell of a course notebook (00 to 07) in it")


def prepare(path: Path):
    """Read ``path``; put the canonical source back into each self-check cell; clear outputs."""
    import nbformat

    try:
        node = nbformat.read(str(path), as_version=4)
    except Exception as err:  # noqa: BLE001 — JSON or schema errors of a damaged file
        raise GradeError(f"{path}: not a readable notebook ({type(err).__name__}: {str(err).splitlines()[0][:120]})") \
            from None
    notebook = identify(node, path)
    from sim.exercises import exercises

    known = {e.id: e for e in exercises(notebook)}
    for cell in node.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        exercise = cell.get("metadata", {}).get("exercise")
        if exercise in known:
            cell.source = known[exercise].cell_source
    return node, notebook


# --- running and reading the results -----------------------------------------------------------
def execute(node, cwd: Path, timeout: float) -> str | None:
    """Run every cell in a fresh kernel; returns a problem that stopped the run, or None."""
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    client = NotebookClient(node, timeout=timeout, kernel_name="python3", allow_errors=True,
                            interrupt_on_timeout=True, record_timing=False,
                            resources={"metadata": {"path": str(cwd)}})
    import subprocess

    try:
        client.execute(stderr=subprocess.DEVNULL)  # the kernel process's own log lines; cell output goes to IOPub
    except DeadKernelError as err:
        return f"the kernel died ({str(err).splitlines()[0][:100]})"
    except Exception as err:  # noqa: BLE001 — e.g. the kernel does not start
        return f"the notebook could not run: {type(err).__name__}: {str(err).splitlines()[0][:100] if str(err) else ''}"
    return None


def results(node, notebook: str, file: str, stopped: str | None = None, timeout: float | None = None) -> list[Line]:
    """One line per exercise of ``notebook``, read from the executed ``node``."""
    from sim.exercises import MIME, Result, exercises

    found: dict[str, Result] = {}
    problems: dict[str, str] = {}
    cells: dict[str, bool] = {}
    for cell in node.cells:
        if cell.cell_type != "code":
            continue
        exercise = cell.get("metadata", {}).get("exercise")
        tagged = exercise is not None and SELF_CHECK_TAG in cell.get("metadata", {}).get("tags", [])
        if not tagged:
            continue  # only the (restored) self-check cells are trusted
        cells[exercise] = True
        for out in cell.get("outputs", []):
            if out.get("output_type") in ("execute_result", "display_data") and MIME in out.get("data", {}):
                try:
                    found[exercise] = Result.from_dict(dict(out["data"][MIME]))
                except (KeyError, TypeError, ValueError):
                    problems[exercise] = "the self-check's result is unreadable"
            elif out.get("output_type") == "error":
                problems[exercise] = _error_text(out, timeout)
    lines = []
    for ex in exercises(notebook):
        r = found.get(ex.id)
        if r is not None and r.exercise == ex.id:
            lines.append(Line(file, notebook, ex.id, ex.title, r.status, r.message))
            continue
        why = (problems.get(ex.id) or (stopped if stopped else None)
               or ("its self-check cell is missing (tagged self-check, metadata exercise)" if ex.id not in cells
                   else "its self-check cell produced no result (did an earlier cell fail?)"))
        lines.append(Line(file, notebook, ex.id, ex.title, "error", why))
    return lines


def _error_text(output, timeout: float | None) -> str:
    name, value = output.get("ename", "Error"), output.get("evalue", "")
    if name == "KeyboardInterrupt":
        return f"the self-check cell was stopped after the {timeout:g} s limit" if timeout else "interrupted"
    if name == "CellTimeoutError":
        return f"timed out ({value.splitlines()[0][:100] if value else ''})"
    first = value.splitlines()[0][:150] if value else ""
    return f"the self-check cell raised {name}: {first}" if first else f"the self-check cell raised {name}"


def grade_notebook(node, notebook: str, path: Path, timeout: float = DEFAULT_CELL_TIMEOUT) -> list[Line]:
    """Execute a prepared notebook (see :func:`prepare`) and read its exercises."""
    stopped = execute(node, path.resolve().parent, timeout)
    return results(node, notebook, str(path), stopped, timeout)


def grade(path: str | Path, timeout: float = DEFAULT_CELL_TIMEOUT) -> list[Line]:
    """Grade one notebook file (what the command does for each of its arguments)."""
    path = Path(path)
    node, notebook = prepare(path)
    return grade_notebook(node, notebook, path, timeout)
