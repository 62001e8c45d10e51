"""The HTML course: front page, offline MathJax, quoted tables, titles and navigation, CSS, a real
browser, parallel kernels. One small course (three tiny notebooks) is built once for the module."""

import json
import re
import shutil
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from sim.course import (MARKER, VERDICTS, Page, build_course, course_exporter, course_questions, heading_anchors,
                        section_anchor)

ROOT = Path(__file__).resolve().parent.parent
MATH_SECTION = "1 · The `queue` *section*"  # as a ledger names it: the heading as written in the notebook


def _write(path, *cells):
    nbformat.write(new_notebook(cells=list(cells)), path)


def _claim(n, question, verdict, notebook, section, part=None):
    return SimpleNamespace(id=f"c{n}", question=question, part=part or f"{question}B", fr=f"affirmation {n}",
                           en=f"claim {n}", verdict=verdict, reason=f"reason {n}", notebook=notebook,
                           section=section, scenario="queue", check="tests/x.py::check")


CLAIMS = [_claim(i, 1, verdict, "01_math.ipynb", MATH_SECTION) for i, verdict in enumerate(VERDICTS)] + [
    _claim(10, 1, "half true", "01_math.ipynb", "A heading that is not there"),
    _claim(11, 5, "not measured yet", "05_monitoring.ipynb", ""),
]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A primer, a page with math, a wide DataFrame and a quoted table, and a plain last page."""
    root = tmp_path_factory.mktemp("course")
    notebooks = root / "notebooks"
    notebooks.mkdir()
    (root / "docs").mkdir()
    (root / "docs" / "instructor.md").write_text("# Instructor guide\n\nRun notebook 00 in the first lecture.\n")
    _write(notebooks / "00_primer.ipynb", new_markdown_cell("# 00 · The primer"), new_code_cell("print('primer ran')"))
    _write(notebooks / "01_math.ipynb",
           new_markdown_cell("# 01 · Math, `code` and tables\n\nThe rate $\\lambda$ and $$\\rho = \\frac{\\lambda}{\\mu}$$"),
           new_code_cell("import time\ntime.sleep(1.0)  # finishes after 02: the pages keep the notebooks' order"),
           new_markdown_cell(f"## {MATH_SECTION}\n\nMore: $\\mu > \\lambda$."),
           new_code_cell("import pandas as pd\n"
                         "pd.DataFrame({f'a rather long column name {i}': [i * 1000.5] * 3 for i in range(40)})"),
           new_markdown_cell("<blockquote>\n\n| Technologie | Avantages |\n| --- | --- |\n"
                             "| **WebSocket** | - un<br>- deux |\n\n</blockquote>"))
    _write(notebooks / "09_last.ipynb", new_markdown_cell("# 09 · The last page"), new_code_cell("print(40 + 2)"))
    out = root / "build" / "course"
    status = build_course(notebooks, out, cell_timeout=120, jobs=2, claims=CLAIMS)
    return SimpleNamespace(root=root, notebooks=notebooks, out=out, status=status)


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []  # (tag, attrs dict)
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


def _parse(path):
    parser = _Tags()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _course_titles_or_skip():
    from sim.core.errors import UserError

    try:
        return course_questions()
    except UserError as err:
        pytest.skip(f"no French titles to check: {err}")


def test_without_the_course_text_the_index_still_lists_the_seven_questions(course, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SIM_COURSE_TEXT", str(tmp_path / "absent.md"))
    notebooks = tmp_path / "nb"
    notebooks.mkdir()
    _write(notebooks / "03_only.ipynb", new_markdown_cell("# 03 · Only"), new_code_cell("1"))
    assert build_course(notebooks, tmp_path / "out", cell_timeout=120, claims=[]) == 0
    assert "course text is not found" in capsys.readouterr().err
    index = (tmp_path / "out" / "index.html").read_text()
    assert all(f'<h2 id="question-{n}">Question {n}</h2>' in index for n in range(1, 8))
    assert index.count("Notebook coming.") == 6 and 'href="03_only.html"' in index


def test_the_small_course_builds(course):
    assert course.status == 0
    marker = json.loads((course.out / MARKER).read_text())
    assert set(marker["seconds"]) == {"00_primer.ipynb", "01_math.ipynb", "09_last.ipynb"}
    assert marker["jobs"] == 2 and marker["wall_seconds"] > 0 and marker["cpu_seconds"] > 0
    assert all(v is None or v > 0 for v in marker["kernel_cpu_seconds"].values())
    slowest = marker["slowest_cells"]["01_math.ipynb"]  # where a page's time went, cell by cell
    assert {c["first_line"] for c in slowest} == {"import time", "import pandas as pd"}
    assert all(c["seconds"] >= 0 for c in slowest)


def test_index_is_a_front_page_primer_first_then_the_questions_in_order(course):
    index = (course.out / "index.html").read_text()
    titles = _course_titles_or_skip()
    assert len(titles) == 7 and titles[1] == "Services cloud temps réel"
    positions = [index.index('id="primer"')] + [index.index(f'id="question-{n}"') for n in range(1, 8)]
    assert positions == sorted(positions)
    for n, french in titles.items():
        assert french.replace("&", "&amp;") in index
    assert 'href="00_primer.html"' in index and 'href="01_math.html"' in index
    assert index.count("Notebook coming.") == 6  # questions 2 to 7 have no notebook in this small course
    assert re.search(r'href="01_math.html">01 · Math, code and tables</a> <span class="time">\(ran in \d+\.\d s\)', index)
    assert "How to use this course" in index and "Students." in index and "Instructors." in index
    assert 'href="instructor.html"' in index
    assert "Run notebook 00 in the first lecture." in (course.out / "instructor.html").read_text()
    assert "09_last.html" in index  # a notebook of no question is listed too, after the questions


def test_claims_show_colour_coded_verdicts_linked_to_the_measuring_section(course):
    index = (course.out / "index.html").read_text()
    page = (course.out / "01_math.html").read_text()
    ids = set(re.findall(r'<h\d id="([^"]+)"', page))
    for verdict in VERDICTS:
        css = "verdict-" + verdict.replace(" ", "-")
        assert f'<span class="verdict {css}">{verdict}</span>' in index
        assert re.search(r"\." + css + r" \{ background: #[0-9a-f]{6}", index)  # each has its colour
    links = re.findall(r'href="01_math\.html#([^"]+)">1 · The queue section</a>', index)
    assert len(links) == len(VERDICTS) and set(links) <= ids  # the anchor nbconvert generated
    assert "A heading that is not there</a> <span class=\"failed\">(section not found)</span>" in index
    assert "affirmation 11" in index  # question 5 has no notebook here: its claim is listed, unlinked
    q1, q2 = index.index('id="question-1"'), index.index('id="question-2"')
    assert all(q1 < index.index(f"affirmation {i}") < q2 for i in range(5))


def test_section_anchors_follow_nbconvert_headings():
    exporter = course_exporter(__import__("nbconvert").HTMLExporter)
    nb = new_notebook(cells=[new_markdown_cell("## 2 · 3B, « connexion persistante » vs `ip_hash`: the *crossover*")])
    body, _ = exporter.from_notebook_node(nb)
    page = Page(Path("x.ipynb"), "x", anchors=heading_anchors(body))
    anchor = section_anchor(page, "## 2 · 3B, « connexion persistante » vs `ip_hash`: the *crossover*")
    assert anchor and f'id="{anchor}"' in body


def test_pages_load_no_script_or_style_from_the_network(course):
    pages = sorted(course.out.glob("*.html"))
    assert len(pages) == 5  # index, instructor guide, three notebooks
    for page in pages:
        for tag, attrs in _parse(page).tags:
            url = attrs.get("src") if tag == "script" else attrs.get("href") if tag == "link" else None
            if url is None:
                continue
            assert not re.match(r"(https?:)?//", url), f"{page.name} loads {url}"
            assert (page.parent / url.split("?")[0]).is_file(), f"{page.name}: {url} is not in the course"
    scripts = [a.get("src") for t, a in _parse(course.out / "01_math.html").tags if t == "script" and a.get("src")]
    assert scripts == ["mathjax/tex-svg.js"]
    assert (course.out / "mathjax" / "LICENSE").is_file()
    assert (course.out / "mathjax" / "input" / "tex" / "extensions" / "ams.js").is_file()  # loaded on demand


def test_every_page_has_its_notebook_title_and_links_to_the_index_and_the_next_page(course):
    expected = {"00_primer.html": ("00 · The primer", "01_math.html"),
                "01_math.html": ("01 · Math, code and tables", "09_last.html"),
                "09_last.html": ("09 · The last page", None)}
    for name, (title, following) in expected.items():
        parsed = _parse(course.out / name)
        assert parsed.title == title
        hrefs = [a.get("href") for t, a in parsed.tags if t == "a"]
        assert hrefs.count("index.html") == 2  # at the top and at the bottom
        assert (following in hrefs) if following else not any(a.get("rel") == "next" for t, a in parsed.tags)
    assert "primer ran" in (course.out / "00_primer.html").read_text()


def test_wide_outputs_scroll_inside_their_cell_and_plots_fit_the_page(course):
    page = (course.out / "01_math.html").read_text()
    assert re.search(r"\.jp-OutputArea-output \{ overflow-x: auto;", page)
    assert re.search(r"\.jp-RenderedImage img \{ max-width: 100%; height: auto; \}", page)
    assert "a rather long column name 39" in page


def _tables(html_text):
    """Each <table> as a list of rows of cell texts, with '<br>' kept as '|'."""
    tables = re.findall(r"<table>(.*?)</table>", html_text, flags=re.S)
    out = []
    for table in tables:
        rows = re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)
        out.append([[re.sub(r"<[^>]+>", "", re.sub(r"<br\s*/?>", "|", c)).strip()
                     for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, flags=re.S)] for row in rows])
    return out


@pytest.mark.parametrize("notebook, header, first_row", [
    ("03_websockets_vs_webhooks.ipynb", ["Technologie", "Avantages", "Limites"],
     ["WebSocket", "- Communication bidirectionnelle instantanée|- Idéal pour temps réel (chat, jeux, trading)",
      "- Connexion persistante coûteuse en ressources|- Plus complexe à sécuriser et scaler"]),
    ("06_deployment.ipynb", ["Aspect", "Impact"], None),
])
def test_tables_quoted_from_the_course_render_as_tables(notebook, header, first_row):
    """The course's own tables, quoted at the top of notebooks 03 and 06 (only the markdown is rendered)."""
    nb = nbformat.read(ROOT / "notebooks" / notebook, as_version=4)
    quoting = [c for c in nb.cells if c.cell_type == "markdown" and "<blockquote>" in c.source]
    assert quoting, f"{notebook}: no quoted course text"
    body, _ = course_exporter(__import__("nbconvert").HTMLExporter).from_notebook_node(
        new_notebook(cells=quoting))
    quotes = re.findall(r"<blockquote>(.*?)</blockquote>", body, flags=re.S)
    tables = [t for q in quotes for t in _tables(q)]
    assert [t for t in tables if t[0] == header], f"{notebook}: the quoted table is not a <table>: {tables}"
    table = next(t for t in tables if t[0] == header)
    assert len(table) == 3 and all(len(row) == len(header) for row in table)
    if first_row:
        assert table[1] == first_row
    assert "| ---" not in "".join(quotes)  # no markdown pipes left over in the quote


