"""``python -m sim course``: execute every notebook headless and write an HTML course.

Each notebook in the notebook directory is run top to bottom in a fresh kernel (from the
notebook's own directory, as a student would) and exported to ``OUT/NAME.html``. The kernels run
in parallel (``jobs``, one per core by default); pages, index and progress lines do not depend on
which notebook finished first. A notebook that fails (or cannot even be read) still gets its page
(showing the error), the others are still built, and the command exits 1 naming the failures.

``OUT/index.html`` is the course's front page: the primer, then the seven questions of the course
in order, each with its French title (from the course text, :func:`sim.data.course_text`), its page (or
"coming"), how long it took to run, and the claims of the ledger (``sim.claims``) with their
verdicts, each linked to the section of the page that measures it. Every page works from
``file://`` with no network: MathJax 3 is copied from the ``django-static-mathjax`` package (MathJax's own
distribution; Django is not needed) into ``OUT/mathjax/`` and the pages load nothing from outside.
Its SVG output draws glyphs as paths: Chromium refuses web fonts from ``file://``, so a font-based
output (MathJax 2's HTML-CSS, KaTeX) would fall back to the wrong fonts and log errors.

Parameters: ``--param NAME=VALUE`` is injected as papermill does (a cell tagged
``injected-parameters`` after the cell tagged ``parameters``) into every notebook that declares
``NAME``; ``papermill notebooks/07_client_resilience.ipynb out.ipynb -p CLIENTS 2000`` works too.

The course is built in a temporary directory and renamed into place, so an interrupted build
leaves the previous course intact and pages of notebooks that no longer exist disappear.
"""

from __future__ import annotations

import ast
import html
import json
import os
import re
import shutil
import sys
import time
import unicodedata
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Sequence

import nbformat

MARKER = ".sim-course"  # written into every build: tells a course directory from anything else
MATHJAX_DIR = "mathjax"  # OUT/mathjax/: MathJax 3 from the django-static-mathjax package
INDEX_TITLE = "Real-time systems: the course, simulated"
QUESTIONS = range(1, 8)  # the course has seven questions
VERDICTS = ("holds", "holds with a condition", "half true", "misleading", "not measured yet")

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def default_notebook_dir() -> Path:
    """``./notebooks`` if it exists, else the ``notebooks`` folder next to the installed package."""
    here = Path.cwd() / "notebooks"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "notebooks"


def _plain(markdown: str) -> str:
    """A heading's text without its markdown marks: ``## 1 · The `queue` *scenario*`` -> ``1 · The queue scenario``."""
    text = markdown.strip().lstrip("#").strip()
    text = re.sub(r"\*\*|__|[`*]", "", text)
    return " ".join(text.split())


def _title(nb: nbformat.NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return _plain(line)
    return fallback


def _read_title(path: Path) -> str:
    try:
        return _title(nbformat.read(path, as_version=4), path.stem)
    except Exception:  # unreadable: its page says so when it is built
        return path.stem


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["CLIENTS=2000", "NAME=text"]`` -> values typed as papermill's ``-p`` does (numbers, booleans,
    None, Python literals such as tuples; anything else stays a string)."""
    from sim.core.errors import ParameterError

    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ParameterError("--param", f"takes NAME=VALUE with NAME a Python name, got {item!r}")
        if name in out:
            raise ParameterError("--param", f"{name} is given twice; give it once")
        low = text.strip().lower()
        if low in ("true", "false"):
            out[name] = low == "true"
            continue
        try:
            out[name] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            out[name] = text
    return out


def notebook_parameters(path: Path) -> list[str]:
    """Names assigned at the top level of the notebook's cell tagged ``parameters`` (what papermill
    overrides); empty for a notebook without one or that cannot be read."""
    try:
        nb = nbformat.read(path, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", []))
        tree = ast.parse(cell.source)
    except Exception:  # unreadable notebook (reported when it is built), no parameters cell
        return []
    names = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def execute_notebook(path: Path, cell_timeout: float | None = 600.0,
                     parameters: dict[str, Any] | None = None,
                     cpu: list[float] | None = None) -> tuple[nbformat.NotebookNode, str | None]:
    """Run ``path`` in a fresh kernel; returns the executed notebook and an error message or None.

    ``parameters`` are injected after the cell tagged ``parameters``, as papermill does. Safe to
    call from several threads at once: each call has its own kernel process. ``cpu``, if given,
    receives the CPU seconds the kernel (and the processes it started) had used after its last cell."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    try:
        if parameters:  # papermill's own loader adds the metadata its parameterize step expects
            from papermill.iorw import load_notebook_node

            nb = load_notebook_node(str(path))
        else:
            nb = nbformat.read(path, as_version=4)
    except Exception as err:  # not JSON, not a notebook: a failed page, not a traceback
        message = f"cannot read the notebook: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {path.stem}")]), message
    if parameters:
        from papermill.parameterize import parameterize_notebook

        nb = parameterize_notebook(nb, parameters, kernel_name="python3", language="python")
    client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}},
                            # the kernel's start-up warnings would interleave with our progress lines
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])
    if cpu is not None:
        client.on_cell_executed = lambda **_: _kernel_cpu(client, cpu)
    try:
        client.execute()
    except CellExecutionError as err:
        lines = _ANSI.sub("", str(err)).strip().splitlines()
        return nb, lines[-1] if lines else type(err).__name__
    except Exception as err:  # a dead kernel, a timeout: still keep what ran so far
        return nb, f"{type(err).__name__}: {err}"
    return nb, None


