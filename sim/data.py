"""The presets of real systems (each cites its source), read from inside the installed package.

They live in the project's top-level ``data/`` folder, which ``pyproject.toml`` maps into the
package as ``sim.presets`` (``package-dir``), so they are found with :mod:`importlib.resources`
in an editable install, a non-editable ``pip install .`` and a wheel alike.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

PACKAGE = "sim.presets"


def _presets_dir():
    try:
        return resources.files(PACKAGE)
    except ModuleNotFoundError:
        # an editable install made before data/ was mapped into the package: reinstall
        # (`pip install -e .`) to use importlib.resources; meanwhile read the checkout's data/
        return Path(__file__).resolve().parent.parent / "data"


@lru_cache(maxsize=None)
def _read(name: str) -> dict:
    text = (_presets_dir() / f"{name}.json").read_text(encoding="utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def load(name: str) -> dict:
    """The preset ``data/NAME.json`` as a dict (keys starting with ``_`` are comments).

    Each call gets its own copy: a caller that changes it cannot change what others read."""
    return copy.deepcopy(_read(name))


def text(relative_path: str) -> str:
    """A preset that is not JSON (e.g. ``appsync/schema.graphql``), as text."""
    node = _presets_dir()
    for part in relative_path.split("/"):
        node = node / part
    return node.read_text(encoding="utf-8")


COURSE_TEXT_NAME = "course/course-questions-and-answers.fr.md"  # inside the shared material
COURSE_TEXT_VARIABLE = "SIM_COURSE_TEXT"  # a path to the course text, overriding the search


def course_text_path() -> Path | None:
    """Where the course's text is (the seven questions and their answers, in French), or None.

    It is not part of the project: every developer and CI run has it in ``../shared/`` beside the
    project's root. Looked for, in order: the file named by ``$SIM_COURSE_TEXT``; ``../shared/``
    beside the checkout; for a git worktree, ``../shared/`` beside the main checkout."""
    import os

    given = os.environ.get(COURSE_TEXT_VARIABLE)
    if given:
        return Path(given) if Path(given).is_file() else None
    for root in _checkouts():
        candidate = root.parent / "shared" / COURSE_TEXT_NAME
        if candidate.is_file():
            return candidate
    return None


def course_text() -> str:
    """The course's text; :class:`~sim.core.errors.UserError` naming where it was looked for if absent."""
    from sim.core.errors import UserError

    path = course_text_path()
    if path is None:
        import os

        where = os.environ.get(COURSE_TEXT_VARIABLE) or ", ".join(
            str(root.parent / "shared" / COURSE_TEXT_NAME) for root in _checkouts())
        raise UserError(f"the course text is not found (looked in {where}); "
                        f"set {COURSE_TEXT_VARIABLE} to the file course-questions-and-answers.fr.md")
    return path.read_text(encoding="utf-8")


def _checkouts() -> list[Path]:
    """This checkout's root and, if it is a git worktree, the main checkout's root."""
    root = Path(__file__).resolve().parent.parent
    roots = [root]
    dot_git = root / ".git"
    try:  # a worktree's .git is a file "gitdir: <main>/.git/worktrees/NAME" holding a commondir file
        if dot_git.is_file():
            gitdir = Path(dot_git.read_text(encoding="utf-8").split("gitdir:", 1)[1].strip())
            common = (gitdir / (gitdir / "commondir").read_text(encoding="utf-8").strip()).resolve()
            if common.parent not in roots:
                roots.append(common.parent)
    except (OSError, IndexError):
        pass
    return roots
