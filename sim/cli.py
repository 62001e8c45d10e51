"""The command line: ``python -m sim list | describe | run | sweep | course | grade``.

Every mistake in what the user typed (unknown scenario or parameter, wrong type, value out
of range, an output directory that cannot be written) ends with exit status 2 and one line on
stderr naming what is wrong and what is allowed, never a traceback.

Start-up is kept short: this module imports nothing heavy, ``list`` and ``describe`` read the
cached catalog (:mod:`sim.catalog`), and numpy/pandas load only when something runs.

Adding a subcommand takes a few lines: declare its arguments with :func:`subcommand` and name
its handler as ``"module:function"`` (imported only when the command is used)::

    @subcommand("live", help="serve live metrics", handler="sim.monitoring.live:main")
    def _live(parser):
        parser.add_argument("--port", type=int, default=0)

The handler receives the parsed ``argparse.Namespace`` and returns the exit status; it raises
:class:`sim.core.errors.UserError` (or a subclass) for bad input. A command that lives in its own
module with ``add_parser(subparsers)`` and ``main(args)`` is one line: ``external("name", "module")``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:
    import pandas as pd

PROG = "python -m sim"
WIDTH = 100  # what `describe` and the help fit in

EPILOG = """examples:
  python -m sim list
  python -m sim describe queue
  python -m sim run queue --set arrival_rate=0.9 --set servers=2 --seed 7
  python -m sim run queue --set capacity=5 --seed 1 --out results/queue-k5
  python -m sim run queue --set servers=2 --seeds 0:20          # 20 seeds, mean and 95 % CI
  python -m sim sweep queue --grid servers=1,2,3 --grid arrival_rate=0.5:0.9:0.2 \\
      --seeds 0:100 --workers 2 --out results/queue-sweep
  python -m sim course
  python -m sim calibrate reconnect-storm --clients 200
  python -m sim grade submissions/ --csv grades.csv        # students' notebooks: PASS / not yet

Times are in seconds and rates per second everywhere. The same seed always gives the
same numbers."""


class CliError(Exception):
    """A usage mistake found by the command line itself (exit 2, one line)."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake in one line (exit 2) instead of usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    description: str | None
    arguments: Callable[[argparse.ArgumentParser], None] | None
    handler: str | Callable[[argparse.Namespace], int]
    module: str | None = None  # external(): a module with add_parser(subparsers) and main(args)


SUBCOMMANDS: list[Subcommand] = []


def subcommand(name: str, *, help: str, handler: str | Callable[[argparse.Namespace], int],
               description: str | None = None):
    """Register ``python -m sim NAME``: decorates a function that adds the command's arguments."""
    def register(arguments: Callable[[argparse.ArgumentParser], None]):
        if any(s.name == name for s in SUBCOMMANDS):
            raise ValueError(f"subcommand {name!r} is registered twice")
        SUBCOMMANDS.append(Subcommand(name, help, description, arguments, handler))
        return arguments
    return register


def external(name: str, module: str) -> None:
    """Register ``python -m sim NAME`` from ``module``'s ``add_parser(subparsers)`` and ``main(args)``
    (the module is imported to build the parser: keep its top-level imports light)."""
    if any(s.name == name for s in SUBCOMMANDS):
        raise ValueError(f"subcommand {name!r} is registered twice")
    SUBCOMMANDS.append(Subcommand(name, "", None, None, f"{module}:main", module))


# --- argument types --------------------------------------------------------------------------
def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


MAX_CELL_TIMEOUT = 7 * 86400.0


def _cell_timeout(text: str) -> float | None:
    if text.strip().lower() in ("none", "off", "unlimited"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0 < value <= MAX_CELL_TIMEOUT):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0 and <= {MAX_CELL_TIMEOUT:.0f} "
                                         f"(a week), or none for no limit; got {text!r}")
    return value


def _workers(text: str) -> str:
    value = text.strip().lower()
    number = value[5:] if value.startswith("dask:") else value
    if value != "auto" and not (number.isdigit() and int(number) >= 1):
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, auto (every core) or dask:N "
                                         f"(a local Dask cluster of N workers); got {text!r}")
    return value


# --- the subcommands -------------------------------------------------------------------------
def _scenario_name(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", metavar="SCENARIO", help="scenario name (see `list`)")


def _set_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE", nargs="+",
                        help="set a parameter (repeatable, each key once); see `describe SCENARIO` for names "
                             "and allowed values")


