"""``python -m sim calibrate reconnect-storm|broker-fanout``: the model against real servers.

Prints the side-by-side table (model, real, relative difference), writes a plot and stores
the result, with the date, versions and machine, in ``data/calibration/`` (read by the closing
sections of notebooks 07 and 06, which need no server). Heavy imports happen only when the
command runs.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from sim.core.errors import ParameterError

TARGETS = ("reconnect-storm", "broker-fanout")
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "data" / "calibration"
#: Run-to-run spread is turned into a tolerance as K_SIGMA standard deviations.
K_SIGMA = 3.0

HELP = """Run a scenario's real counterpart on 127.0.0.1 and the model with the same parameters.

reconnect-storm: a websockets server with the model's admission rule (token bucket, HTTP 503),
  N real clients reconnecting with the project's Backoff policies; the server is reset and
  restarted after a downtime. Compares reconnection-time p50/p99/max, the Kolmogorov-Smirnov
  distance, peak attempts per second and refused attempts.
broker-fanout: a real redis-server (pub/sub with client-output-buffer-limit, then a Stream with
  a consumer group) against the model's Redis-like and log brokers.

With --repeat N the real run is repeated N times (seeds SEED..SEED+N-1), each against the model
run with that run's measured handshake times and downtime; the table then shows the mean
relative difference, its run-to-run standard deviation (rel_sd) and the tolerance derived from
it, 3 * rel_sd; for the KS distance, the largest distance between two real runs."""


def add_parser(sub) -> None:
    """The ``calibrate`` subcommand (the hook sim/cli.py calls)."""
    p = sub.add_parser("calibrate", help="run a scenario against a real server on loopback and compare",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", choices=TARGETS, help="which calibration")
    p.add_argument("--clients", type=int, default=None, help="reconnect-storm: real clients (default 1000, at most 5000)")
    p.add_argument("--strategy", default=None,
                   help="reconnect-storm: backoff strategies, comma separated (default: the three jittered ones)")
    p.add_argument("--backoff-base", type=float, default=None, help="reconnect-storm: first delay, s (default 0.5)")
    p.add_argument("--backoff-cap", type=float, default=None, help="reconnect-storm: largest delay, s (default 4)")
    p.add_argument("--admission-rate", type=float, default=None, help="reconnect-storm: handshakes/s (default 200)")
    p.add_argument("--admission-burst", type=int, default=None, help="reconnect-storm: bucket size (default 20)")
    p.add_argument("--downtime", type=float, default=None, help="reconnect-storm: s the server stays down (default 2)")
    p.add_argument("--time-limit", type=float, default=None, help="reconnect-storm: s allowed after the restart (default 30)")
    p.add_argument("--backlog", type=int, default=None, help="reconnect-storm: the server's listen backlog (default 100, "
                                                               "asyncio's; the kernel caps it at net.core.somaxconn)")
    p.add_argument("--repeat", type=int, default=1, help="real runs per strategy, for the run-to-run spread (default 1)")
    p.add_argument("--model-seeds", type=int, default=5, help="model runs per strategy, pooled (default 5)")
    p.add_argument("--seed", type=int, default=1, help="first seed (default 1)")
    p.add_argument("--out", type=Path, default=DEFAULT_DIR, help="where the JSON result and the plot go "
                                                                   "(default: data/calibration)")
    p.add_argument("--name", default=None, help="file name stem of the stored result (default: the target)")


def main(args: argparse.Namespace) -> int:
    for name, low, high in (("repeat", 1, 50), ("model_seeds", 1, 100)):
        value = getattr(args, name)
        if not low <= value <= high:
            raise ParameterError(f"--{name.replace('_', '-')}", f"must be an integer from {low} to {high}, got {value}")
    if args.target == "reconnect-storm":
        return _reconnect_storm(args)
    try:
        from sim.calibration import redis_broker
    except ImportError:
        raise ParameterError("target", "broker-fanout's calibration is not in this version yet; "
                                       "use reconnect-storm") from None
    return redis_broker.command(args)


def _storm_setups(args):
    from sim.calibration.reconnect import JITTERED, StormSetup

    defaults = dict(clients=1_000, backoff_base=0.5, backoff_cap=4.0, admission_rate=200.0, admission_burst=20,
                    downtime=2.0, time_limit=30.0, backlog=100)
    chosen = {k: getattr(args, k) for k in defaults if getattr(args, k) is not None}
    values = {**defaults, **chosen}
    strategies = [s.strip() for s in (args.strategy or ",".join(JITTERED)).split(",") if s.strip()]
    if not strategies:
        raise ParameterError("--strategy", "must name at least one strategy")
    return [[StormSetup(strategy=s, seed=args.seed + r, **values) for r in range(args.repeat)] for s in strategies]


def _sd(values) -> float:
    import numpy as np

    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1)) if len(values) >= 2 else math.nan


def _reconnect_storm(args) -> int:
    from sim.calibration import reconnect as rc

    plan = _storm_setups(args)  # validates every parameter before anything starts
    stored = {"target": "reconnect-storm", "machine": rc.machine(), "k_sigma": K_SIGMA, "model_seeds": args.model_seeds,
              "tolerance_rule": TOLERANCE_RULE, "strategies": {}}
    for runs in plan:
        setup = runs[0]
        print(f"\n== {setup.strategy}: {setup.clients} real clients, {len(runs)} real run(s) ==", flush=True)
        pairs = []
        for s in runs:
            real = rc.run_real(s)
            model = rc.run_model(s, real.handshake_s, rc.model_downtime([real]),
                                 range(args.seed, args.seed + args.model_seeds))
            bench = rc.run_model(s, rc.bench_round_trips(real), rc.model_downtime([real]),
                                 range(args.seed, args.seed + args.model_seeds))
            pairs.append((real, model, bench))
            print(f"   real run seed {s.seed}: {len(real.reconnect_s)}/{real.affected} back, {real.wall_s:.1f} s wall",
                  flush=True)
        entry = storm_entry(pairs)
        stored["strategies"][setup.strategy] = entry
        print(_table(entry["rows"]))
    stored["setup"] = {k: v for k, v in rc.setup_dict(plan[0][0]).items() if k not in ("strategy", "seed")}
    stem = args.name or "reconnect-storm"
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{stem}.json"
    path.write_text(json.dumps(stored, indent=1, default=_json_default) + "\n")
    plot = args.out / f"{stem}.png"
    plot_reconnect_storm(stored, plot)
    print(f"\n{path}\n{plot}")
    return 0


TOLERANCE_RULE = ("each real run is compared with the model run with that run's measured handshake times and "
                  "downtime; relative_difference is the mean over runs of (real - model) / model, rel_sd their "
                  "run-to-run standard deviation; tolerance = 3 * rel_sd (what one more real run may differ by). "
                  "KS: the tolerance is the largest KS distance between two real runs.")


def storm_entry(pairs) -> dict:
    """The stored comparison of repeated (real run, model runs) pairs of one strategy."""
    import numpy as np

    from sim.calibration import reconnect as rc

    benches = [p[2] for p in pairs if len(p) > 2]
    pairs = [(p[0], p[1]) for p in pairs]
    reals = [r for r, _ in pairs]
    summaries = [rc.real_summary(r) for r in reals]
    models = [rc.model_summary(m) for _, m in pairs]
    bench_models = [rc.model_summary(b) for b in benches]
    rows = []
    for metric in rc.METRICS:
        rel = [rc.relative(s[metric], m[metric]) for s, m in zip(summaries, models)]
        sd = _sd(rel)
        mean = float(np.mean(rel))
        tolerance = K_SIGMA * sd
        rows.append({"metric": metric, "model": float(np.mean([m[metric] for m in models])),
                     "real": float(np.mean([s[metric] for s in summaries])), "relative_difference": mean,
                     "rel_sd": sd, "tolerance": tolerance,
                     "within": bool(abs(mean) <= tolerance) if sd == sd else None})
        if bench_models:
            rows[-1]["model_bench"] = float(np.mean([m[metric] for m in bench_models]))
            rows[-1]["relative_difference_bench"] = float(np.mean(
                [rc.relative(s[metric], m[metric]) for s, m in zip(summaries, bench_models)]))
    pooled = [np.concatenate([run["reconnect_s"] for run in m]) for _, m in pairs]
    ks = [rc.ks_distance(r.reconnect_s, p) for r, p in zip(reals, pooled)]
    pairwise = [rc.ks_distance(a.reconnect_s, b.reconnect_s) for i, a in enumerate(reals) for b in reals[i + 1:]]
    ks_tol = max(pairwise) if pairwise else math.nan
    rows.append({"metric": "ks_distance", "model": 0.0, "real": float(np.mean(ks)), "relative_difference": math.nan,
                 "rel_sd": _sd(ks), "tolerance": ks_tol, "within": bool(np.mean(ks) <= ks_tol) if pairwise else None})
    if benches:
        bench_pooled = [np.concatenate([run["reconnect_s"] for run in b]) for b in benches]
        rows[-1]["model_bench"] = 0.0
        rows[-1]["ks_bench"] = float(np.mean([rc.ks_distance(r.reconnect_s, p) for r, p in zip(reals, bench_pooled)]))
    quantiles = np.linspace(0, 1, 101)
    real_times = np.concatenate([np.asarray(r.reconnect_s) for r in reals])
    model_times = np.concatenate(pooled)
    bench_times = (np.concatenate([run["reconnect_s"] for b in benches for run in b]) if benches else None)
    series = [run["attempts_per_s"] for _, m in pairs for run in m]
    model_bins = np.mean([x[: min(map(len, series))] for x in series], axis=0)
    real_bins = _per_second([a for r in reals for a in r.attempts], len(reals))
    handshakes = [t for r in reals for t in r.handshake_s]
    return {
        "rows": rows,
        "real_runs": summaries,
        "model_runs": models,
        "ks_real_vs_model": ks,
        "ks_real_vs_real": pairwise,
        "handshake_ms": {"median": float(np.median(handshakes) * 1000), "p99": float(np.quantile(handshakes, 0.99) * 1000)},
        "model_downtime_s": [rc.model_downtime([r]) for r in reals],
        "cdf": {"quantile": quantiles.tolist(), "real_s": np.quantile(real_times, quantiles).tolist(),
                "model_s": np.quantile(model_times, quantiles).tolist(),
                **({"model_bench_s": np.quantile(bench_times, quantiles).tolist()} if benches else {})},
        "attempts_per_s": {"real": real_bins[: len(model_bins)], "model": model_bins.tolist()},
    }


def _per_second(attempts, runs: int) -> list[float]:
    bins: dict[int, int] = {}
    for start, _, _ in attempts:
        bins[int(start // 1.0)] = bins.get(int(start // 1.0), 0) + 1
    top = max(bins, default=-1) + 1
    return [bins.get(b, 0) / runs for b in range(top)]


def _json_default(value):
    import numpy as np

    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value))


def _table(rows: list[dict]) -> str:
    import pandas as pd

    frame = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", None, "display.float_format", "{:.4g}".format):
        return frame.to_string(index=False)


def plot_reconnect_storm(stored: dict, path: Path | None = None):
    """Reconnection-time CDFs and attempts per second, model against real, one column per strategy."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = list(stored["strategies"])
    fig, axes = plt.subplots(2, len(names), figsize=(4.2 * len(names), 6.5), squeeze=False)
    for col, name in enumerate(names):
        entry = stored["strategies"][name]
        cdf = entry["cdf"]
        ax = axes[0][col]
        ax.plot(cdf["model_s"], cdf["quantile"], label="model")
        ax.plot(cdf["real_s"], cdf["quantile"], "--", label="real (websockets, loopback)")
        if "model_bench_s" in cdf:
            ax.plot(cdf["model_bench_s"], cdf["quantile"], ":", label="model, bench's attempt times as round trip")
        ks = next(r["real"] for r in entry["rows"] if r["metric"] == "ks_distance")
        ax.set(title=f"{name} (KS {ks:.3f})", xlabel="reconnection time (s)", ylabel="fraction of clients back")
        ax.legend(fontsize=8)
        ax = axes[1][col]
        per = entry["attempts_per_s"]
        busy = [i for i, (a, b) in enumerate(zip(per["model"], per["real"])) if a or b]
        last = (busy[-1] + 3) if busy else len(per["model"])
        per = {k: v[:last] for k, v in per.items()}
        ax.step(range(len(per["model"])), per["model"], where="post", label="model")
        ax.step(range(len(per["real"])), per["real"], "--", where="post", label="real")
        ax.set(xlabel="time (s, crash at %g s)" % stored["setup"]["crash_at"], ylabel="connection attempts per second")
        ax.legend(fontsize=8)
    m = stored["machine"]
    fig.suptitle(f"reconnect-storm, model vs real: {stored['setup']['clients']} clients,\n"
                 f"measured {m['date_utc']} (websockets {m['websockets']}, Python {m['python']})", fontsize=10)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=90)
        plt.close(fig)
    return fig
