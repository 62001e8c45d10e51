"""``python -m sim grade`` and the package's exercise checks (sim.exercises).

The grading tests run a *small* notebook: notebook 04's title, parameters and imports, then its
exercise section untouched (the checks need nothing else). The solutions are put into it the way a
student would: a cell defining the answer names just before each self-check.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import re
from pathlib import Path

import nbformat
import pytest

from sim import grade
from sim.cli import main
from sim.exercises import MIME, NOTEBOOKS, PASS, NOT_YET, ERROR, Result, check, exercises

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
SOLUTIONS = NOTEBOOK_DIR / "solutions"
ALL = [e for nb in NOTEBOOKS for e in exercises(nb)]


def notebook_path(nb: str) -> Path:
    return next(NOTEBOOK_DIR.glob(f"{nb}_*.ipynb"))


def solutions_path(nb: str) -> Path:
    return next(SOLUTIONS.glob(f"{nb}_*_solutions.py"))


def context(ex) -> dict:
    """The keyword arguments the notebook's self-check passes (the seed; no section-1.3 table here)."""
    return {"seed": 1} if "seed=SEED" in ex.arguments else {}


def load_solutions(nb: str):
    path = solutions_path(nb)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the notebooks' self-check cells are the package's ------------------------------------------
@pytest.mark.parametrize("nb", list(NOTEBOOKS))
def test_every_exercise_has_its_canonical_self_check_cell(nb):
    node = nbformat.read(str(notebook_path(nb)), as_version=4)
    cells = [c for c in node.cells if "self-check" in c.metadata.get("tags", [])]
    assert [c.metadata.get("exercise") for c in cells] == [e.id for e in exercises(nb)]
    for cell, ex in zip(cells, exercises(nb)):
        assert cell.source == ex.cell_source  # the check's code and reference values stay in the package
    assert grade.identify(node, notebook_path(nb)) == nb


@pytest.mark.parametrize("ex", ALL, ids=[e.id for e in ALL])
def test_the_untouched_answers_are_not_yet(ex):
    result = check(ex.id, *[None] * len(ex.answer_names), **context(ex))
    assert result.status == NOT_YET, result


@pytest.mark.parametrize("ex", ALL, ids=[e.id for e in ALL])
def test_an_answer_of_the_wrong_type_is_reported_not_raised(ex):
    result = check(ex.id, *["not an answer"] * len(ex.answer_names), **context(ex))
    assert result.status in (NOT_YET, ERROR), result


@pytest.mark.parametrize("ex", ALL, ids=[e.id for e in ALL])
def test_the_solution_files_pass_every_check(ex):
    solutions = load_solutions(ex.notebook)
    extra = {"customers": 5_000} if ex.notebook == "00" else {}  # the primer's simulations, shorter
    answers = solutions.answers(ex.id, seed=1, **extra)
    assert sorted(answers) == sorted(ex.answer_names)
    result = check(ex.id, *[answers[name] for name in ex.answer_names], **context(ex))
    assert result.status == PASS, result


def test_a_student_function_that_raises_is_an_error():
    result = check("04.1", lambda a, b: {}[0])
    assert result.status == ERROR and "KeyError" in result.message


def test_the_result_carries_a_machine_readable_copy():
    result = check("06.3", [6, 12, 20, 20])
    bundle = result._repr_mimebundle_()
    assert bundle[MIME]["status"] == PASS and bundle[MIME]["exercise"] == "06.3"
    assert Result.from_dict(json.loads(json.dumps(bundle[MIME]))) == Result("06.3", result.title, PASS, result.message)
    assert "PASS" in bundle["text/plain"]


# --- grading executed notebooks ------------------------------------------------------------------
def small_notebook(nb: str = "04") -> nbformat.NotebookNode:
    """Title, parameters and imports of notebook ``nb``, then its exercise section as it is."""
    node = nbformat.read(str(notebook_path(nb)), as_version=4)
    start = next(i for i, c in enumerate(node.cells)
                 if c.cell_type == "markdown" and re.search(r"^## (\d+ · )?Exercises", c.source, re.M))
    node.cells = node.cells[:3] + node.cells[start:]
    return node


def answer_cell(source: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source)