def _out_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--out", metavar="DIR", help=what)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a directory that holds another run's results (never mixes old and new)")


SEEDS_HELP = ("seeds: START:STOP (STOP excluded, like range: 0:20 is the 20 seeds 0..19), "
              "START:STOP:STEP, a list A,B,C or one seed")


@subcommand("list", help="list every scenario with a one-line description", handler=lambda args: _list())
def _list_arguments(parser: argparse.ArgumentParser) -> None:
    pass


@subcommand("describe", help="show a scenario's parameters: type, default, unit, allowed values",
            handler=lambda args: _describe(args.name))
def _describe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="SCENARIO", help="scenario name (see `list`)")


@subcommand("run", help="run one scenario and print or save its results", handler=lambda args: _run(args),
            description="Run one scenario. Without --out, print the summary table; with --out DIR, write "
                        "DIR/summary.csv, one CSV per time series and DIR/params.json (atomically). "
                        "With --seeds, run every seed (in parallel with --workers) and print the mean and "
                        "95 % confidence interval across seeds; --out then writes a sweep directory.")
def _run_arguments(parser: argparse.ArgumentParser) -> None:
    _scenario_name(parser)
    _set_option(parser)
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=_seed, default=None, help="random seed, an integer >= 0 (default: 1)")
    seeds.add_argument("--seeds", metavar="RANGE", help=SEEDS_HELP)
    parser.add_argument("--workers", type=_workers, default="auto",
                        help="with --seeds: processes to use (default: auto, every core), or dask:N")
    _out_options(parser, "directory for summary.csv, series CSVs and params.json")
    _force_option(parser)


def _force_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true",
                        help="run even what the work estimate refuses as far too long for this machine")


@subcommand("sweep", help="run a grid of parameters x seeds on all cores or a Dask cluster (resumable)",
            handler="sim.sweeps:cli_main",
            description="Run every combination of the --grid values, each with every seed of --seeds, on a "
                        "local process pool (--workers N), a local Dask cluster (--workers dask:N) or an "
                        "existing Dask cluster (--scheduler). Each finished run is written atomically into "
                        "OUT/runs/ under a name derived from its parameters and seed, so the same command "
                        "resumes an interrupted sweep without recomputing anything; a failing run is "
                        "recorded in OUT/failures.csv and does not stop the sweep. At the end OUT/results.parquet "
                        "and OUT/results.csv hold one row per (configuration, seed, summary row) and "
                        "OUT/summary.csv the mean and 95 % confidence interval across seeds.")
def _sweep_arguments(parser: argparse.ArgumentParser) -> None:
    _scenario_name(parser)
    parser.add_argument("--grid", dest="grid", action="append", default=[], metavar="KEY=V1,V2,...", nargs="+",
                        help="values of one parameter to sweep: V1,V2,... or START:STOP:STEP (STOP included); "
                             "several --grid make the cartesian product; any parameter can be swept, list "
                             "parameters one value per configuration; separate distributions with ';'")
    _set_option(parser)
    parser.add_argument("--seeds", metavar="RANGE", default="1", help=SEEDS_HELP + " (default: 1)")
    parser.add_argument("--workers", type=_workers, default="auto",
                        help="N local processes (1: in this process), auto (every core, the default), or dask:N "
                             "for a local Dask cluster of N worker processes")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="address of a running Dask scheduler, e.g. tcp://host:8786 (then --workers is ignored)")
    parser.add_argument("--out", metavar="DIR", required=True,
                        help="sweep directory (runs/, results.parquet, results.csv, summary.csv, failures.csv)")
    parser.add_argument("--overwrite", action="store_true",
                        help="discard a directory holding another sweep (another scenario) and start afresh")
    _force_option(parser)


@subcommand("claims", help="list the course's claims with their verdicts; --check runs the checks behind them",
            handler="sim.claims:cli_main",
            description="List every claim of the course's answers (data/claims.json) with its verdict. --check "
                        "runs each selected claim's check (its scenario over several seeds, 95 % intervals) and "
                        "exits 1 if one no longer supports its verdict.")
