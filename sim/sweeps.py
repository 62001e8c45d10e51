"""Sweeps: a grid of parameters x seeds, on all cores or a Dask cluster, resumable.

``python -m sim sweep SCENARIO --grid KEY=V1,V2 --seeds 0:100 --out DIR`` (and
:func:`sweep` from Python) runs every combination of the grid values with every seed:

- in this process (``workers=1``), on a local process pool (``workers=N``), on a local Dask
  cluster (``workers="dask:N"``, a ``LocalCluster``) or on a running Dask scheduler
  (``scheduler="tcp://host:8786"``), with Dask's futures, ``as_completed`` and ``retries``
  (a run lost with its worker is resubmitted by Dask, not by us);
- each finished run is written as it completes into ``DIR/runs/<config>-seed<N>/`` (the same
  files as ``run --out``), built in a temporary directory and renamed into place; ``<config>``
  is a digest of the scenario and every parameter, so the name says exactly which run it is
  and the same command resumes an interrupted sweep (Ctrl-C, ``kill -9``, a lost worker)
  without recomputing anything already written;
- a failing run is recorded in ``DIR/runs/<config>-seed<N>.failed.json`` with its error and
  does not stop the sweep (it is tried again when the sweep is resumed);
- at the end ``DIR/results.parquet`` and ``DIR/results.csv`` hold one row per (configuration,
  seed, summary row) -- parameters, seed, results -- and ``DIR/summary.csv`` the mean and 95 %
  confidence interval across seeds of every result column, computed by the project's one
  aggregation (:func:`sim.core.replication.summarize`, Student-t through ``mean_ci``).

Every run depends only on its parameters and seed, so its files are byte-identical whichever
way it was computed (serial, pool or Dask; tested).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from sim.core.errors import ParameterError, UserError

if TYPE_CHECKING:
    import pandas as pd

    from sim.core.params import Params
    from sim.core.result import Result

RUNS = "runs"
MANIFEST = "sweep.json"
FAILED = ".failed.json"
MAX_RUNS = 1_000_000        # configurations x seeds; beyond, the bookkeeping alone is the problem
MAX_VALUES = 100_000        # values of one --grid key or of --seeds
CONNECT_TIMEOUT = 5.0       # seconds to reach a Dask scheduler before giving up
SEED_COLUMN, ROW_COLUMN, CONFIG_COLUMN = "seed", "row", "config"


# --- seeds -------------------------------------------------------------------------------------
def parse_seeds(text: str | int | Iterable[int], parameter: str = "--seeds") -> list[int]:
    """Seeds from ``START:STOP`` (STOP excluded, like ``range``), ``START:STOP:STEP``, ``A,B,C``,
    one integer, or (from Python) any iterable of integers. Empty or negative: :class:`ParameterError`."""
    import operator

    if isinstance(text, str):
        raw = text.strip()
        try:
            if ":" in raw:
                parts = [int(p) for p in raw.split(":")]
                if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] < 1):
                    raise ValueError
                seeds: Iterable[int] = range(*parts)
            else:
                seeds = [int(p) for p in raw.split(",")]
        except ValueError:
            raise ParameterError(parameter, f"must be START:STOP (STOP excluded), START:STOP:STEP (STEP >= 1), "
                                            f"A,B,C or one integer >= 0; got {text!r}") from None
    elif isinstance(text, int) and not isinstance(text, bool):
        seeds = [text]
    else:
        seeds = text
    if isinstance(seeds, range) and len(seeds) > MAX_VALUES:
        raise ParameterError(parameter, f"{len(seeds)} seeds; at most {MAX_VALUES} in one sweep")
    out: list[int] = []
    for s in seeds:
        try:
            value = operator.index(s) if not isinstance(s, bool) else -1
        except TypeError:
            value = -1
        if value < 0:
            raise ParameterError(parameter, f"seeds are integers >= 0, got {s!r}")
        if value not in out:
            out.append(value)
        if len(out) > MAX_VALUES:
            raise ParameterError(parameter, f"more than {MAX_VALUES} seeds in one sweep")
    if not out:
        raise ParameterError(parameter, f"the seed range {text!r} is empty (START:STOP runs START..STOP-1; "
                                        "e.g. 0:20 is 20 seeds)")
    return out


# --- the grid ----------------------------------------------------------------------------------
_RANGE = re.compile(r"^\s*-?[\d.eE+-]+\s*:\s*-?[\d.eE+-]+\s*:\s*-?[\d.eE+-]+\s*$")


def split_values(params_type: type[Params], key: str, text: str, option: str = "--grid") -> list[str]:
    """The texts of each value of ``--grid KEY=TEXT``: ``V1,V2,...``, ``START:STOP:STEP`` (STOP
    included, numbers and lists of numbers), or ``V1;V2`` for values that hold commas themselves
    (distributions such as ``normal:1,0.1`` may also be separated by commas)."""
    import dataclasses
    import typing

    from sim.core.distributions import Distribution
    from sim.core.params import _hint_parts, _parse_list

    fields = {f.name: f for f in dataclasses.fields(params_type) if f.metadata.get("cli", True)}
    if key not in fields:
        raise ParameterError(key, f"unknown parameter (in {option}); known: {', '.join(fields)}")
    base, _ = _hint_parts(typing.get_type_hints(params_type)[key])
    item = typing.get_args(base)[0] if typing.get_origin(base) is tuple else base
    raw = text.strip()
    if not raw:
        raise ParameterError(key, f"{option} {key}= has no values; give V1,V2,... or START:STOP:STEP")
    if ";" in raw:
        values = [v.strip() for v in raw.split(";")]
    elif item in (int, float) and _RANGE.match(raw):
        start, stop, step = (float(p) for p in raw.split(":"))
        if not (step > 0 and stop >= start) or not all(map(math.isfinite, (start, stop, step))):
            raise ParameterError(key, f"{option} range {raw!r} needs STEP > 0 and STOP >= START")
        count = math.floor((stop - start) / step + 1e-9) + 1
        if count > MAX_VALUES:
            raise ParameterError(key, f"{option} range {raw!r} has {count} values; at most {MAX_VALUES}")
        try:
            values = [repr(v) for v in _parse_list(raw, item)]
        except (ValueError, OverflowError):
            raise ParameterError(key, f"{option} range {raw!r}: START:STOP:STEP of {item.__name__}s") from None
    elif isinstance(item, type) and issubclass(item, Distribution):
        values = []
        for piece in raw.split(","):  # a piece starting with a letter begins a new distribution
            if values and not re.match(r"^\s*[A-Za-z]", piece):
                values[-1] += "," + piece
            else:
                values.append(piece)
    else:
        values = [v.strip() for v in raw.split(",")]
    if any(not v.strip() for v in values):
        raise ParameterError(key, f"{option} {key}={text!r} has an empty value; separate values with one comma")
    if len(values) != len(set(values)):
        raise ParameterError(key, f"{option} {key}={text!r} repeats a value")
    return values


@dataclass(frozen=True)
class Run:
    """One run of a sweep: a configuration and a seed."""

    scenario: str
    params: Params
    seed: int
    config: str     # digest of the scenario and every parameter
    force: bool = False  # run even what the work estimate refuses (checked once, before the sweep)

    @property
    def name(self) -> str:
        return f"{self.config}-seed{self.seed}"


def config_id(scenario: str, params: Params) -> str:
    """A short digest of the scenario and every parameter value: the configuration's name."""
    text = json.dumps({"scenario": scenario, "params": params.to_dict()}, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def configurations(scenario: str, grid: Mapping[str, Sequence[Any]], fixed: Mapping[str, Any], *,
                   from_text: bool, force: bool = False) -> list[Params]:
    """Every combination of the grid's values on top of ``fixed`` (texts from the command line when
    ``from_text``, Python values otherwise), each validated -- and its work estimate checked,
    unless ``force`` -- before anything runs."""
    from sim.core.registry import get

    sc = get(scenario)
    both = sorted(set(grid) & set(fixed))
    if both:
        raise ParameterError(both[0], "is both swept (--grid) and fixed (--set); give it once")
    known = [f for f in sc.params_type().to_dict()]
    for key in (*grid, *fixed):
        if key not in known:
            raise ParameterError(key, f"unknown parameter of {scenario}; known: {', '.join(known)}")
    for key, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise ParameterError(key, f"grid values must be a list, got {values!r}")
        if len(list(values)) == 0:
            raise ParameterError(key, "the grid gives it no values: the sweep would be empty")
    count = math.prod(len(list(v)) for v in grid.values())
    if count > MAX_RUNS:
        raise ParameterError("--grid", f"{count} configurations; at most {MAX_RUNS} in one sweep")
    keys = list(grid)
    out = []
    for combo in itertools.product(*(list(grid[k]) for k in keys)):
        changes = dict(zip(keys, combo))
        try:
            if from_text:
                params = sc.params_type.from_strings({**fixed, **changes})
            else:
                params = sc.params_type().replace(**{**fixed, **changes})
            check = getattr(params, "check_work", None)
            if check is not None:
                check(force)
            out.append(params)
        except ParameterError as err:
            where = ", ".join(f"{k}={v}" for k, v in changes.items())
            raise ParameterError(err.parameter, f"{err.message}" + (f" (in the configuration {where})" if where else "")) \
                from None
    return out


# --- executing one run (in a worker) -----------------------------------------------------------------
def execute(scenario: str, params: Params, seed: int, force: bool = False) -> tuple[str, Any]:
    """Run one configuration and seed: ``("ok", Result)`` or ``("failed", message)``. Errors are
    returned, not raised, so a failing run is recorded rather than retried."""
    from sim.core.registry import get

    try:
        return "ok", get(scenario).run(params, seed, force=force)
    except Exception as err:  # recorded with its message; the sweep goes on
        return "failed", {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}


def _worker_setup(parent: int) -> None:
    """Pool workers: Ctrl-C is the parent's to handle, and a worker never outlives its parent
    (after ``kill -9`` of the sweep they would otherwise wait for work forever)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux): killed with the parent
    except (OSError, AttributeError):
        pass
    import threading

    def watch() -> None:  # elsewhere (and as a second line): notice being re-parented
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=watch, daemon=True, name="sim-parent-watch").start()


# --- backends: where the runs execute --------------------------------------------------------------
class _Serial:
    description = "this process"
    window = 1

    def __init__(self) -> None:
        self._done: deque = deque()

    def submit(self, run: Run):
        self._done.append((run, execute(run.scenario, run.params, run.seed, run.force)))
        return run

    def next_done(self):
        run, outcome = self._done.popleft()
        return run, outcome

    def close(self, cancel: bool = False) -> None:
        pass


class _Pool:
    """A local process pool (``concurrent.futures``), rebuilt if a worker dies."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.description = f"{workers} local processes"
        self.window = workers * 4
        self._start()
        self._futures: dict = {}

    def _start(self) -> None:
        from concurrent.futures import ProcessPoolExecutor

        self._pool = ProcessPoolExecutor(self.workers, initializer=_worker_setup, initargs=(os.getpid(),))

    def submit(self, run: Run):
        from concurrent.futures.process import BrokenProcessPool

        try:
            future = self._pool.submit(execute, run.scenario, run.params, run.seed, run.force)
        except BrokenProcessPool:
            self._start()
            future = self._pool.submit(execute, run.scenario, run.params, run.seed, run.force)
        self._futures[future] = run
        return future

    def next_done(self):
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        done, _ = wait(list(self._futures), return_when=FIRST_COMPLETED)
        future = min(done, key=lambda f: self._futures[f].name)  # deterministic among simultaneous ones
        run = self._futures.pop(future)
        try:
            return run, future.result()
        except BrokenProcessPool as err:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._start()
            return run, ("failed", {"error": f"a worker process died ({err})", "traceback": ""})
        except Exception as err:  # e.g. a result that cannot be sent back
            return run, ("failed", {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()})

    def close(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)


class _Dask:
    """A Dask ``distributed`` client: a ``LocalCluster`` of N processes, or a running scheduler."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None) -> None:
        import logging

        try:
            from dask.distributed import Client, LocalCluster, as_completed
        except ImportError:  # pragma: no cover - in requirements.txt
            raise UserError("--workers dask:N and --scheduler need dask[distributed]: "
                            "pip install 'dask[distributed]'") from None
        self._as_completed = as_completed
        self._cluster = None
        if scheduler is not None:
            try:
                self._client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT}s", set_as_default=False)
            except Exception as err:
                first = (str(err).splitlines() or [type(err).__name__])[0]
                raise ParameterError("--scheduler", f"cannot reach a Dask scheduler at {scheduler!r} within "
                                                    f"{CONNECT_TIMEOUT:g} s ({first})") from None
            self.description = f"the Dask scheduler at {scheduler}"
        else:
            self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                         dashboard_address=None, silence_logs=logging.ERROR)
            self._client = Client(self._cluster, set_as_default=False)
            self.description = f"a local Dask cluster of {workers} processes"
        try:
            n = len(self._client.scheduler_info().get("workers", {})) or (workers or 1)
            self.window = max(4, n * 4)
            self._pending = as_completed(loop=self._client.loop)
        except BaseException:
            self.close()
            raise
        self._futures: dict = {}

    def submit(self, run: Run):
        future = self._client.submit(execute, run.scenario, run.params, run.seed, run.force, key=f"sim-run-{run.name}",
                                     pure=False, retries=2)
        self._futures[future.key] = run
        self._pending.add(future)
        return future

    def next_done(self):
        future = next(self._pending)
        run = self._futures.pop(future.key)
        try:
            return run, future.result()
        except Exception as err:  # a worker lost more often than `retries`, a result that cannot travel
            return run, ("failed", {"error": f"{type(err).__name__}: {err}", "traceback": ""})
        finally:
            future.release()

    def close(self, cancel: bool = False) -> None:
        try:
            if cancel and self._futures:
                self._client.cancel(list(self._pending.futures))
            self._client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()


def _backend(workers: int | str | None, scheduler: str | None):
    if scheduler is not None:
        return _Dask(scheduler=scheduler)
    if isinstance(workers, str):
        text = workers.strip().lower()
        if text.startswith("dask:"):
            return _Dask(workers=int(text[5:]))
        workers = None if text == "auto" else int(text)
    if workers is None:
        workers = available_cores()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ParameterError("workers", f"must be an integer >= 1, 'auto' or 'dask:N', got {workers!r}")
    return _Serial() if workers == 1 else _Pool(workers)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# --- the sweep directory ---------------------------------------------------------------------------
class SweepDir:
    """``DIR/sweep.json`` (which scenario), ``DIR/runs/`` (one directory per finished run, one
    ``.failed.json`` per failed run) and the combined tables."""

    def __init__(self, root: Path, scenario: str, overwrite: bool) -> None:
        from sim.core.result import check_output_dir, write_text_atomic

        self.root = check_output_dir(root)
        self.runs = self.root / RUNS
        manifest = self.root / MANIFEST
        if self.root.is_dir() and any(self.root.iterdir()):
            try:
                found = json.loads(manifest.read_text())["scenario"]
            except (OSError, ValueError, KeyError, TypeError):
                raise UserError(f"--out {str(root)!r} holds files that are not a sweep of this simulator; "
                                "choose an empty or new directory") from None
            if found != scenario:
                if not overwrite:
                    raise UserError(f"--out {str(root)!r} holds a sweep of {found}, not {scenario}; add --overwrite "
                                    "to discard it, or choose another directory")
                for child in self.root.iterdir():  # ours (it has our manifest): start afresh
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        self.runs.mkdir(parents=True, exist_ok=True)
        for leftover in self.runs.glob(".sim-tmp-*"):  # a run killed while it was being written
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
        from sim import __version__

        write_text_atomic(manifest, json.dumps({"scenario": scenario, "version": __version__}, indent=2) + "\n")

    def finished(self) -> set[str]:
        return {e.name for e in os.scandir(self.runs) if e.is_dir() and not e.name.startswith(".")}

    def write_run(self, run: Run, result: Result) -> None:
        folder = Path(tempfile.mkdtemp(prefix=".sim-tmp-", dir=self.runs))
        try:
            result.write_files(folder)
            os.chmod(folder, 0o755)
            target = self.runs / run.name
            if target.exists():  # computed twice (two sweeps at once): identical, keep the first
                shutil.rmtree(folder)
            else:
                os.rename(folder, target)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        (self.runs / f"{run.name}{FAILED}").unlink(missing_ok=True)

    def write_failure(self, run: Run, failure: dict) -> None:
        from sim.core.result import write_text_atomic

        record = {"scenario": run.scenario, "seed": run.seed, "config": run.config,
                  "params": run.params.to_dict(), **failure}
        write_text_atomic(self.runs / f"{run.name}{FAILED}", json.dumps(record, indent=2, sort_keys=True) + "\n")

    def summary_csv(self, run: Run) -> str:
        return (self.runs / run.name / "summary.csv").read_text()


# --- the sweep ---------------------------------------------------------------------------------------
class SweepInterrupted(UserError):
    """Ctrl-C during a sweep: what is written stays; the same command resumes."""

    exit_status = 130  # as for any program stopped by SIGINT


@dataclass
class SweepOutcome:
    table: pd.DataFrame      # one row per (configuration, seed, summary row)
    summary: pd.DataFrame    # per configuration (and summary row): mean and 95 % CI across seeds
    failures: pd.DataFrame   # one row per failed run
    computed: int            # runs computed by this call
    reused: int              # runs found already written (resumed)


def run_sweep(scenario: str, configs: Sequence[Params], seeds: Sequence[int], *, workers: int | str | None = 1,
              scheduler: str | None = None, out: str | Path | None = None, overwrite: bool = False,
              progress: bool | None = None, force: bool = False) -> SweepOutcome:
    """Run every configuration with every seed (see the module docstring)."""
    runs = [Run(scenario, p, s, config_id(scenario, p), force) for p in configs for s in seeds]
    if len(runs) > MAX_RUNS:
        raise ParameterError("--seeds", f"{len(configs)} configurations x {len(seeds)} seeds = {len(runs)} runs; "
                                        f"at most {MAX_RUNS} in one sweep")
    if len({r.name for r in runs}) != len(runs):
        raise ParameterError("--grid", "two configurations of the grid are the same run; give each value once")
    store = SweepDir(Path(out), scenario, overwrite) if out is not None else None
    done = store.finished() if store is not None else set()
    todo = deque(r for r in runs if r.name not in done)
    already = len(runs) - len(todo)
    memory: dict[str, str] = {}          # without --out: each run's summary.csv text
    failures: dict[str, dict] = {}
    computed = 0
    bar = _progress(len(runs), already, progress)
    backend = _backend(workers, scheduler) if todo else None
    in_flight = 0
    try:
        while todo or in_flight:
            while todo and in_flight < backend.window:
                backend.submit(todo.popleft())
                in_flight += 1
            run, (status, value) = backend.next_done()
            in_flight -= 1
            if status == "ok":
                computed += 1
                if store is not None:
                    store.write_run(run, value)
                else:
                    memory[run.name] = value.summary.to_csv(index=False, lineterminator="\n")
            else:
                failures[run.name] = value
                if store is not None:
                    store.write_failure(run, value)
            bar.update(1)
            if failures:
                bar.set_postfix(failed=len(failures), refresh=False)
    except KeyboardInterrupt:
        if backend is not None:
            backend.close(cancel=True)
            backend = None
        bar.close()
        written = already + computed
        where = f"; run the same command again to resume (written runs are kept in {store.runs})" if store else ""
        raise SweepInterrupted(f"interrupted: {written} of {len(runs)} runs finished{where}") from None
    finally:
        if backend is not None:
            backend.close()
        bar.close()
    table = _table(runs, failures, store, memory)
    failed = _failures(runs, failures)
    summary = summarize_table(table)
    if store is not None:
        _write_tables(store.root, table, summary, failed)
    return SweepOutcome(table, summary, failed, computed, len(runs) - computed - len(failures))


def _progress(total: int, initial: int, enabled: bool | None):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="run", file=sys.stderr, dynamic_ncols=True, smoothing=0.1,
                disable=None if enabled is None else not enabled, desc="sweep")


def _param_columns(params: Params) -> dict[str, Any]:
    """Parameters as table cells: lists and distributions as their text form."""
    out = {}
    for key, value in params.to_dict().items():
        out[key] = ",".join(map(str, value)) if isinstance(value, list) else value
    return out


def _table(runs: Sequence[Run], failures: dict, store: SweepDir | None, memory: dict[str, str]) -> pd.DataFrame:
    import pandas as pd

    frames = []
    for run in runs:
        if run.name in failures:
            continue
        text = store.summary_csv(run) if store is not None else memory[run.name]
        summary = pd.read_csv(io.StringIO(text))  # from the run's own file: fresh and resumed runs alike
        params = _param_columns(run.params)
        for column in [c for c in summary.columns if c in params]:
            if all(_same(v, params[column]) for v in summary[column]):
                summary = summary.drop(columns=column)        # the parameter, echoed: once is enough
            else:
                summary = summary.rename(columns={column: f"{column}_result"})
        head = pd.DataFrame({CONFIG_COLUMN: run.config, **{k: [v] * len(summary) for k, v in params.items()},
                             SEED_COLUMN: run.seed, ROW_COLUMN: range(len(summary))}, index=summary.index)
        frames.append(pd.concat([head, summary], axis=1))
    if not frames:
        return pd.DataFrame(columns=[CONFIG_COLUMN, SEED_COLUMN, ROW_COLUMN])
    return pd.concat(frames, ignore_index=True)


def _same(cell: Any, value: Any) -> bool:
    """A summary cell that echoes a parameter (``300.0`` for ``300``, ``inf`` for an unlimited ``None``)."""
    if value is None:
        return cell is None or (isinstance(cell, float) and (math.isnan(cell) or math.isinf(cell)))
    try:
        return float(cell) == float(value)
    except (TypeError, ValueError):
        return str(cell) == str(value)


def _failures(runs: Sequence[Run], failures: dict) -> pd.DataFrame:
    import pandas as pd

    rows = [{CONFIG_COLUMN: r.config, **_param_columns(r.params), SEED_COLUMN: r.seed,
             "error": failures[r.name]["error"]} for r in runs if r.name in failures]
    return pd.DataFrame(rows, columns=None if rows else [CONFIG_COLUMN, SEED_COLUMN, "error"])


def sweep_summary(table: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """The per-configuration summary of a :func:`sweep` table (what ``DIR/summary.csv`` holds)."""
    return summarize_table(table, confidence)


def summarize_table(table: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per configuration (and summary row): parameters, then ``X, X_ci_low, X_ci_high`` across
    seeds for every numeric result column, then ``seeds`` (the project's one aggregation)."""
    import pandas as pd

    from sim.core.replication import COUNT, summarize

    if table.empty:
        return pd.DataFrame(columns=[CONFIG_COLUMN, ROW_COLUMN, "seeds"])
    start = list(table.columns).index(ROW_COLUMN) + 1
    params = [c for c in table.columns[:start] if c not in (CONFIG_COLUMN, SEED_COLUMN, ROW_COLUMN)]
    results = list(table.columns[start:])
    numeric = [c for c in results if pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])
               and not c.endswith(("_ci_low", "_ci_high"))]  # within-run intervals: their own seeds' business
    labels = [c for c in results if c not in numeric and not c.endswith(("_ci_low", "_ci_high"))]
    hidden = {c: f"\0{c}" for c in (*params, *labels) if c in (COUNT, "seeds")}  # never overwritten by the count
    import numpy as np

    with np.errstate(invalid="ignore"):  # inf results (an unstable queue): their mean is inf, CI undefined
        frame = summarize(table.rename(columns=hidden), [CONFIG_COLUMN, ROW_COLUMN], numeric,
                          keep=[hidden.get(c, c) for c in (*params, *labels)], confidence=confidence)
    frame = frame.rename(columns={COUNT: "seeds"}).rename(columns={v: k for k, v in hidden.items()})
    return frame