def solved(node, nb: str, wrong: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """``node`` with the solutions' answers defined before each self-check (``wrong``: exercise ->
    an answer cell to use instead)."""
    wrong = wrong or {}
    cells = []
    for cell in node.cells:
        ex = cell.metadata.get("exercise")
        if ex:
            cells.append(answer_cell(wrong.get(ex) or (
                "import importlib.util as _iu\n"
                f"_spec = _iu.spec_from_file_location('solutions', {str(solutions_path(nb))!r})\n"
                "_solutions = _iu.module_from_spec(_spec)\n_spec.loader.exec_module(_solutions)\n"
                f"globals().update(_solutions.answers({ex!r}, seed=SEED))")))
        cells.append(cell)
    node.cells = cells
    return node


def statuses(path: Path) -> dict[str, str]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {(Path(r["file"]).name, r["exercise"]): r["status"] for r in rows}


def test_grade_a_folder_of_submissions(tmp_path, capsys):
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    untouched = small_notebook()
    # a student who edited a self-check to print PASS grades nothing: the grader restores the cell
    tampered = next(c for c in untouched.cells if c.metadata.get("exercise") == "04.1")
    tampered.source = "print('Exercise 04.1: PASS')"
    nbformat.write(untouched, str(submissions / "ann_04.ipynb"))
    nbformat.write(solved(small_notebook(), "04"), str(submissions / "bob_04.ipynb"))
    timestamp_only = "def my_lww_merge(a, b):\n    return b if b[1] > a[1] else a  # ties keep a: not commutative"
    nbformat.write(solved(small_notebook(), "04", wrong={"04.2": timestamp_only}), str(submissions / "cid_04.ipynb"))

    status = main(["grade", str(submissions), "--csv", str(tmp_path / "grades.csv"), "--timeout", "300"])
    out = capsys.readouterr().out

    assert status == 1
    got = statuses(tmp_path / "grades.csv")
    assert got == {
        ("ann_04.ipynb", "04.1"): NOT_YET, ("ann_04.ipynb", "04.2"): NOT_YET, ("ann_04.ipynb", "04.3"): NOT_YET,
        ("bob_04.ipynb", "04.1"): PASS, ("bob_04.ipynb", "04.2"): PASS, ("bob_04.ipynb", "04.3"): PASS,
        ("cid_04.ipynb", "04.1"): PASS, ("cid_04.ipynb", "04.2"): NOT_YET, ("cid_04.ipynb", "04.3"): PASS,
    }
    assert "total: 3/3 PASS" in out and "total: 0/3 PASS" in out and "total: 2/3 PASS" in out
    assert "1 of 3 notebooks pass every exercise" in out


def test_grade_one_solved_notebook_exits_0(tmp_path, capsys):
    path = tmp_path / "06_solved.ipynb"
    node = small_notebook("06")
    # exercise 1's check also prints the section 1.3 table it is given; this small notebook has none
    node.cells.insert(3, answer_cell("moved = None"))
    nbformat.write(solved(node, "06"), str(path))
    assert main(["grade", str(path)]) == 0
    out = capsys.readouterr().out
    n = len(exercises("06"))
    assert n == 4 and f"total: {n}/{n} PASS" in out and "not yet" not in out and "error" not in out


# --- bad input: exit 2, one line ----------------------------------------------------------------
def exit_status(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as stop:  # argparse's own refusals
        return stop.code


def test_bad_input(tmp_path, capsys):
    (tmp_path / "broken.ipynb").write_text("{not json", encoding="utf-8")
    plain = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    nbformat.write(plain, str(tmp_path / "plain.ipynb"))
    (tmp_path / "empty").mkdir()
    cases = [[str(tmp_path / "missing.ipynb")], [str(ROOT / "README.md")], [str(tmp_path / "broken.ipynb")],
             [str(tmp_path / "plain.ipynb")], [str(tmp_path / "empty")],
             [str(notebook_path("04")), "--csv", str(tmp_path / "no" / "such" / "dir.csv")],
             [str(notebook_path("04")), "--csv", str(tmp_path)],
             [str(notebook_path("04")), "--timeout", "0"], []]
    for args in cases:
        assert exit_status(["grade", *args]) == 2, args
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (args, err)
