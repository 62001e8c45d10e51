"""``python -m sim course``: execute every notebook headless and write an HTML course.

Each notebook in the notebook directory is run top to bottom in a fresh kernel (from the
notebook's own directory, as a student would) and exported to ``OUT/NAME.html``; ``OUT/index.html``
links them with their titles. A notebook that fails (or cannot even be read) still gets its page
(showing the error), the others are still built, and the command exits 1 naming the failures.

Parameters: ``--param NAME=VALUE`` is injected as papermill does (a cell tagged
``injected-parameters`` after the cell tagged ``parameters``) into every notebook that declares
``NAME``; ``papermill notebooks/07_client_resilience.ipynb out.ipynb -p CLIENTS 2000`` works too.

The course is built in a temporary directory and renamed into place, so an interrupted build
leaves the previous course intact and pages of notebooks that no longer exist disappear.
"""

from __future__ import annotations

import ast
import html
import re
import sys
import time
from pathlib import Path
from typing import Any

import nbformat

MARKER = ".sim-course"  # written into every build: tells a course directory from anything else


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def default_notebook_dir() -> Path:
    """``./notebooks`` if it exists, else the ``notebooks`` folder next to the installed package."""
    here = Path.cwd() / "notebooks"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "notebooks"


def _title(nb: nbformat.NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return fallback


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
                     parameters: dict[str, Any] | None = None) -> tuple[nbformat.NotebookNode, str | None]:
    """Run ``path`` in a fresh kernel; returns the executed notebook and an error message or None.

    ``parameters`` are injected after the cell tagged ``parameters``, as papermill does."""
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
    try:
        client.execute()
    except CellExecutionError as err:
        lines = _ANSI.sub("", str(err)).strip().splitlines()
        return nb, lines[-1] if lines else type(err).__name__
    except Exception as err:  # a dead kernel, a timeout: still keep what ran so far
        return nb, f"{type(err).__name__}: {err}"
    return nb, None


def build_course(notebook_dir: Path | None, out: Path, *, cell_timeout: float | None = 600.0,
                 parameters: dict[str, Any] | None = None, overwrite: bool = False) -> int:
    """Execute and export every notebook; returns the exit status (0 if all ran)."""
    from sim.core.errors import ParameterError
    from sim.core.result import check_output_dir, replace_directory

    notebook_dir = notebook_dir or default_notebook_dir()
    notebooks = sorted(p for p in notebook_dir.glob("*.ipynb") if not p.name.startswith("."))
    if not notebooks:
        raise ParameterError("--notebooks", f"no .ipynb files in {notebook_dir}")
    out = check_output_dir(out)
    parameters = parameters or {}
    declared = {path: notebook_parameters(path) for path in notebooks} if parameters else {}
    for name in parameters:
        if not any(name in names for names in declared.values()):
            known = sorted({n for names in declared.values() for n in names})
            raise ParameterError("--param", f"no notebook declares {name} in its parameters cell; "
                                            f"known: {', '.join(known)}")
    return replace_directory(
        out, lambda folder: _build(notebooks, folder, out, cell_timeout, parameters, declared),
        is_ours=_is_course, same=_is_course, overwrite=overwrite, what="a course build")


def _is_course(folder: Path) -> bool:
    """A directory written by this builder (the marker, or the index title of builds before it)."""
    if (folder / MARKER).exists():
        return True
    index = folder / "index.html"
    try:
        return index.exists() and "the course, simulated" in index.read_text(encoding="utf-8")
    except OSError:
        return False


def _build(notebooks: list[Path], folder: Path, out: Path, cell_timeout: float | None,
           parameters: dict[str, Any], declared: dict[Path, list[str]]) -> int:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()
    pages: list[tuple[str, str, str | None, float]] = []
    failed: list[str] = []
    for i, path in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {path.name} ...", end=" ", flush=True)
        started = time.perf_counter()
        mine = {k: v for k, v in parameters.items() if k in declared.get(path, ())}
        nb, error = execute_notebook(path, cell_timeout, mine)
        seconds = time.perf_counter() - started
        body, _ = exporter.from_notebook_node(nb)
        page = folder / (path.stem + ".html")
        page.write_text(body, encoding="utf-8")
        pages.append((page.name, _title(nb, path.stem), error, seconds))
        if error:
            failed.append(path.name)
        print(f"{'FAILED: ' + error if error else 'ok'} ({seconds:.1f} s)", flush=True)
    (folder / "index.html").write_text(_index(pages), encoding="utf-8")
    (folder / MARKER).write_text("written by python -m sim course\n", encoding="utf-8")
    print(f"wrote {out / 'index.html'}")
    if failed:
        print(f"python -m sim: error: {len(failed)} notebook(s) failed: {', '.join(failed)} "
              f"(their pages show where)", file=sys.stderr)
        return 1
    return 0


def _index(pages: list[tuple[str, str, str | None, float]]) -> str:
    items = "\n".join(
        f'    <li><a href="{html.escape(name)}">{html.escape(title)}</a>'
        + (f' <strong class="failed">failed: {html.escape(error)}</strong>' if error else "")
        + f' <span class="time">({seconds:.1f} s)</span></li>'
        for name, title, error, seconds in pages
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Real-time systems: the course, simulated</title>
  <style>
    body {{ font-family: system-ui, sans-serif; max-width: 48rem; margin: 2rem auto; line-height: 1.5; }}
    .failed {{ color: #b00020; }} .time {{ color: #666; font-size: 0.9em; }}
  </style>
</head>
<body>
  <h1>Real-time systems: the course, simulated</h1>
  <p>Each page is a notebook executed from top to bottom with its default parameters.
  Open the <code>.ipynb</code> files in Jupyter to change a parameter and run them again.</p>
  <ol>
{items}
  </ol>
</body>
</html>
"""