def _write_tables(root: Path, table: pd.DataFrame, summary: pd.DataFrame, failures: pd.DataFrame) -> None:
    from sim.core.result import write_text_atomic

    handle, temporary = tempfile.mkstemp(prefix=".sim-tmp-", dir=root)
    os.close(handle)
    try:
        table.to_parquet(temporary, index=False, engine="pyarrow")
        os.chmod(temporary, 0o644)
        os.replace(temporary, root / "results.parquet")
    finally:
        Path(temporary).unlink(missing_ok=True)
    write_text_atomic(root / "results.csv", table.to_csv(index=False, lineterminator="\n"))
    write_text_atomic(root / "summary.csv", summary.to_csv(index=False, lineterminator="\n"))
    if len(failures):
        write_text_atomic(root / "failures.csv", failures.to_csv(index=False, lineterminator="\n"))
    else:
        (root / "failures.csv").unlink(missing_ok=True)


# --- from Python -------------------------------------------------------------------------------------
def sweep(scenario: str, grid: Mapping[str, Sequence[Any]] | None = None, seeds: Iterable[int] | str | int | None = None,
          *, workers: int | str | None = 1, scheduler: str | None = None, out: str | Path | None = None,
          overwrite: bool = False, progress: bool | None = False, force: bool = False, **fixed: Any) -> pd.DataFrame:
    """Run ``scenario`` for every combination of ``grid`` values and every seed; the tidy table.

    ``grid`` maps parameter names to lists of values; ``fixed`` sets other parameters;
    ``seeds`` is any iterable of integers (default: the one default seed); ``workers`` is 1 (this
    process), N (a process pool), ``"auto"`` (every core) or ``"dask:N"``; ``scheduler`` an
    address of a running Dask scheduler; ``out`` a directory to write (and resume) the runs in.
    The per-configuration summary is :func:`summarize_table` of the result (``DIR/summary.csv``)::

        table = sim.sweep("queue", grid={"servers": [1, 2]}, seeds=range(20), workers=2)
        sim.sweep_summary(table)
    """
    from sim.core.registry import DEFAULT_SEED

    configs = configurations(scenario, dict(grid or {}), fixed, from_text=False, force=force)
    seed_list = parse_seeds([DEFAULT_SEED] if seeds is None else seeds, parameter="seeds")
    return run_sweep(scenario, configs, seed_list, workers=workers, scheduler=scheduler, out=out,
                     overwrite=overwrite, progress=progress, force=force).table