def test_parallel_kernels_give_the_same_pages_as_one_kernel(course, tmp_path, capsys):
    serial = tmp_path / "serial"
    assert build_course(course.notebooks, serial, cell_timeout=120, jobs=1, claims=CLAIMS) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert [line.split()[1] for line in lines] == ["00_primer.ipynb", "01_math.ipynb", "09_last.ipynb"]
    for name in ("00_primer.html", "01_math.html", "09_last.html"):
        assert (serial / name).read_bytes() == (course.out / name).read_bytes(), name


def test_jobs_must_be_positive(course, tmp_path):
    from sim.core.errors import ParameterError

    with pytest.raises(ParameterError, match="--jobs"):
        build_course(course.notebooks, tmp_path / "x", jobs=0, claims=[])


def test_ci_installs_chromium_for_the_browser_check():
    assert "chromium:chromium" in (ROOT / ".ci" / "run").read_text()


# --- a real browser -----------------------------------------------------------------------------
def _chromium_or_skip():
    from sim.course_browser import find_chromium

    if find_chromium() is None:
        pytest.skip("chromium not installed (Debian package `chromium`): the browser check is skipped")


def test_chromium_sees_typeset_math_no_console_error_and_no_cut_table(course):
    _chromium_or_skip()
    from sim.course_browser import check_pages

    shots = course.out / "screenshots"
    index, page = check_pages([course.out / "index.html", course.out / "01_math.html"], shots)
    assert index.ok, index.line()
    assert index.title == "Real-time systems: the course, simulated"
    assert page.ok, page.line()
    assert page.mathjax_loaded and page.typeset == 3  # $\lambda$, the display formula, $\mu > \lambda$
    assert page.raw_tex == [] and page.console_errors == [] and page.remote_requests == []
    assert page.wide_outputs >= 1 and page.cut_outputs == 0 and not page.page_scrolls_sideways
    assert page.title == "01 · Math, code and tables"
    for shot in (shots / "index.png", shots / "01_math.png"):
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000


