"""The command line: ``python -m sim list | describe NAME | run NAME | course``.

Every mistake in what the user typed (unknown scenario or parameter, wrong type, value out
of range) ends with exit status 2 and one line on stderr naming the parameter and what is
allowed, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from sim.core.errors import ParameterError, UserError

EPILOG = """examples:
  python -m sim list
  python -m sim describe queue
  python -m sim run queue --set arrival_rate=0.9 --set servers=2 --seed 7
  python -m sim run queue --set capacity=5 --seed 1 --out results/queue-k5
  python -m sim course
  python -m sim calibrate reconnect-storm --clients 200

Times are in seconds and rates per second everywhere. The same seed always gives the
same numbers."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake in one line (exit 2) instead of usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m sim", description="Simulations and notebooks of the real-time systems course.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    sub.add_parser("list", help="list every scenario with a one-line description")

    describe = sub.add_parser("describe", help="show a scenario's parameters: type, default, unit, allowed values")
    describe.add_argument("name", help="scenario name (see `list`)")

    run = sub.add_parser("run", help="run one scenario and print or save its results",
                         description="Run one scenario. Without --out, print the summary table; with --out DIR, "
                                     "write DIR/summary.csv, one CSV per time series and DIR/params.json.")
    run.add_argument("name", help="scenario name (see `list`)")
    run.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE", nargs="+",
                     help="set a parameter (repeatable); see `describe NAME` for names and allowed values")
    run.add_argument("--seed", type=_seed, default=1, help="random seed, an integer >= 0 (default: 1)")
    run.add_argument("--out", type=Path, metavar="DIR", help="directory for summary.csv, series CSVs and params.json")

    course = sub.add_parser("course", help="execute every notebook headless and write the HTML course",
                            description="Execute every notebook in NOTEBOOKS and write one HTML page per notebook "
                                        "plus index.html into OUT.")
    course.add_argument("--notebooks", type=Path, default=None, help="notebook directory (default: ./notebooks)")
    course.add_argument("--out", type=Path, default=Path("build/course"), help="output directory (default: build/course)")
    course.add_argument("--timeout", type=_positive, default=600.0, help="seconds allowed per cell (default: 600)")

    from sim.calibration.command import add_parser as add_calibrate

    add_calibrate(sub)
    return parser


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def _settings(pairs: list[list[str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in (p for group in pairs for p in group):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParameterError("--set", f"takes KEY=VALUE, got {pair!r}")
        out[key.strip()] = value
    return out


def _list() -> int:
    from sim.core.registry import list_scenarios

    rows = [(s.name, s.description) for s in list_scenarios()]
    width = max(len(n) for n, _ in rows)
    for name, description in rows:
        print(f"{name:<{width}}  {description}")
    return 0


def _describe(name: str) -> int:
    from sim.core.registry import get

    sc = get(name)
    print(f"{sc.name}: {sc.description}\n")
    table = pd.DataFrame([vars(p) for p in sc.params_type.describe()])
    with pd.option_context("display.max_colwidth", 80, "display.width", 200):
        print(table.to_string(index=False))
    print(f"\nSet any of them with: python -m sim run {sc.name} --set NAME=VALUE")
    return 0


def _run(name: str, settings: dict[str, str], seed: int, out: Path | None) -> int:
    from sim.core.registry import get

    sc = get(name)
    params = sc.params_type.from_strings(settings)
    result = sc.run(params, seed)
    if out is None:
        print(format_summary(result.summary))
    else:
        for path in result.write(out):
            print(path)
    return 0


def format_summary(summary: pd.DataFrame, width: int = 120) -> str:
    """The summary as text that fits a terminal: one column per configuration when it is wide."""
    with pd.option_context("display.max_columns", None, "display.width", 10_000, "display.max_rows", None):
        text = summary.to_string(index=False)
        if max(map(len, text.splitlines()), default=0) <= width:
            return text
        # a wide table reads better turned: parameters and measures down, configurations across
        if len(summary) == 1:
            return summary.T.to_string(header=False)
        first = summary.iloc[:, 0]
        if not pd.api.types.is_numeric_dtype(first) and first.is_unique:  # e.g. mode names: use them as headers
            return summary.set_index(summary.columns[0]).T.to_string()
        return summary.T.to_string()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            return _list()
        if args.command == "describe":
            return _describe(args.name)
        if args.command == "run":
            return _run(args.name, _settings(args.settings), args.seed, args.out)
        if args.command == "course":
            from sim.course import build_course

            return build_course(args.notebooks, args.out, cell_timeout=args.timeout)
        if args.command == "calibrate":
            from sim.calibration.command import main as calibrate

            return calibrate(args)
    except UserError as err:
        print(f"python -m sim: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("python -m sim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `python -m sim run ... | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