# --- from the command line -------------------------------------------------------------------------
def cli_main(args) -> int:
    """``python -m sim sweep`` (arguments declared in :mod:`sim.cli`)."""
    from sim.cli import check_keys, pairs, resolve_name
    from sim.core.registry import get
    from sim.core.result import check_output_dir

    name = resolve_name(args, "settings", "grid")
    fixed = pairs(args.settings, "--set")
    grid_text = pairs(args.grid, "--grid")
    check_keys(name, [*grid_text, *fixed], "--grid/--set")
    check_output_dir(args.out)
    seeds = parse_seeds(args.seeds)
    params_type = get(name).params_type
    grid = {key: split_values(params_type, key, text) for key, text in grid_text.items()}
    configs = configurations(name, grid, fixed, from_text=True, force=args.force)
    return _report(name, configs, seeds, workers=args.workers, scheduler=args.scheduler, out=args.out,
                   overwrite=args.overwrite, show_summary=False, force=args.force)


def run_seeds_cli(name: str, settings: dict[str, str], seeds_text: str, workers: str, out: str | None,
                  overwrite: bool, force: bool = False) -> int:
    """``python -m sim run SCENARIO --seeds 0:20``: one configuration, many seeds, mean and CI."""
    from sim.core.result import check_output_dir

    if out is not None:
        check_output_dir(out)
    seeds = parse_seeds(seeds_text)
    configs = configurations(name, {}, settings, from_text=True, force=force)
    return _report(name, configs, seeds, workers=workers, scheduler=None, out=out, overwrite=overwrite,
                   show_summary=True, force=force)