def test_chromium_check_reports_console_errors_raw_tex_and_network_requests(tmp_path, monkeypatch, request):
    _chromium_or_skip()
    from sim.course_browser import check_pages

    # this run's temporary files, to see that the check leaves none (a short path: Chromium's
    # socket path must stay under 108 bytes, and tmp_path is long)
    scratch = Path(tempfile.mkdtemp(prefix="sim-test-"))
    request.addfinalizer(lambda: shutil.rmtree(scratch, ignore_errors=True))
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><head><title>bad</title>"
                   "<script>console.error('boom')</script>"
                   '<script src="http://127.0.0.1:9/missing.js"></script></head>'
                   "<body><p>The rate $\\lambda$ was not typeset.</p></body></html>")
    (report,) = check_pages([bad], None)
    assert not report.ok
    assert any("boom" in e for e in report.console_errors)
    assert report.raw_tex == ["$\\lambda$"] and not report.mathjax_loaded
    assert report.remote_requests == ["http://127.0.0.1:9/missing.js"]
    assert list(scratch.iterdir()) == []  # neither the profile nor Chromium's singleton socket directory


def test_every_claim_of_the_ledger_links_to_a_heading_of_its_notebook():
    """Against the real notebooks (only their markdown is rendered): every section the ledger names
    resolves to an anchor nbconvert generates."""
    try:
        from sim.claims import load_claims
    except ModuleNotFoundError:
        pytest.skip("sim.claims (the claims ledger) does not exist yet")
    exporter = course_exporter(__import__("nbconvert").HTMLExporter)
    pages = {}
    for claim in load_claims():
        if claim.verdict == "not measured yet" or not claim.section:
            continue
        if claim.notebook not in pages:
            nb = nbformat.read(ROOT / "notebooks" / claim.notebook, as_version=4)
            nb.cells = [c for c in nb.cells if c.cell_type == "markdown"]
            body, _ = exporter.from_notebook_node(nb)
            pages[claim.notebook] = Page(Path(claim.notebook), claim.notebook, anchors=heading_anchors(body))
        assert section_anchor(pages[claim.notebook], claim.section), (claim.id, claim.notebook, claim.section)


def test_the_course_text_is_found_through_the_variable_or_beside_the_checkout(tmp_path, monkeypatch):
    from sim.core.errors import UserError
    from sim.data import course_text, course_text_path

    given = tmp_path / "course.md"
    given.write_text("# Question 1 – Un titre\n", encoding="utf-8")
    monkeypatch.setenv("SIM_COURSE_TEXT", str(given))
    assert course_text_path() == given and course_questions() == {1: "Un titre"}
    monkeypatch.setenv("SIM_COURSE_TEXT", str(tmp_path / "absent.md"))
    with pytest.raises(UserError, match="SIM_COURSE_TEXT"):
        course_text()
    monkeypatch.delenv("SIM_COURSE_TEXT")
    found = course_text_path()
    assert found is None or found.parent.parent.name == "shared"