def _kernel_cpu(client: Any, cpu: list[float]) -> None:
    """CPU seconds of the client's kernel process and its children, into ``cpu`` (one value)."""
    try:
        import psutil  # ipykernel's own dependency

        process = psutil.Process(client.km.provisioner.pid)
        times = process.cpu_times()
        seconds = times.user + times.system + times.children_user + times.children_system
        seconds += sum(sum(c.cpu_times()[:2]) for c in process.children(recursive=True))
    except Exception:  # no psutil, a kernel already gone: the time is simply not reported
        return
    cpu[:] = [max([seconds, *cpu])]


def default_jobs() -> int:
    """Kernels run at once by default: one per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def build_course(notebook_dir: Path | None, out: Path, *, cell_timeout: float | None = 600.0,
                 parameters: dict[str, Any] | None = None, overwrite: bool = False,
                 jobs: int | None = None, claims: Sequence[Any] | None = None,
                 browser_check: bool = False) -> int:
    """Execute and export every notebook; returns the exit status (0 if all ran).

    ``jobs``: kernels at once (default :func:`default_jobs`). ``claims``: the claims shown on the
    index (default ``sim.claims.load_claims()``, none if that module does not exist yet).
    ``browser_check``: open every page in headless Chromium afterwards (:mod:`sim.course_browser`),
    save screenshots into ``OUT/screenshots/`` and fail the build on a console error or raw TeX."""
    from sim.core.errors import ParameterError, UserError
    from sim.core.result import check_output_dir, replace_directory

    notebook_dir = notebook_dir or default_notebook_dir()
    notebooks = sorted(p for p in notebook_dir.glob("*.ipynb") if not p.name.startswith("."))
    if not notebooks:
        raise ParameterError("--notebooks", f"no .ipynb files in {notebook_dir}")
    if jobs is not None and jobs < 1:
        raise ParameterError("--jobs", f"must be at least 1, got {jobs}")
    out = check_output_dir(out)
    parameters = parameters or {}
    declared = {path: notebook_parameters(path) for path in notebooks} if parameters else {}
    for name in parameters:
        if not any(name in names for names in declared.values()):
            known = sorted({n for names in declared.values() for n in names})
            raise ParameterError("--param", f"no notebook declares {name} in its parameters cell; "
                                            f"known: {', '.join(known)}")
    if claims is None:
        claims = load_claims()  # before an expensive build, so that a broken ledger fails at once
    if browser_check:
        from sim.course_browser import find_chromium

        if find_chromium() is None:
            raise ParameterError("--browser-check", "needs Chromium (Debian package `chromium`); none found")
    try:
        questions = course_questions()
    except UserError as err:  # the pages are still worth building: the index goes without titles
        print(f"python -m sim: warning: {err}; the index shows no French titles", file=sys.stderr)
        questions = {}
    job = _Build(notebooks, notebook_dir, out, cell_timeout, parameters, declared,
                 jobs or default_jobs(), list(claims), _previous_seconds(out), browser_check, questions)
    return replace_directory(out, job.fill, is_ours=_is_course, same=_is_course,
                             overwrite=overwrite, what="a course build")


def load_claims() -> list[Any]:
    """The ledger's claims (``sim.claims.load_claims()``), or none while that module does not exist."""
    try:
        from sim.claims import load_claims as ledger
    except ModuleNotFoundError as err:
        if err.name == "sim.claims":
            return []
        raise
    return list(ledger())


