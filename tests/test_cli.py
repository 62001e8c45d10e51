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
    assert format_summary(narrow).split() == ["mode", "x", "a", "1"]


def test_output_piped_into_a_closed_reader_is_not_an_error():
    proc = subprocess.run(f"{sys.executable} -m sim list | head -c 1", shell=True, capture_output=True, text=True)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr


# --- readable output -------------------------------------------------------------------------
@pytest.mark.parametrize("value, text", [
    (2.0, "2"), (3, "3"), (0.9, "0.9"), (1.23456, "1.235"), (123456.789, "123457"), (0.000123456, "0.0001235"),
    (2.3148148148148147e-05, "2.315e-05"), (1e20, "1e+20"), (1.5e20, "1.5e+20"),
    (float("nan"), "NaN"), (float("inf"), "inf"), ("mode", "mode"), (True, "True"),
])
def test_numbers_are_printed_as_a_person_writes_them(value, text):
    from sim.cli import format_number

    assert format_number(value) == text


def test_run_prints_counts_as_integers_and_explains_nan_once(capsys):
    from sim.cli import NAN_NOTE, format_summary

    table = pd.DataFrame({"servers": [2.0, 3.0], "p99": [float("nan"), 0.5], "p50": [float("nan"), 0.25]})
    text = format_summary(table)
    assert "2.000000e+00" not in text and text.splitlines()[1].split()[0] == "2"
    assert text.count(NAN_NOTE) == 1


def test_describe_fits_100_columns_and_says_the_distribution_grammar_once(capsys):
    import sim
    from sim.core.distributions import SPEC_HELP

    for name in (s.name for s in sim.list_scenarios()):
        assert main(["describe", name]) == 0
        out = capsys.readouterr().out
        assert max(len(line) for line in out.splitlines()) <= 100, name
        assert out.count(SPEC_HELP) <= 1
        assert "e-05" not in out or "2.3148148148148147e-05" not in out


def test_describe_and_list_agree_with_the_registry(capsys):
    import sim

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    listed = [line.split()[0] for line in out.splitlines() if not line.startswith(" ")]
    assert listed == [s.name for s in sim.list_scenarios()]


def test_options_may_come_before_the_scenario_name(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["run", "--set", "customers=300", "replications=2", "queue", "--out", str(a)]) == 0
    assert main(["run", "--seed", "1", "--out", str(b), "queue", "--set", "customers=300", "replications=2"]) == 0
    assert (a / "summary.csv").read_bytes() == (b / "summary.csv").read_bytes()


def test_sim_run_and_the_cli_share_one_default_seed(tmp_path):
    import sim

    assert main(["run", "queue", *FAST, "--out", str(tmp_path / "cli")]) == 0
    assert json.loads((tmp_path / "cli" / "params.json").read_text())["seed"] == sim.run("queue", customers=10).seed


def test_start_up_does_not_import_the_heavy_libraries():
    code = ("import sys, sim.cli; sim.cli.build_parser(); from sim import catalog; catalog.load();"
            "print(sorted(m for m in ('numpy', 'pandas', 'scipy', 'matplotlib', 'pycrdt') if m in sys.modules))")
    run_cli("list")  # make sure the catalog is cached
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "[]", proc.stderr


def test_running_one_scenario_imports_its_module_alone_and_list_still_finds_them_all():
    code = ("import sys, sim; sim.get('queue'); leaf = lambda: sorted(m for m in sys.modules if "
            "m.startswith('sim.scenarios.') and not hasattr(sys.modules[m], '__path__')); print(leaf()); "
            "print(len(sim.list_scenarios()), len(leaf()))")
    run_cli("list")  # the catalog cached: it says which module registers each name
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    first, counts = proc.stdout.splitlines()
    assert first == "['sim.scenarios.queue']", proc.stderr
    registered, modules = map(int, counts.split())
    assert registered >= 17 and modules >= 17