def _claims_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ids", nargs="*", metavar="ID", help="claim ids such as 3B-2 (default: every claim)")
    parser.add_argument("--question", type=int, default=None, help="only the claims of question N (1-7)")
    parser.add_argument("--verdict", default=None, help="only the claims with this verdict")
    parser.add_argument("--check", action="store_true", help="run the checks behind the verdicts")
    parser.add_argument("-v", "--verbose", action="store_true", help="also the English, the reason and the section")
    parser.add_argument("--ledger", default=None, help=argparse.SUPPRESS)  # another ledger file (tests)


@subcommand("course", help="execute every notebook headless and write the HTML course",
            handler=lambda args: _course(args),
            description="Execute every notebook in NOTEBOOKS and write one HTML page per notebook plus "
                        "index.html into OUT. The course is built in a temporary directory and renamed into "
                        "place: an interrupted build leaves the previous course intact.")
def _course_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--notebooks", default=None, help="notebook directory (default: ./notebooks)")
    parser.add_argument("--out", default="build/course", help="output directory (default: build/course)")
    parser.add_argument("--timeout", type=_cell_timeout, default=600.0,
                        help="seconds allowed per cell, or none (default: 600)")
    parser.add_argument("--param", dest="params", action="append", default=[], metavar="NAME=VALUE",
                        help="override a notebook parameter (a name in a cell tagged `parameters`), as "
                             "papermill -p does; repeatable; applies to every notebook that declares NAME")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a directory holding files other than an earlier course build's")
    parser.add_argument("--jobs", type=int, default=None, metavar="N",
                        help="notebooks executed at once, each in its own kernel (default: one per core)")
    parser.add_argument("--browser-check", action="store_true",
                        help="open every page in headless Chromium: fail on a console error or formulas "
                             "MathJax did not typeset; screenshots into OUT/screenshots/")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Simulations and notebooks of the real-time systems course.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for command in SUBCOMMANDS:
        if command.module is not None:
            import importlib

            importlib.import_module(command.module).add_parser(sub)
        else:
            command.arguments(sub.add_parser(command.name, help=command.help, description=command.description))
    return parser


# --- commands in their own modules ---------------------------------------------------------------
external("calibrate", "sim.calibration.command")
external("live", "sim.monitoring.live")
external("grade", "sim.grade")


# --- shared helpers --------------------------------------------------------------------------
def pairs(groups: list[list[str]], option: str) -> dict[str, str]:
    """``[["a=1", "b=2"], ["c=3"]] -> {"a": "1", ...}``; a key given twice is refused."""
    out: dict[str, str] = {}
    for pair in (p for group in groups for p in group):
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CliError(f"{option}: takes KEY=VALUE, got {pair!r}")
        if key in out:
            raise CliError(f"{option}: {key} is given twice ({key}={out[key]} and {key}={value}); give it once")
        out[key] = value
    return out


def resolve_name(args: argparse.Namespace, *options: str) -> str:
    """The scenario name, also when it was typed after a greedy option (``run --set servers=2 queue``)."""
    if args.name is not None:
        return args.name
    for option in options:
        groups = getattr(args, option)
        if groups and groups[-1] and "=" not in groups[-1][-1]:
            return groups[-1].pop()
    raise CliError(f"{args.command}: give the scenario name, e.g. `{PROG} {args.command} queue --set KEY=VALUE` "
                   f"(see `{PROG} list`)")


def check_keys(name: str, keys: Sequence[str], option: str) -> None:
    """Refuse parameter names the scenario does not have, before anything heavy is imported."""
    from sim import catalog

    known = [p["name"] for p in catalog.find(name)["params"]]
    for key in keys:
        if key not in known:
            raise CliError(f"{key}: unknown parameter of {name} (in {option}); known: {', '.join(known)}")


# --- list / describe -------------------------------------------------------------------------
def _list() -> int:
    from sim import catalog

    rows = [(s["name"], s["description"]) for s in catalog.load()["scenarios"]]
    width = max(len(n) for n, _ in rows)
    for name, description in rows:  # long descriptions continue under themselves, within WIDTH columns
        print("\n".join(textwrap.wrap(f"{name:<{width}}  {description}", WIDTH, subsequent_indent=" " * (width + 2))))
    return 0


def readable_spec(text: str) -> str:
    """Numbers inside a default such as ``exponential:2.3148148148148147e-05`` written with 6 digits."""
    import re

    return re.sub(r"-?\d+\.\d+(?:e[-+]?\d+)?|-?\d+e[-+]?\d+", lambda m: f"{float(m.group()):.6g}", text)