def _report(name: str, configs: Sequence[Params], seeds: Sequence[int], *, workers, scheduler, out, overwrite,
            show_summary: bool, force: bool = False) -> int:
    from sim.cli import format_summary

    started = time.perf_counter()
    outcome = run_sweep(name, configs, seeds, workers=workers, scheduler=scheduler, out=out, overwrite=overwrite,
                        progress=None, force=force)
    seconds = time.perf_counter() - started
    total = len(configs) * len(seeds)
    if show_summary or out is None:
        params = [c for c in configs[0].to_dict() if len(configs) == 1 or c not in _swept(configs)]
        shown = outcome.summary.drop(columns=[CONFIG_COLUMN, ROW_COLUMN, *params], errors="ignore")
        print(format_summary(shown))
    if out is not None:
        root = Path(out)
        print(f"{total} runs ({len(configs)} configurations x {len(seeds)} seeds): {outcome.computed} computed, "
              f"{outcome.reused} already written, {len(outcome.failures)} failed, in {seconds:.1f} s")
        for file in ("results.parquet", "results.csv", "summary.csv", *(["failures.csv"] if len(outcome.failures)
                                                                           else [])):
            print(root / file)
    if len(outcome.failures):
        first = outcome.failures.iloc[0]
        print(f"{PROG_ERROR}{len(outcome.failures)} of {total} runs failed (first: seed {first[SEED_COLUMN]}: "
              f"{first['error']})" + (f"; see {Path(out) / 'failures.csv'}" if out else ""), file=sys.stderr)
        return 1
    return 0


PROG_ERROR = "python -m sim: error: "


def _swept(configs: Sequence[Params]) -> set[str]:
    """Parameters whose value differs between configurations."""
    values = [c.to_dict() for c in configs]
    return {k for k in values[0] if any(json.dumps(v[k]) != json.dumps(values[0][k]) for v in values)}
