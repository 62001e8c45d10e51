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