def describe_text(entry: dict, grammar: str, width: int = WIDTH) -> str:
    """A scenario's parameters as text that fits ``width`` columns."""
    lines = textwrap.wrap(f"{entry['name']}: {entry['description']}", width) + [""]
    rows = []
    uses_grammar = False
    for p in entry["params"]:
        allowed = p["allowed"]
        if grammar in allowed:
            allowed, uses_grammar = allowed.replace(grammar, "a distribution (*)"), True
        rows.append((p["name"], p["type"], readable_spec(p["default"]), p["unit"], allowed, p["help"]))
    header = ("parameter", "type", "default", "unit", "allowed")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header[:4])] if rows else [0] * 4
    widths = [min(w, cap) for w, cap in zip(widths, (30, 13, 22, 6))]
    indent = " " * 4

    def line(cells: Sequence[str]) -> list[str]:
        head = "  ".join(c.ljust(w) for c, w in zip(cells[:4], widths))
        rest = cells[4]
        if len(head) + 2 + len(rest) <= width:
            return [(head + "  " + rest).rstrip()]
        # too wide: the allowed values go under the row, indented
        return [head.rstrip(), *textwrap.wrap(rest, width, initial_indent=indent, subsequent_indent=indent)]

    lines += line(header)
    for row in rows:
        if len(row[2]) > widths[2]:  # a long default: on its own lines under the row
            lines += line((row[0], row[1], "(below)", row[3], row[4]))
            lines += textwrap.wrap(f"default: {row[2]}", width, initial_indent=indent, subsequent_indent=indent * 2)
        else:
            lines += line(row[:5])
        if row[5]:
            lines += textwrap.wrap(row[5], width, initial_indent=indent, subsequent_indent=indent)
    if uses_grammar:
        lines += ["", *textwrap.wrap(f"(*) distributions: {grammar}", width, subsequent_indent=indent)]
    lines += ["", f"Set any of them with: {PROG} run {entry['name']} --set NAME=VALUE",
              f"Sweep them with:       {PROG} sweep {entry['name']} --grid NAME=A,B --seeds 0:9 --out DIR"]
    return "\n".join(lines)


def _describe(name: str) -> int:
    from sim import catalog

    print(describe_text(catalog.find(name), catalog.load()["distribution_grammar"]))
    return 0


# --- run ---------------------------------------------------------------------------------------
def _run(args: argparse.Namespace) -> int:
    name = resolve_name(args, "settings")
    settings = pairs(args.settings, "--set")
    check_keys(name, list(settings), "--set")
    if args.seeds is not None:
        from sim.sweeps import run_seeds_cli

        return run_seeds_cli(name, settings, args.seeds, args.workers, args.out, args.overwrite, args.force)
    if args.out is not None:
        from sim.core.result import check_output_dir

        check_output_dir(args.out)  # before running: nothing computed is lost to a bad path
    from sim.core.params import REASONABLE_SECONDS
    from sim.core.registry import DEFAULT_SEED, get

    sc = get(name)
    params = sc.params_type.from_strings(settings)
    warning = params.work_warning()
    if warning is not None and (args.force or params.estimated_seconds()[0] <= REASONABLE_SECONDS):
        # a long wait ahead (not one the run refuses): say how long, and which knob makes it shorter
        print(f"{PROG}: note: {warning}", file=sys.stderr)
    with elapsed(f"{PROG} run {name}"):
        result = sc.run(params, DEFAULT_SEED if args.seed is None else args.seed, force=args.force)
    if args.out is None:
        print(format_summary(result.summary))
    else:
        for path in result.write(args.out, overwrite=args.overwrite):
            print(path)
    return 0