def test_a_new_subcommand_takes_a_few_lines(capsys):
    from sim import cli

    @cli.subcommand("hello-test", help="say hello", handler=lambda args: print(f"hello {args.who}") or 0)
    def _arguments(parser):
        parser.add_argument("--who", default="world")

    try:
        assert main(["hello-test", "--who", "class"]) == 0
        assert capsys.readouterr().out == "hello class\n"
    finally:
        cli.SUBCOMMANDS.remove(next(c for c in cli.SUBCOMMANDS if c.name == "hello-test"))


# --- bad input: output paths and repeated keys, refused before anything runs ----------------------
@pytest.mark.parametrize("where, names", [
    ("file", "exists and is not a directory"),
    ("under-file", "which is a file"),
    ("/dev/null", "not a directory"),
    ("", "empty"),
    ("long", "longer than"),
    ("/proc/sim-cannot-write-here", "cannot create files"),
])
@pytest.mark.parametrize("command", [["run", "queue", *FAST], ["course"]])
def test_bad_output_directories_exit_2_in_one_line(tmp_path, where, names, command):
    target = {"file": tmp_path / "f.txt", "under-file": tmp_path / "f.txt" / "out", "long": tmp_path / ("x" * 300)}
    (tmp_path / "f.txt").write_text("not a directory")
    out = str(target.get(where, where))
    proc = run_cli(*command, "--out", out)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--out" in lines[0] and names in lines[0], proc.stderr
    assert proc.stdout == ""  # refused before running: nothing started
    assert (tmp_path / "f.txt").read_text() == "not a directory"


def test_a_key_given_twice_is_refused():
    proc = run_cli("run", "queue", "--set", "servers=2", "--set", "servers=3")
    assert proc.returncode == 2 and "servers" in proc.stderr and "twice" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("value", ["inf", "nan", "0", "-1", "1e308", "soon"])
def test_course_timeout_must_be_finite_and_positive(value):
    proc = run_cli("course", "--timeout", value)
    assert proc.returncode == 2 and "--timeout" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# --- atomic results ----------------------------------------------------------------------------
def test_result_write_refuses_another_runs_directory_unless_overwrite(tmp_path):
    out = tmp_path / "r"
    assert main(["run", "queue", *FAST, "--seed", "1", "--out", str(out)]) == 0
    first = (out / "summary.csv").read_bytes()
    assert main(["run", "queue", *FAST, "--seed", "1", "--out", str(out)]) == 0  # the same run: replaced
    proc = run_cli("run", "queue", *FAST, "--seed", "2", "--out", str(out))
    assert proc.returncode == 2 and "--overwrite" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert (out / "summary.csv").read_bytes() == first  # untouched
    (out / "stale.csv").write_text("from an older version\n")
    assert main(["run", "queue", *FAST, "--seed", "2", "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "params.json").read_text())["seed"] == 2
    assert not (out / "stale.csv").exists()  # replaced, not mixed
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".sim-")]  # no temporary left behind


def test_result_write_never_touches_a_directory_that_is_not_a_result(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    proc = run_cli("run", "queue", *FAST, "--out", str(tmp_path), "--overwrite")
    assert proc.returncode == 2 and "not a result" in proc.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_result_write_killed_half_way_leaves_the_old_result(tmp_path, monkeypatch):
    import sim
    from sim.core import result as result_module

    out = tmp_path / "r"
    res = sim.run("queue", customers=300, replications=2)
    res.write(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def crash(self, folder):
        (folder / "summary.csv").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(result_module.Result, "write_files", crash)
    with pytest.raises(KeyboardInterrupt):
        res.write(out, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_a_run_estimated_over_a_minute_says_so_first_and_names_the_knob(capsys, monkeypatch):
    from sim.scenarios.q7_resilience.reconnect_storm import ReconnectStormParams

    monkeypatch.setattr(ReconnectStormParams, "estimated_seconds", lambda self: (120.0, "clients", 1))
    assert main(["run", "reconnect-storm", "--set", "clients=40", "strategy=full_jitter", "horizon=30"]) == 0
    err = capsys.readouterr().err
    assert "note: this run is estimated at about 120 s here, mostly because of clients=40" in err


def test_a_short_run_prints_no_note(capsys):
    assert main(["run", "reconnect-storm", "--set", "clients=40", "strategy=full_jitter", "horizon=30"]) == 0
    assert "note:" not in capsys.readouterr().err
