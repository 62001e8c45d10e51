"""What a scenario run returns: a summary table, time series, and the parameters that made them.

Results are written *atomically*: the files go into a temporary directory beside the target,
which is then renamed into place. A run killed half-way leaves the old complete result or
nothing, never a zero-byte or half-written file, and a directory holding another run's files
is never mixed with new ones (:func:`replace_directory`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

from sim.core.errors import ParameterError, UserError

if TYPE_CHECKING:  # pandas loads only when a result is made
    import pandas as pd

    from sim.core.params import Params

T = TypeVar("T")
TEMP_PREFIX = ".sim-tmp-"  # short and fixed: a target name near the length limit still fits
_OLD_PREFIX = ".sim-old-"


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # the installed distribution's, not sim.__version__

    try:
        return version("sim")
    except PackageNotFoundError:
        return "0+unknown"


@dataclass
class Result:
    """One run of one scenario.

    ``summary`` has one row per configuration; ``series`` holds named time series (or other
    long tables); ``params`` and ``seed`` are what produced them.
    """

    scenario: str
    seed: int
    params: Params
    summary: pd.DataFrame
    series: dict[str, pd.DataFrame] = field(default_factory=dict)

    def record(self) -> dict:
        """The run's identity as plain data (what ``params.json`` holds)."""
        return {"scenario": self.scenario, "seed": self.seed, "version": package_version(),
                "params": self.params.to_dict()}

    def write_files(self, folder: Path) -> list[str]:
        """Write ``summary.csv``, one CSV per series and ``params.json`` into the existing ``folder``
        (not atomic: :meth:`write` calls it on a temporary directory). Returns the file names."""
        names = []
        for name, frame in {"summary": self.summary, **self.series}.items():
            frame.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")
            names.append(f"{name}.csv")
        (folder / "params.json").write_text(json.dumps(self.record(), indent=2, sort_keys=True) + "\n")
        names.append("params.json")
        return names

    def write(self, out_dir: str | Path, *, overwrite: bool = False) -> list[Path]:
        """Write ``summary.csv``, one CSV per series and ``params.json`` into ``out_dir``, atomically.

        ``out_dir`` may hold an earlier result of this same run (it is replaced); another run's
        result is refused unless ``overwrite``; files that are not a result are never touched.
        """
        out = Path(out_dir)
        record = self.record()

        def same_run(existing: Path) -> bool:
            return _read_record(existing) == record

        names = replace_directory(out, self.write_files, is_ours=lambda d: _read_record(d) is not None,
                                  same=same_run, overwrite=overwrite, what="a result")
        return [out / n for n in names]


def _read_record(folder: Path) -> dict | None:
    try:
        record = json.loads((folder / "params.json").read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "scenario" in record else None


# --- output directories --------------------------------------------------------------------
def check_output_dir(path: str | os.PathLike, parameter: str = "--out") -> Path:
    """Refuse, before anything runs, an output directory that cannot be written.

    An empty path, an existing file (``/dev/null``), a path under a file, a name longer than the
    file system allows, or a place this process cannot create files in: one
    :class:`ParameterError` naming ``parameter``.
    """
    if str(path).strip() == "":
        raise ParameterError(parameter, "is empty; give a directory, e.g. results/run1")
    out = Path(path).expanduser()
    absolute = Path(os.path.abspath(out))
    shown = _short(str(path))
    existing = next((p for p in (absolute, *absolute.parents) if _exists(p)), Path("/"))
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
        path_max = os.pathconf(existing, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    for part in absolute.parts:
        if len(os.fsencode(part)) > name_max:
            raise ParameterError(parameter, f"the name {_short(part, 24)!r} is longer than the {name_max} "
                                            "bytes the file system allows")
    if len(os.fsencode(str(absolute))) + 64 > path_max:  # room for the file names written inside
        raise ParameterError(parameter, f"the path is longer than the {path_max} bytes the system allows")
    try:
        if out.exists() and not out.is_dir():
            raise ParameterError(parameter, f"{shown!r} exists and is not a directory")
        ancestor = absolute
        while not ancestor.exists():
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise ParameterError(parameter, f"{shown!r} is under {_short(str(ancestor))!r}, which is a file")
    except OSError as err:  # e.g. a path too long even to stat
        raise ParameterError(parameter, f"{shown!r} cannot be used ({err.strerror or err})") from None
    try:
        probe = tempfile.mkdtemp(prefix=".sim-probe-", dir=ancestor)
        os.rmdir(probe)
    except OSError as err:
        raise ParameterError(parameter, f"cannot create files in {_short(str(ancestor))!r} "
                                        f"({err.strerror or err})") from None
    return out


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit // 2 - 2] + "..." + text[-(limit // 2 - 1):]


def replace_directory(out: Path, fill: Callable[[Path], T], *, is_ours: Callable[[Path], bool],
                      same: Callable[[Path], bool] = lambda _: False, overwrite: bool = False,
                      what: str = "a result") -> T:
    """Build ``out`` atomically: ``fill(temporary_dir)`` then rename the directory into place.

    An existing non-empty ``out`` is replaced only if ``is_ours(out)`` (it holds output of this
    kind) and either ``same(out)`` (an earlier write of the same thing) or ``overwrite``;
    otherwise :class:`UserError` says what to do. The old directory is renamed away before the
    new one takes its name, then deleted: old and new files are never mixed.
    """
    out = check_output_dir(out)
    if out.is_dir() and any(out.iterdir()):
        if not is_ours(out):
            raise UserError(f"--out {str(out)!r} holds files that are not {what} of this simulator; "
                            "choose an empty or new directory")
        if not (overwrite or same(out)):
            raise UserError(f"--out {str(out)!r} holds another run's files; add --overwrite to replace "
                            "them, or choose another directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=out.parent))
    try:
        value = fill(temporary)
        os.chmod(temporary, 0o777 & ~_umask())  # mkdtemp makes it 0700; a result is as readable as any
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=_OLD_PREFIX, dir=out.parent))
            os.rename(out, old / "x")
            os.rename(temporary, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(temporary, out)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return value


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename."""
    handle, temporary = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
