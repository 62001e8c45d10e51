"""What a scenario run returns: a summary table, time series, and the parameters that made them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sim.core.params import Params


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

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write ``summary.csv``, one CSV per series and ``params.json`` into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        tables = {"summary": self.summary, **self.series}
        for name, frame in tables.items():
            path = out / f"{name}.csv"
            frame.to_csv(path, index=False, lineterminator="\n")
            written.append(path)
        path = out / "params.json"
        path.write_text(json.dumps(self.record(), indent=2, sort_keys=True) + "\n")
        written.append(path)
        return written
