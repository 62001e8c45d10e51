"""``python -m sim course``: every notebook gets a page, the index links them, failures are reported."""

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from sim.course import build_course


def _write(path, *cells):
    nbformat.write(new_notebook(cells=list(cells)), path)


def test_course_builds_pages_and_index_and_keeps_going_after_a_failure(tmp_path, capsys):
    notebooks = tmp_path / "nb"
    notebooks.mkdir()
    _write(notebooks / "01_good.ipynb", new_markdown_cell("# A good notebook"), new_code_cell("print(6 * 7)"))
    _write(notebooks / "02_bad.ipynb", new_markdown_cell("# A broken notebook"), new_code_cell("1 / 0"))
    out = tmp_path / "course"

    status = build_course(notebooks, out, cell_timeout=60)

    assert status == 1  # one notebook failed ...
    assert "02_bad.ipynb" in capsys.readouterr().err
    good = (out / "01_good.html").read_text()
    assert "42" in good  # ... the good one was executed, output included
    assert "ZeroDivisionError" in (out / "02_bad.html").read_text()  # the broken page shows where
    index = (out / "index.html").read_text()
    assert 'href="01_good.html"' in index and "A good notebook" in index
    assert 'href="02_bad.html"' in index and "failed" in index


def test_a_corrupt_notebook_is_a_failed_page_and_stale_pages_go(tmp_path, capsys):
    notebooks = tmp_path / "nb"
    notebooks.mkdir()
    _write(notebooks / "01_good.ipynb", new_markdown_cell("# Good"), new_code_cell("print(1 + 1)"))
    _write(notebooks / "02_old.ipynb", new_markdown_cell("# Old"), new_code_cell("print(0)"))
    out = tmp_path / "course"
    assert build_course(notebooks, out, cell_timeout=60) == 0
    assert (out / "02_old.html").exists()

    (notebooks / "02_old.ipynb").unlink()
    (notebooks / "03_corrupt.ipynb").write_text('{"cells": [ this is not json')
    status = build_course(notebooks, out, cell_timeout=60)  # a second build over the first one

    assert status == 1 and "03_corrupt.ipynb" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [".sim-course", "01_good.html", "03_corrupt.html", "index.html",
                                                     "mathjax"]
    index = (out / "index.html").read_text()
    assert 'href="03_corrupt.html"' in index and "cannot read the notebook" in index
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".sim-")]


def test_the_course_never_replaces_a_directory_that_is_not_a_course(tmp_path):
    import pytest

    from sim.core.errors import UserError

    notebooks = tmp_path / "nb"
    notebooks.mkdir()
    _write(notebooks / "01.ipynb", new_code_cell("1"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    with pytest.raises(UserError, match="not a course build"):
        build_course(notebooks, tmp_path / "mine", cell_timeout=60, overwrite=True)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "keep me"


def test_parameters_are_injected_as_papermill_does(tmp_path):
    import pytest

    from sim.core.errors import ParameterError
    from sim.course import parse_params

    notebooks = tmp_path / "nb"
    notebooks.mkdir()
    params = new_code_cell("CLIENTS = 10\nNAME = 'a'", metadata={"tags": ["parameters"]})
    _write(notebooks / "01.ipynb", new_markdown_cell("# P"), params, new_code_cell("print(f'clients={CLIENTS * 2} {NAME}')"))
    _write(notebooks / "02.ipynb", new_markdown_cell("# Q"), new_code_cell("print('no parameters here')"))
    out = tmp_path / "course"
    assert build_course(notebooks, out, cell_timeout=60, parameters=parse_params(["CLIENTS=21", "NAME=b"])) == 0
    assert "clients=42 b" in (out / "01.html").read_text()
    assert "no parameters here" in (out / "02.html").read_text()
    with pytest.raises(ParameterError, match="no notebook declares"):
        build_course(notebooks, out, cell_timeout=60, parameters={"NOPE": 1})
    assert parse_params(["A=1", "B=0.5", "C=true", "D=(1, 2)", "E=some text"]) == {
        "A": 1, "B": 0.5, "C": True, "D": (1, 2), "E": "some text"}