def _is_course(folder: Path) -> bool:
    """A directory written by this builder (the marker, or the index title of builds before it)."""
    if (folder / MARKER).exists():
        return True
    index = folder / "index.html"
    try:
        return index.exists() and "the course, simulated" in index.read_text(encoding="utf-8")
    except OSError:
        return False


def _previous_seconds(out: Path) -> dict[str, float]:
    """Seconds each notebook took in the previous build of ``out`` (its marker), to start the
    longest first; empty if there is none."""
    try:
        return {k: float(v) for k, v in json.loads((out / MARKER).read_text(encoding="utf-8"))["seconds"].items()}
    except Exception:  # no build yet, or a marker of an older builder
        return {}


@dataclass
class Page:
    """One notebook's page: what the index and the navigation need."""

    notebook: Path
    title: str
    error: str | None = None
    seconds: float = 0.0  # wall-clock time to execute it
    cpu_seconds: float | None = None  # CPU time its kernel used (None if not measured)
    anchors: dict[str, str] = field(default_factory=dict)  # heading text (normalised) -> id
    slowest: list[dict[str, Any]] = field(default_factory=list)  # where its time went: see slowest_cells

    @property
    def name(self) -> str:
        return self.notebook.stem + ".html"


@dataclass
class _Build:
    notebooks: list[Path]
    notebook_dir: Path
    out: Path
    cell_timeout: float | None
    parameters: dict[str, Any]
    declared: dict[Path, list[str]]
    jobs: int
    claims: list[Any]
    previous: dict[str, float]
    browser_check: bool
    questions: dict[int, str]  # number -> French title

    def fill(self, folder: Path) -> int:
        from nbconvert import HTMLExporter

        exporter = course_exporter(HTMLExporter)
        wall_started = time.perf_counter()
        cpu_started = _cpu_seconds()
        pages = [Page(path, _read_title(path)) for path in self.notebooks]
        # Longest first (as the previous build measured), so that the last kernel to finish does not
        # start last; results are written in notebook order whatever the order they finish in.
        order = sorted(range(len(pages)), key=lambda i: -self.previous.get(pages[i].notebook.name, float("inf")))
        done = 0
        with ThreadPoolExecutor(max_workers=min(self.jobs, len(pages)), thread_name_prefix="course-kernel") as pool:
            running: dict[Future, int] = {pool.submit(self._execute, pages[i].notebook): i for i in order}
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in sorted(finished, key=lambda f: running[f]):
                    i = running.pop(future)
                    nb, pages[i].error, pages[i].seconds, pages[i].cpu_seconds = future.result()
                    pages[i].slowest = slowest_cells(nb)
                    self._export(exporter, nb, pages, i, folder)
                    done += 1
                    page = pages[i]
                    cpu = f", {page.cpu_seconds:.1f} CPU s" if page.cpu_seconds is not None else ""
                    print(f"[{done}/{len(pages)}] {page.notebook.name} "
                          f"{'FAILED: ' + page.error if page.error else 'ok'} ({page.seconds:.1f} s{cpu})", flush=True)
        wall = time.perf_counter() - wall_started
        cpu = _cpu_seconds() - cpu_started
        copy_mathjax(folder)
        instructor = _instructor_page(self.notebook_dir, folder)
        (folder / "index.html").write_text(
            index_html(pages, self.questions, self.claims, instructor=instructor,
                       build=(wall, cpu, self.jobs)), encoding="utf-8")
        (folder / MARKER).write_text(json.dumps({
            "written_by": "python -m sim course", "wall_seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
            "jobs": self.jobs, "seconds": {p.notebook.name: round(p.seconds, 3) for p in pages},
            "kernel_cpu_seconds": {p.notebook.name: p.cpu_seconds and round(p.cpu_seconds, 3) for p in pages},
            "slowest_cells": {p.notebook.name: p.slowest for p in pages}},
            indent=1) + "\n", encoding="utf-8")
        total = sum(p.seconds for p in pages)
        print(f"wrote {self.out / 'index.html'}: {len(pages)} notebooks in {wall:.1f} s wall on {self.jobs} "
              f"kernel(s) at once (the pages' times add up to {total:.1f} s; {cpu:.1f} CPU s)")
        status = 0
        failed = [p.notebook.name for p in pages if p.error]
        if failed:
            print(f"python -m sim: error: {len(failed)} notebook(s) failed: {', '.join(failed)} "
                  f"(their pages show where)", file=sys.stderr)
            status = 1
        if self.browser_check:
            from sim.course_browser import check_pages

            checked = check_pages([folder / "index.html"] + [folder / p.name for p in pages], folder / "screenshots")
            for report in checked:
                print(report.line())
            wrong = [r.path.name for r in checked if not r.ok]
            if wrong:
                print(f"python -m sim: error: {len(wrong)} page(s) failed in Chromium: {', '.join(wrong)}",
                      file=sys.stderr)
                status = 1
        return status

    def _execute(self, path: Path) -> tuple[nbformat.NotebookNode, str | None, float, float | None]:
        started = time.perf_counter()
        mine = {k: v for k, v in self.parameters.items() if k in self.declared.get(path, ())}
        cpu: list[float] = []
        nb, error = execute_notebook(path, self.cell_timeout, mine, cpu)
        return nb, error, time.perf_counter() - started, (cpu[0] if cpu else None)

    @staticmethod
    def _export(exporter, nb: nbformat.NotebookNode, pages: list[Page], i: int, folder: Path) -> None:
        page = pages[i]
        nb.metadata["title"] = page.title  # the browser's title (nbconvert's default is "Notebook")
        nav = {"index": "index.html",
               "previous": (pages[i - 1].name, _short(pages[i - 1].title)) if i > 0 else None,
               "next": (pages[i + 1].name, _short(pages[i + 1].title)) if i + 1 < len(pages) else None}
        body, _ = exporter.from_notebook_node(nb, resources={"course_nav": nav})
        (folder / page.name).write_text(body, encoding="utf-8")
        page.anchors = heading_anchors(body)