class elapsed:
    """On a terminal, a long single run shows that it is running: ``... 12 s`` on stderr after 2 s,
    erased when it ends. (A run has no fraction done to show; sweeps and --seeds have a bar.)"""

    def __init__(self, what: str, after: float = 2.0) -> None:
        self.what, self.after = what, after
        self._stop = None

    def __enter__(self):
        if not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
            return self
        import threading
        import time

        from sim.core.context import progress_shown

        self._stop = threading.Event()
        started = time.monotonic()

        def show() -> None:
            while not self._stop.wait(0.5):
                seconds = time.monotonic() - started
                if seconds >= self.after and not progress_shown():  # a scenario's own bar says more
                    sys.stderr.write(f"\r{self.what} ... {seconds:.0f} s ")
                    sys.stderr.flush()

        self._thread = threading.Thread(target=show, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._stop is not None:
            self._stop.set()
            self._thread.join()
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


# --- readable numbers ------------------------------------------------------------------------
SIGNIFICANT = 4
NAN_NOTE = ("NaN: not defined for this run (a mean or percentile of no observations, e.g. no reconnection "
            "happened, or a confidence interval from fewer than 2 replications or seeds)")
INF_NOTE = ("inf: infinite, either unlimited (a capacity of none) or unbounded (e.g. the mean wait of a queue "
            "whose arrivals reach its capacity)")


def format_number(value: object) -> str:
    """A number as a person writes it: ``2`` not ``2.000000e+00``, 4 significant digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "dtype"):
        return str(value)
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    magnitude = math.floor(math.log10(abs(x)))
    if -4 <= magnitude < 15:
        decimals = max(0, SIGNIFICANT - 1 - magnitude)
        text = f"{x:.{decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    mantissa, _, exponent = f"{x:.{SIGNIFICANT - 1}e}".partition("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"


def format_summary(summary: pd.DataFrame, width: int = 120) -> str:
    """The summary as text that fits a terminal: readable numbers, one column per configuration when
    it is wide, and one footnote when a NaN or inf needs explaining."""
    import pandas as pd

    shown = summary.copy()
    notes = []
    for column in shown.columns:
        values = shown[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            shown[column] = [format_number(v) for v in values]
    cells = {str(v) for v in shown.to_numpy().ravel()}
    if "NaN" in cells:
        notes.append(NAN_NOTE)
    if "inf" in cells or "-inf" in cells:
        notes.append(INF_NOTE)
    text = _fit(shown, width)
    return text + "".join(f"\n\n{note}" for note in notes)


def _fit(summary: pd.DataFrame, width: int) -> str:
    import pandas as pd

    with pd.option_context("display.max_columns", None, "display.width", 10_000, "display.max_rows", None,
                           "display.max_colwidth", 200):
        text = summary.to_string(index=False)
        if max(map(len, text.splitlines()), default=0) <= width:
            return text
        # a wide table reads better turned: parameters and measures down, configurations across
        if len(summary) == 1:
            return summary.T.to_string(header=False)
        first = summary.iloc[:, 0]
        if first.is_unique and not all(_is_number(v) for v in first):  # e.g. mode names: use them as headers
            return summary.set_index(summary.columns[0]).T.to_string()
        return summary.T.to_string()


def _is_number(text: object) -> bool:
    try:
        float(str(text))
    except ValueError:
        return False
    return True


# --- course ------------------------------------------------------------------------------------
def _course(args: argparse.Namespace) -> int:
    from sim.core.result import check_output_dir

    check_output_dir(args.out)
    if args.notebooks is not None and not Path(args.notebooks).is_dir():
        raise CliError(f"--notebooks: {args.notebooks!r} is not a directory")
    from sim.course import build_course, parse_params

    params = parse_params(args.params)
    return build_course(Path(args.notebooks) if args.notebooks else None, Path(args.out),
                        cell_timeout=args.timeout, parameters=params, overwrite=args.overwrite,
                        jobs=args.jobs, browser_check=args.browser_check)


# --- entry point -------------------------------------------------------------------------------
def _handler(command: Subcommand) -> Callable[[argparse.Namespace], int]:
    if callable(command.handler):
        return command.handler
    import importlib

    module, _, function = command.handler.partition(":")
    return getattr(importlib.import_module(module), function)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        command = next(c for c in SUBCOMMANDS if c.name == args.command)
        return _handler(command)(args)
    except CliError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `python -m sim run ... | head`: the reader left, nothing is wrong
        _quiet_stdout()
        return 0
    except Exception as err:
        errors = sys.modules.get("sim.core.errors")  # loaded whenever a UserError can have been raised
        if errors is not None and isinstance(err, errors.UserError):
            print(f"{PROG}: error: {err}", file=sys.stderr)
            return getattr(err, "exit_status", 2)
        raise


def _quiet_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    raise SystemExit(main())
