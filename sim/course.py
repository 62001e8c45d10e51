"""``python -m sim course``: execute every notebook headless and write an HTML course.

Each notebook in the notebook directory is run top to bottom in a fresh kernel (from the
notebook's own directory, as a student would) and exported to ``OUT/NAME.html``; ``OUT/index.html``
links them with their titles. A notebook that fails still gets its page (showing the error),
the others are still built, and the command exits 1 naming the failures.
"""

from __future__ import annotations

import html
import re
import sys
import time
from pathlib import Path

import nbformat


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


def execute_notebook(path: Path, cell_timeout: float = 600.0) -> tuple[nbformat.NotebookNode, str | None]:
    """Run ``path`` in a fresh kernel; returns the executed notebook and an error message or None."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
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


def build_course(notebook_dir: Path | None, out: Path, *, cell_timeout: float = 600.0) -> int:
    """Execute and export every notebook; returns the exit status (0 if all ran)."""
    from nbconvert import HTMLExporter

    from sim.core.errors import ParameterError

    notebook_dir = notebook_dir or default_notebook_dir()
    notebooks = sorted(p for p in notebook_dir.glob("*.ipynb") if not p.name.startswith("."))
    if not notebooks:
        raise ParameterError("--notebooks", f"no .ipynb files in {notebook_dir}")
    out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter()
    pages: list[tuple[str, str, str | None, float]] = []
    failed: list[str] = []
    for i, path in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {path.name} ...", end=" ", flush=True)
        started = time.perf_counter()
        nb, error = execute_notebook(path, cell_timeout)
        seconds = time.perf_counter() - started
        body, _ = exporter.from_notebook_node(nb)
        page = out / (path.stem + ".html")
        page.write_text(body, encoding="utf-8")
        pages.append((page.name, _title(nb, path.stem), error, seconds))
        if error:
            failed.append(path.name)
        print(f"{'FAILED: ' + error if error else 'ok'} ({seconds:.1f} s)", flush=True)
    (out / "index.html").write_text(_index(pages), encoding="utf-8")
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