def _short(title: str) -> str:
    """A title up to its colon, for the navigation bar: ``03 · WebSockets vs webhooks``."""
    return title.split(":")[0].strip() or title


def slowest_cells(nb: nbformat.NotebookNode, count: int = 3) -> list[dict[str, Any]]:
    """The ``count`` code cells that took longest (nbclient's timing metadata), with their first line."""
    from datetime import datetime

    timed = []
    for index, cell in enumerate(nb.cells):
        execution = cell.get("metadata", {}).get("execution", {})
        try:
            started = datetime.fromisoformat(execution["iopub.execute_input"].replace("Z", "+00:00"))
            ended = datetime.fromisoformat(execution["shell.execute_reply"].replace("Z", "+00:00"))
        except (KeyError, ValueError, AttributeError):
            continue
        first = next((line for line in cell.source.splitlines() if line.strip() and not line.startswith("#")), "")
        timed.append({"cell": index, "seconds": round((ended - started).total_seconds(), 3), "first_line": first[:80]})
    return sorted(timed, key=lambda c: -c["seconds"])[:count]


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the kernels), in seconds."""
    now = os.times()
    return now.user + now.system + now.children_user + now.children_system


# --- the pages ----------------------------------------------------------------------------------
_MATHJAX_CONFIG = r"""
<script>
window.MathJax = {
  tex: {inlineMath: [["$", "$"], ["\\(", "\\)"]], displayMath: [["$$", "$$"], ["\\[", "\\]"]],
        processEscapes: true, processEnvironments: true, tags: "ams"},
  svg: {fontCache: "global"}
};
</script>
"""

COURSE_CSS = """
body.jp-Notebook main { max-width: 1100px; margin: 0 auto; }
nav.course-nav { display: flex; justify-content: space-between; gap: 1em; flex-wrap: wrap;
  max-width: 1100px; margin: 0.5em auto; padding: 0.4em 1em; font-family: system-ui, sans-serif;
  border-bottom: 1px solid #ddd; }
nav.course-nav.bottom { border-bottom: none; border-top: 1px solid #ddd; }
/* wide DataFrames and long printed lines scroll inside their cell instead of being cut off */
.jp-OutputArea-output { overflow-x: auto; max-width: 100%; }
.jp-OutputArea-output.jp-RenderedHTMLCommon table { table-layout: auto; }
.jp-RenderedText pre { overflow-x: auto; }
.jp-RenderedMarkdown table { display: block; overflow-x: auto; max-width: 100%; }
.jp-RenderedMarkdown td, .jp-RenderedMarkdown th { white-space: normal; }
/* plots fill the page's width at most, keeping their proportions */
.jp-RenderedImage img { max-width: 100%; height: auto; }
"""

_TEMPLATE = """{%- extends 'index.html.j2' -%}
{# the lab template, offline: no require.js, no mermaid, MathJax from OUT/mathjax/ #}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}
""" + _MATHJAX_CONFIG + """
<script defer src="{{ resources.mathjax_url }}"></script>
{%- endblock html_head_js_mathjax -%}
{% block extra_css %}<style type="text/css">""" + COURSE_CSS + """</style>{% endblock extra_css %}
{%- macro course_nav(nav, where) -%}
{%- if nav -%}
<nav class="course-nav {{ where }}">
  <a href="{{ nav.index }}">&#8962; Course index</a>
  {%- if nav.previous %} <a href="{{ nav.previous[0] }}" rel="prev">&larr; {{ nav.previous[1] | e }}</a>{% endif %}
  {%- if nav.next %} <a href="{{ nav.next[0] }}" rel="next">Next: {{ nav.next[1] | e }} &rarr;</a>{% endif %}
</nav>
{%- endif -%}
{%- endmacro -%}
{%- block body_header -%}
{{ super() }}
{{ course_nav(resources.course_nav, "top") }}
{%- endblock body_header -%}
{% block body_footer %}
{{ course_nav(resources.course_nav, "bottom") }}
{{ super() }}
{% endblock body_footer %}
"""


def course_exporter(exporter_class):
    """nbconvert's lab HTML exporter with the course's template: offline MathJax, CSS, navigation."""
    import jinja2

    return exporter_class(template_name="lab", template_file="sim_course.html.j2",
                          extra_loaders=[jinja2.DictLoader({"sim_course.html.j2": _TEMPLATE})],
                          mathjax_url=f"{MATHJAX_DIR}/tex-svg.js")


def mathjax_source() -> Path:
    """MathJax 3's browser components (``es5/``) as the ``django-static-mathjax`` package ships them."""
    from importlib.util import find_spec

    spec = find_spec("mathjax")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        es5 = Path(folder) / "static" / "mathjax" / "es5"
        if (es5 / "tex-svg.js").is_file():
            return es5
    raise FileNotFoundError("MathJax not found: pip install django-static-mathjax (see requirements.txt)")


# The other combined components (CommonHTML output, MathML input, node): not loaded by the pages.
_MATHJAX_UNUSED = ("*chtml*.js", "mml-*.js", "tex-mml-*.js", "tex-svg-full.js", "node-main.js")


def copy_mathjax(folder: Path) -> None:
    """MathJax into ``folder/mathjax/``: ``tex-svg.js`` and what it loads on demand (TeX extensions,
    menu, accessibility), with MathJax's licence."""
    source = mathjax_source()
    target = folder / MATHJAX_DIR
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*_MATHJAX_UNUSED))
    licence = source.parent / "LICENSE"
    if licence.is_file():
        shutil.copy2(licence, target / "LICENSE")


class _Headings(HTMLParser):
    """(id, text) of every heading with an id, without nbconvert's ``¶`` anchor link."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str]] = []
        self._open: list[Any] | None = None  # [id, text parts, depth of links inside]

    def handle_starttag(self, tag, attrs):
        if re.fullmatch(r"h[1-6]", tag) and self._open is None:
            ident = dict(attrs).get("id")
            if ident:
                self._open = [tag, ident, [], 0]
        elif self._open is not None and tag == "a" and "anchor-link" in (dict(attrs).get("class") or ""):
            self._open[3] += 1

    def handle_endtag(self, tag):
        if self._open is None:
            return
        if tag == "a" and self._open[3]:
            self._open[3] -= 1
        elif tag == self._open[0]:
            self.found.append((self._open[1], "".join(self._open[2])))
            self._open = None

    def handle_data(self, data):
        if self._open is not None and not self._open[3]:
            self._open[2].append(data)


def _key(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).replace("\u00b6", "").split()).casefold()


def heading_anchors(page_html: str) -> dict[str, str]:
    """Heading text (normalised) -> the anchor nbconvert generated for it (first one wins)."""
    parser = _Headings()
    parser.feed(page_html)
    anchors: dict[str, str] = {}
    for ident, text in parser.found:
        anchors.setdefault(_key(text), ident)
    return anchors


def section_anchor(page: Page, section: str) -> str | None:
    """The anchor of the heading ``section`` (as written in the notebook, markdown marks allowed)."""
    return page.anchors.get(_key(_plain(section)))


def course_questions(text: str | None = None) -> dict[int, str]:
    """Question number -> its French title, from the course text (``# Question 3 – WebSockets vs Webhooks``)."""
    if text is None:
        from sim.data import course_text

        text = course_text()
    found = {}
    for match in re.finditer(r"^#\s+Question\s+(\d+)\s*[–—-]\s*(.+?)\s*$", text, flags=re.MULTILINE):
        found.setdefault(int(match.group(1)), match.group(2))
    return found


def _instructor_page(notebook_dir: Path, folder: Path) -> str | None:
    """``docs/instructor.md`` next to the notebooks, rendered to ``instructor.html``; its name, or None."""
    guide = notebook_dir.resolve().parent / "docs" / "instructor.md"
    if not guide.is_file():
        return None
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    body = markdown2html_mistune(guide.read_text(encoding="utf-8"))
    (folder / "instructor.html").write_text(f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Instructor guide</title>
  <style>{_INDEX_CSS}</style>
</head>
<body>
  <nav class="course-nav"><a href="index.html">&#8962; Course index</a></nav>
{body}
</body>
</html>
""", encoding="utf-8")
    return "instructor.html"


# --- the index ----------------------------------------------------------------------------------
_INDEX_CSS = """
    body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }
    .failed { color: #b00020; } .time, .coming { color: #666; font-size: 0.9em; }
    h2 .fr { font-weight: normal; }
    table.claims { border-collapse: collapse; width: 100%; margin: 0.5em 0 1.5em; font-size: 0.92em; }
    table.claims th, table.claims td { border-bottom: 1px solid #ddd; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }
    .verdict { display: inline-block; padding: 0.05em 0.5em; border-radius: 0.8em; white-space: nowrap; font-size: 0.9em; }
    .verdict-holds { background: #d7f5dd; color: #0b5d1e; }
    .verdict-holds-with-a-condition { background: #e6f2c4; color: #3d5a00; }
    .verdict-half-true { background: #ffe9b3; color: #6b4a00; }
    .verdict-misleading { background: #ffd6d6; color: #8a0010; }
    .verdict-not-measured-yet { background: #e8e8e8; color: #444; }
    .legend .verdict { margin-right: 0.3em; }
    nav.course-nav { margin-bottom: 1em; }
"""


def verdict_class(verdict: str) -> str:
    return "verdict-" + re.sub(r"[^a-z]+", "-", verdict.lower()).strip("-")


def _question_of(notebook: Path) -> int | None:
    match = re.match(r"(\d+)_", notebook.name)
    return int(match.group(1)) if match else None


def _page_line(page: Page) -> str:
    failed = f' <strong class="failed">failed: {html.escape(page.error)}</strong>' if page.error else ""
    return (f'<a href="{html.escape(page.name)}">{html.escape(page.title)}</a>{failed}'
            f' <span class="time">(ran in {page.seconds:.1f} s)</span>')


def _claims_table(claims: list[Any], pages: dict[str, Page]) -> str:
    rows = []
    for claim in claims:  # in the ledger's order
        page = pages.get(str(claim.notebook))
        section = html.escape(_plain(str(claim.section))) if claim.section else ""
        if page is not None and claim.section:
            anchor = section_anchor(page, str(claim.section))
            href = page.name + (f"#{anchor}" if anchor else "")
            where = f'<a href="{html.escape(href, quote=True)}">{section}</a>'
            if anchor is None:
                where += ' <span class="failed">(section not found)</span>'
        else:
            where = section or '<span class="coming">not measured yet</span>'
        verdict = str(claim.verdict)
        rows.append(
            f'<tr id="claim-{html.escape(str(claim.id))}"><td>{html.escape(str(claim.part))}</td>'
            f'<td lang="fr">« {html.escape(str(claim.fr))} »<br><span class="time">{html.escape(str(claim.en))}</span></td>'
            f'<td><span class="verdict {verdict_class(verdict)}">{html.escape(verdict)}</span></td>'
            f'<td>{html.escape(str(claim.reason))}</td><td>{where}</td></tr>')
    return ('<table class="claims">\n<thead><tr><th>Part</th><th>The course says</th><th>Verdict</th>'
            '<th>Why</th><th>Measured in</th></tr></thead>\n<tbody>\n' + "\n".join(rows) + "\n</tbody></table>")


def index_html(pages: list[Page], questions: dict[int, str], claims: list[Any], *,
               instructor: str | None = None, build: tuple[float, float, int] | None = None) -> str:
    """The course's front page: how to use it, the primer, the questions in order with their claims.

    ``questions``: number -> French title; empty (no course text), the seven questions go untitled."""
    questions = questions or {n: "" for n in QUESTIONS}
    by_question: dict[int, list[Page]] = {}
    others: list[Page] = []
    for page in pages:
        number = _question_of(page.notebook)
        if number is not None and (number == 0 or number in questions):
            by_question.setdefault(number, []).append(page)
        else:
            others.append(page)
    by_notebook = {page.notebook.name: page for page in pages}
    claims_of: dict[int, list[Any]] = {}
    for claim in claims:
        claims_of.setdefault(int(claim.question), []).append(claim)

    parts = []
    primer = by_question.get(0, [])
    if primer:
        parts.append('<h2 id="primer">Start here: the primer</h2>\n<ul>\n'
                     + "\n".join(f"  <li>{_page_line(p)}</li>" for p in primer) + "\n</ul>")
    for number in sorted(set(questions) | set(claims_of)):
        french = questions.get(number, "")
        heading = (f'<h2 id="question-{number}">Question {number}'
                   + (f' – <span class="fr" lang="fr">{html.escape(french)}</span>' if french else "") + "</h2>")
        mine = by_question.get(number, [])
        body = ("<ul>\n" + "\n".join(f"  <li>{_page_line(p)}</li>" for p in mine) + "\n</ul>") if mine \
            else '<p class="coming">Notebook coming.</p>'
        if claims_of.get(number):
            body += "\n" + _claims_table(claims_of[number], by_notebook)
        parts.append(heading + "\n" + body)
    if others:
        parts.append('<h2 id="more">More notebooks</h2>\n<ul>\n'
                     + "\n".join(f"  <li>{_page_line(p)}</li>" for p in others) + "\n</ul>")

    legend = ""
    if claims:
        legend = ('<p class="legend">Each claim of the course\'s answers has a verdict, measured in the '
                  'section it links to: ' + " ".join(
                      f'<span class="verdict {verdict_class(v)}">{v}</span>' for v in VERDICTS) + "</p>")
    guide = (f'the <a href="{instructor}">instructor guide</a>' if instructor
             else "the instructor guide (<code>docs/instructor.md</code>, coming)")
    footer = ""
    if build is not None:
        wall, cpu, jobs = build
        total = sum(p.seconds for p in pages)
        footer = (f'<p class="time">Built with <code>python -m sim course</code> in {wall:.0f} s '
                  f"({jobs} notebook(s) at once; the page times add up to {total:.0f} s, {cpu:.0f} CPU s).</p>")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{INDEX_TITLE}</title>
  <style>{_INDEX_CSS}</style>
</head>
<body>
  <h1>{INDEX_TITLE}</h1>
  <p>The seven questions of the course on real-time systems, answered by a discrete-event simulator.
  Each page is a notebook executed from top to bottom with its default parameters; each question
  lists what the course's answer claims and what the simulation says about it.</p>
  <h2 id="how-to-use">How to use this course</h2>
  <p><strong>Students.</strong> Start with the primer, then take the questions in order. Read a page
  here, then open the same notebook in Jupyter (<code>jupyter lab notebooks/</code>) to change its
  parameters (the first code cell) and run it again; the exercises at the end of each notebook have
  a self-check cell that tells you when your answer passes. The times below are how long each
  notebook took to run here.</p>
  <p><strong>Instructors.</strong> See {guide}: which notebook for which lecture, how to change the
  defaults for a lab (<code>python -m sim course --param NAME=VALUE</code>), how to run sweeps for a
  lecture's figures, and how to grade submissions.</p>
  {legend}
{chr(10).join(parts)}
  {footer}
</body>
</html>
"""
