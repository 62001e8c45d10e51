"""Sweeps: grids x seeds, serial / process pool / Dask with byte-identical runs, resumable after
Ctrl-C or kill -9, failures recorded, tidy tables, and one-line refusals of bad input."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import sim
from sim.calibration.local import free_port
from sim.cli import main
from sim.core.errors import ParameterError
from sim.sweeps import parse_seeds, split_values

SMALL = ["customers=200", "replications=2", "warmup=10"]


def run_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sim", *args], capture_output=True, text=True, timeout=timeout)


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- parsing -------------------------------------------------------------------------------------
def test_seed_ranges_are_like_python_ranges():
    assert parse_seeds("0:20") == list(range(20))
    assert parse_seeds("10:20:5") == [10, 15]
    assert parse_seeds("3") == [3]
    assert parse_seeds("4,1,4") == [4, 1]
    assert parse_seeds(range(3)) == [0, 1, 2]
    for bad in ("5:5", "9:3", "-1:3", "a", "0:10:0", "1:2:3:4", ""):
        with pytest.raises(ParameterError, match="--seeds"):
            parse_seeds(bad)


def test_grid_values_split_by_type():
    queue = sim.get("queue").params_type
    assert split_values(queue, "servers", "1,2,3") == ["1", "2", "3"]
    assert split_values(queue, "arrival_rate", "0.1:0.3:0.1") == ["0.1", "0.2", "0.3"]  # STOP included
    assert split_values(queue, "capacity", "none,5") == ["none", "5"]
    storm = sim.get("push-vs-webhook").params_type
    assert split_values(storm, "latency", "normal:0.05,0.01,constant:0.02") == ["normal:0.05,0.01", "constant:0.02"]
    assert split_values(storm, "latency", "normal:0.05,0.01;uniform:0.01,0.02") == ["normal:0.05,0.01",
                                                                                  "uniform:0.01,0.02"]
    for key, text, message in (("servers", "", "no values"), ("servers", "1,,2", "empty value"),
                               ("servers", "1,", "empty value"), ("servers", "2,2", "repeats"),
                               ("nope", "1", "unknown parameter"), ("servers", "1:1000000000:1", "at most")):
        with pytest.raises(ParameterError, match=message):
            split_values(queue, key, text)


# --- one result, whichever way it is computed ---------------------------------------------------------
def test_runs_are_byte_identical_serial_pool_and_dask(tmp_path, capsys):
    pytest.importorskip("dask.distributed")
    common = ["sweep", "queue", "--grid", "servers=1,2", "--set", *SMALL, "--seeds", "0:2"]
    outputs = {}
    for workers in ("1", "2", "dask:2"):
        out = tmp_path / workers.replace(":", "-")
        assert main([*common, "--workers", workers, "--out", str(out)]) == 0, capsys.readouterr().err
        outputs[workers] = files(out)
    runs = [k for k in outputs["1"] if k.startswith("runs/")]
    assert len([k for k in runs if k.endswith("params.json")]) == 4  # 2 configurations x 2 seeds
    for workers in ("2", "dask:2"):
        assert outputs[workers] == outputs["1"], workers  # every run file and the tables too

    table = pd.read_parquet(tmp_path / "1" / "results.parquet")
    assert len(table) == 4 and set(table.servers) == {1, 2} and set(table.seed) == {0, 1}
    assert {"config", "seed", "row", "arrival_rate", "wq", "blocking_probability"} <= set(table.columns)
    assert table.to_csv(index=False, lineterminator="\n") == (tmp_path / "1" / "results.csv").read_text()
    for servers, group in table.groupby("servers"):  # each run is what `sim.run` gives for that seed
        for seed in (0, 1):
            alone = sim.run("queue", seed=seed, servers=servers, customers=200, replications=2, warmup=10).summary
            assert group[group.seed == seed].wq.item() == pytest.approx(alone.wq.item(), rel=1e-12)


def test_summary_has_mean_and_ci_across_seeds_from_the_one_aggregation(tmp_path):
    from sim.core.stats import mean_ci

    table = sim.sweep("queue", grid={"servers": [1, 2]}, seeds=range(3), workers=1, customers=200,
                      replications=2, warmup=10)
    assert len(table) == 6
    summary = sim.sweep_summary(table)
    assert len(summary) == 2 and (summary.seeds == 3).all()
    one = summary[summary.servers == 1].iloc[0]
    mean, low, high = mean_ci(table[table.servers == 1].wq)
    assert (one.wq, one.wq_ci_low, one.wq_ci_high) == pytest.approx((mean, low, high))
    assert one.replications == 2  # a parameter named like the runner's count keeps its value


def test_a_failing_run_is_recorded_and_does_not_stop_the_sweep(tmp_path, monkeypatch):
    from sim import sweeps as sweep_module

    real = sweep_module.execute

    def flaky(scenario, params, seed, force=False):
        if seed == 1:
            return "failed", {"error": "RuntimeError: boom at seed 1", "traceback": "..."}
        return real(scenario, params, seed, force)

    monkeypatch.setattr(sweep_module, "execute", flaky)
    out = tmp_path / "sweep"
    outcome = sweep_module.run_sweep("queue", [sim.get("queue").params_type(customers=200, replications=2)],
                                     [0, 1, 2], workers=1, out=out)
    assert sorted(outcome.table.seed) == [0, 2] and list(outcome.failures.seed) == [1]
    failures = pd.read_csv(out / "failures.csv")
    assert "boom at seed 1" in failures.error.item()
    assert len(list((out / "runs").glob("*.failed.json"))) == 1

    monkeypatch.setattr(sweep_module, "execute", real)  # resumed: only the failed run is tried again
    again = sweep_module.run_sweep("queue", [sim.get("queue").params_type(customers=200, replications=2)],
                                   [0, 1, 2], workers=1, out=out)
    assert again.computed == 1 and again.reused == 2 and again.failures.empty
    assert not (out / "failures.csv").exists() and not list((out / "runs").glob("*.failed.json"))


def test_run_seeds_prints_mean_and_ci_across_seeds():
    proc = run_cli("run", "queue", "--set", *SMALL, "--seeds", "0:3", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert "wq_ci_low" in proc.stdout and "seeds" in proc.stdout and "e+00" not in proc.stdout


# --- resumable ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_an_interrupted_sweep_resumes_and_loses_nothing(tmp_path, capsys, how):
    out = tmp_path / "sweep"
    args = ["sweep", "queue", "--grid", "servers=1,2,3", "--set", "customers=1500", "replications=2",
            "--seeds", "0:3", "--workers", "1", "--out", str(out)]
    # Ctrl-C as on a terminal: a test run started in the background (nohup ... &) inherits SIGINT
    # ignored, and the sweep would then finish untouched
    proc = subprocess.Popen([sys.executable, "-m", "sim", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len([p for p in (out / "runs").glob("*-seed*") if p.is_dir()]) < 2:
        time.sleep(0.05)
    proc.send_signal(how)
    _, err = proc.communicate(timeout=60)
    if how == signal.SIGINT:
        assert proc.returncode == 130 and "resume" in err and len(err.strip().splitlines()) == 1, err
    else:
        assert proc.returncode == -signal.SIGKILL
    written = {p.name: files(p) for p in (out / "runs").iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert 2 <= len(written) < 9

    assert main(args) == 0
    assert f"{9 - len(written)} computed, {len(written)} already written" in capsys.readouterr().out
    for name, content in written.items():  # nothing written before was recomputed or changed
        assert files(out / "runs" / name) == content
    assert not [p for p in (out / "runs").iterdir() if p.name.startswith(".")]  # no half-written run left
    if how == signal.SIGKILL:
        fresh = tmp_path / "fresh"
        assert main([*args[:-1], str(fresh)]) == 0
        assert files(fresh) == files(out)  # the resumed sweep is the uninterrupted one


# --- bad input ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra, names", [
    (["--grid", "nope=1,2"], "nope"),
    (["--grid", "servers="], "no values"),
    (["--grid", "servers=1,,2"], "empty value"),
    (["--grid", "servers=1", "--grid", "servers=2"], "twice"),
    (["--grid", "servers=1,2", "--set", "servers=3"], "both"),
    (["--seeds", "5:5"], "empty"),
    (["--seeds", "minus"], "--seeds"),
    (["--grid", "servers=1,2", "--set", "capacity=1"], "configuration servers=2"),
    (["--workers", "0"], "--workers"),
    (["--workers", "dask:x"], "--workers"),
])
def test_bad_sweeps_exit_2_with_one_line(tmp_path, capsys, extra, names):
    try:
        status = main(["sweep", "queue", "--set", *SMALL, *extra, "--out", str(tmp_path / "s")])
    except SystemExit as usage:  # argparse's own one-line usage errors
        status = usage.code
    out, err = capsys.readouterr()
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and names in lines[0] and "Traceback" not in err, err
    assert out == "" and not (tmp_path / "s" / "runs").exists()  # refused before anything ran


def test_a_configuration_far_too_long_to_run_is_refused_before_the_sweep(tmp_path, capsys):
    assert main(["sweep", "reconnect-storm", "--grid", "clients=100,1000000000", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "clients" in err and "--force" in err
    assert not (tmp_path / "s" / "runs").exists()


def test_a_bad_sweep_is_one_line_from_a_fresh_interpreter_too(tmp_path):
    proc = run_cli("sweep", "queue", "--grid", "nope=1,2", "--out", str(tmp_path / "s"), timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "nope" in proc.stderr


def test_an_unreachable_scheduler_is_one_line_within_seconds(tmp_path):
    pytest.importorskip("dask.distributed")
    started = time.monotonic()
    proc = run_cli("sweep", "queue", "--set", *SMALL, "--scheduler", f"tcp://127.0.0.1:{free_port()}",
                   "--out", str(tmp_path / "s"), timeout=60)
    assert proc.returncode == 2 and time.monotonic() - started < 30
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--scheduler" in lines[0] and "cannot reach" in lines[0], proc.stderr


def test_a_sweep_directory_of_another_scenario_or_not_a_sweep_is_refused(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sweep", "queue", "--set", *SMALL, "--workers", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    other = ["sweep", "load-balancing", "--set", "clients=300", "--workers", "1", "--out", str(out)]
    assert main(other) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert main([*other, "--overwrite"]) == 0
    assert json.loads((out / "sweep.json").read_text())["scenario"] == "load-balancing"
    assert list((out / "runs").iterdir()) and all(json.loads((p / "params.json").read_text())["scenario"] == "load-balancing"
               for p in (out / "runs").iterdir())  # the queue runs are gone, not mixed
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    capsys.readouterr()
    assert main(["sweep", "queue", "--set", *SMALL, "--out", str(tmp_path / "mine"), "--overwrite"]) == 2
    assert "not a sweep" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    file = tmp_path / "file"
    file.write_text("x")
    assert main(["sweep", "queue", "--out", str(file)]) == 2
    assert "not a directory" in capsys.readouterr().err


# --- papermill -----------------------------------------------------------------------------------------
def test_a_notebook_runs_under_papermill_with_a_changed_parameter(tmp_path):
    papermill = pytest.importorskip("papermill")
    root = Path(__file__).resolve().parent.parent
    source = root / "notebooks" / "00_simulator_primer.ipynb"
    changed = {"CUSTOMERS": 1500, "REPLICATIONS": 2, "BIAS_REPLICATIONS": 2}
    nb = papermill.execute_notebook(str(source), str(tmp_path / "out.ipynb"), parameters=changed,
                                    kernel_name="python3", cwd=str(source.parent), progress_bar=False)
    injected = [i for i, c in enumerate(nb.cells) if "injected-parameters" in c.metadata.get("tags", [])]
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert injected == [tagged[0] + 1]
    # the parameter reached the model: the load sweep's table shows this run's numbers
    expected = sim.run("queue", seed=1, arrival_rate=0.3, service_rate=1.0, servers=1, capacity=None,
                       customers=1500, warmup=100.0, replications=2).summary.wq.item()
    shown = "".join(o.get("data", {}).get("text/plain", "") for c in nb.cells if c.cell_type == "code"
                    for o in c.get("outputs", []))
    assert f"{expected:.6f}" in shown
