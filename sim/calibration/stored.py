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
            f"{mean('load_average_1min'):.1f}." + _server(runs, s) + _bench(rows))
    return "\n".join(parts)


def _server(runs: list[dict], setup: dict) -> str:
    if "server_admitted_per_s_first_3s" not in runs[0]:
        return ""
    decided = sum(r["server_decisions_per_s_first_3s"] for r in runs) / len(runs)
    admitted = sum(r["server_admitted_per_s_first_3s"] for r in runs) / len(runs)
    return (f" In the 3 s after the restart the server received {decided:.0f} handshakes/s and admitted "
            f"{admitted:.0f}/s, against the {setup['admission_rate']:g}/s its bucket allows.")


def _bench(rows: dict) -> str:
    p50, p99 = rows["reconnect_p50_s"], rows["reconnect_p99_s"]
    if "model_bench" not in p50:
        return ""
    return (f" Given the bench's own attempt times (lateness after the backoff delay plus duration) as its "
            f"round trip, the model says p50 {p50['model_bench']:.2f} s ({p50['relative_difference_bench']:+.0%}) "
            f"and p99 {p99['model_bench']:.2f} s ({p99['relative_difference_bench']:+.0%}), KS "
            f"{rows['ks_distance'].get('ks_bench', float('nan')):.2f}.")


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
            f"cuts at {rows['cut_s (model + kernel buffers)']['model']:.2f} s. What Redis freed with the client "
            f"(omem {entry['omem_before_cut'] / 2**20:.2f} MiB, about {entry['omem_before_cut'] // s['message_bytes']} "
            f"messages) against `broker-fanout` run with the same rate and limits: "
            f"{entry['broker_fanout']['lost_in_broker_buffer']} messages lost in the broker's buffer.")
    a = stored["absence"]
    parts.append(
        f"- a subscriber away while {a['real']['pubsub']['published_while_away']} messages were published: real Pub/Sub "
        f"delivered it {a['real']['pubsub']['received_of_those']} of them (model: lost "
        f"{a['model']['pubsub']['lost_disconnected']} of {a['model']['pubsub']['disconnected_at_publish']}); a real "
        f"Stream with a consumer group replayed {a['real']['stream']['received_of_those']} and redelivered "
        f"{a['real']['stream']['redelivered_unacked']} read-but-unacknowledged entries (model log: lost "
        f"{a['model']['log']['lost_disconnected']} of {a['model']['log']['disconnected_at_publish']}).")
    return "\n".join(parts)
