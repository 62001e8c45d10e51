"""Stored calibration results (``data/calibration/*.json``, written by ``python -m sim calibrate``),
read back for the notebooks, which need no server. Captions are built from the stored numbers."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "calibration"


def load(name: str) -> dict:
    """The stored result ``name`` (e.g. ``reconnect-storm``, ``broker-fanout``)."""
    try:
        text = resources.files("sim.presets").joinpath("calibration", f"{name}.json").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        text = (DATA_DIR / f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text)


def measured_on(stored: dict) -> str:
    m = stored["machine"]
    extra = f", redis-server {m['redis_server']}, redis-py {m['redis_py']}" if "redis_server" in m else ""
    return (f"measured {m['date_utc']} on {m['platform']} ({m['cpus']} CPUs, load average {m['load_average_1min']} "
            f"at the start), Python {m['python']}, websockets {m['websockets']}{extra}, sim {m['sim']}")


def storm_table(stored: dict):
    """One row per (strategy, metric): model, real, relative difference, run-to-run spread, tolerance."""
    import pandas as pd

    rows = [{"strategy": name, **row} for name, entry in stored["strategies"].items() for row in entry["rows"]]
    return pd.DataFrame(rows)


def storm_caption(stored: dict) -> str:
    """What the stored storm shows, in words, every number from the file."""
    s = stored["setup"]
    parts = [f"**{s['clients']} real clients**, one server admitting {s['admission_rate']:g} handshakes/s "
             f"(burst {s['admission_burst']}), down {s['downtime']:g} s, backoff base {s['backoff_base']:g} s, "
             f"cap {s['backoff_cap']:g} s; {measured_on(stored)}."]
    for name, entry in stored["strategies"].items():
        rows = {r["metric"]: r for r in entry["rows"]}
        runs = entry["real_runs"]
        mean = lambda key: sum(r.get(key, float("nan")) for r in runs) / len(runs)  # noqa: E731
        p50, p99, ks = rows["reconnect_p50_s"], rows["reconnect_p99_s"], rows["ks_distance"]
        parts.append(
            f"- `{name}` ({len(runs)} real runs): p50 {p50['model']:.2f} s (model) vs {p50['real']:.2f} s (real), "
            f"{p50['relative_difference']:+.0%}; p99 {p99['model']:.2f} vs {p99['real']:.2f} s, "
            f"{p99['relative_difference']:+.0%}; KS distance {ks['real']:.2f} (two real runs differ by up to "
            f"{ks['tolerance']:.2f}); peak attempts {rows['peak_attempts_per_s']['model']:.0f}/s vs "
            f"{rows['peak_attempts_per_s']['real']:.0f}/s. A real attempt took {mean('attempt_p50_ms'):.0f} ms "
            f"(median) against {entry['handshake_ms']['median']:.1f} ms for one handshake on an idle loop; "
            f"{mean('slow_attempts_over_0_9s'):.0f} attempts per run took more than 0.9 s; machine load "
            f"{mean('load_average_1min'):.1f}.")
    return "\n".join(parts)


def broker_table(stored: dict):
    import pandas as pd

    rows = [{"limits": name, **row} for name, entry in stored["slow_subscriber"].items() for row in entry["rows"]]
    return pd.DataFrame(rows)


def broker_caption(stored: dict) -> str:
    parts = [f"Real `redis-server`, {measured_on(stored)}; kernel socket buffers "
             f"`tcp_rmem` {stored['machine']['tcp_rmem']}, `tcp_wmem` {stored['machine']['tcp_wmem']} (bytes)."]
    for name, entry in stored["slow_subscriber"].items():
        s, rows = entry["setup"], {r["metric"]: r for r in entry["rows"]}
        parts.append(
            f"- limits **{name}** (`client-output-buffer-limit pubsub {s['hard_bytes']} {s['soft_bytes']} "
            f"{s['soft_seconds']}`), {s['rate']:g} messages/s of {s['message_bytes']} B, slow reader "
            f"{s['slow_read_rate']:g} B/s: Redis cut the slow subscriber at {rows['cut_s']['real']:.2f} s "
            f"({entry['real_cut_by']} limit), the model at {rows['cut_s']['model']:.2f} s ({entry['model_cut_by']}); "
            f"it missed {rows['slow_missed']['real']} of {entry['published']} messages (model "
            f"{rows['slow_missed']['model']}). At the cut {entry['kernel_held_bytes_at_cut'] / 2**20:.1f} MiB were "
            f"in the kernel's socket buffers, which Redis does not count; with them added to the limits the model "
            f"cuts at {rows['cut_s (model + kernel buffers)']['model']:.2f} s.")
    a = stored["absence"]
    parts.append(
        f"- a subscriber away while {a['real']['pubsub']['published_while_away']} messages were published: real Pub/Sub "
        f"delivered it {a['real']['pubsub']['received_of_those']} of them (model: lost "
        f"{a['model']['pubsub']['lost_disconnected']} of {a['model']['pubsub']['disconnected_at_publish']}); a real "
        f"Stream with a consumer group replayed {a['real']['stream']['received_of_those']} and redelivered "
        f"{a['real']['stream']['redelivered_unacked']} read-but-unacknowledged entries (model log: lost "
        f"{a['model']['log']['lost_disconnected']} of {a['model']['log']['disconnected_at_publish']}).")
    return "\n".join(parts)
