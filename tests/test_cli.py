"""The command line: output files, determinism and one-line errors with exit status 2."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from sim.cli import main

FAST = ["--set", "customers=500", "replications=2"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sim", *args], capture_output=True, text=True, timeout=120)


def test_list_names_every_scenario(capsys):
    assert main(["list"]) == 0
    assert "queue" in capsys.readouterr().out


def test_describe_shows_types_defaults_units_and_ranges(capsys):
    assert main(["describe", "queue"]) == 0
    out = capsys.readouterr().out
    for text in ("arrival_rate", "float", "1/s", "> 0", "servers", ">= 1", "capacity", "unlimited"):
        assert text in out


def test_run_prints_summary(capsys):
    assert main(["run", "queue", *FAST, "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "wq_ci_low" in out and "blocking_probability" in out


def test_run_out_twice_gives_identical_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["run", "queue", *FAST, "--seed", "1", "--out", str(a)]) == 0
    assert main(["run", "queue", *FAST, "--seed", "1", "--out", str(b)]) == 0
    names = sorted(p.name for p in a.iterdir())
    assert names == ["params.json", "replications.csv", "summary.csv"]
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    record = json.loads((a / "params.json").read_text())
    assert record["seed"] == 1 and record["scenario"] == "queue" and record["params"]["customers"] == 500
    assert "version" in record
    summary = pd.read_csv(a / "summary.csv")
    assert len(summary) == 1 and {"wq", "w", "lq", "l", "utilization", "blocking_probability",
                                  "wq_ci_low", "wq_ci_high"} <= set(summary.columns)


@pytest.mark.parametrize("args, names", [
    (["run", "nope"], "nope"),
    (["describe", "nope"], "nope"),
    (["run", "queue", "--set", "arrival_rate=-1"], "arrival_rate"),
    (["run", "queue", "--set", "servers=0"], "servers"),
    (["run", "queue", "--set", "servers=two"], "servers"),
    (["run", "queue", "--set", "capacity=2", "servers=3"], "capacity"),
    (["run", "queue", "--set", "unknown_knob=3"], "unknown_knob"),
    (["run", "queue", "--set", "arrival_rate"], "--set"),
    (["run", "queue", "--seed", "minus"], "--seed"),
    (["frobnicate"], "frobnicate"),
])
def test_bad_input_exits_2_with_one_line_naming_it(args, names):
    proc = run_cli(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert names in lines[0] and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_wide_summaries_are_turned_to_fit_a_terminal():
    from sim.cli import format_summary

    wide = pd.DataFrame({"mode": ["a", "b"], **{f"measure_{i}": [1.0, 2.0] for i in range(30)}})
    text = format_summary(wide)
    assert max(len(line) for line in text.splitlines()) <= 120
    assert text.splitlines()[0].split() == ["mode", "a", "b"]
    narrow = pd.DataFrame({"mode": ["a"], "x": [1]})
    assert format_summary(narrow) == narrow.to_string(index=False)


def test_output_piped_into_a_closed_reader_is_not_an_error():
    proc = subprocess.run(f"{sys.executable} -m sim list | head -c 1", shell=True, capture_output=True, text=True)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
