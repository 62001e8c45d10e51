"""``python -m sim live SCENARIO``: play a scenario in real time and serve its ``/metrics``.

The scenario's model runs in a :class:`sim.core.environment.RealtimeEnvironment` (one
simulated second takes ``1 / speed`` wall seconds) and its prometheus_client registry is served by prometheus_client's
own HTTP exporter on 127.0.0.1 only, so a real Prometheus server can scrape it. Ctrl-C stops it
cleanly. ``--out FILE`` writes the registry's final samples as JSON (what the simulator
recorded, to compare with what Prometheus stored); ``--linger S`` keeps serving the final
values S seconds after the end, so a last scrape sees them.

Live runs are not deterministic in wall time (scrapes fall where the clock says), but the model
is: the same seed gives the same simulated events.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from sim.core.errors import ParameterError

LIVE = ("monitoring-incident",)
"""Scenarios that can run live (their model is built by a ``build(ctx, params)`` function)."""

HELP = """Run a scenario in real time (time compressed by --speed) and serve its Prometheus metrics
on http://127.0.0.1:PORT/metrics until the scenario's horizon (then --linger seconds more).

  python -m sim live monitoring-incident --speed 10 --port 9100
  python -m sim live monitoring-incident --set clients=500 --set horizon=60 --speed 4 --out final.json

A Prometheus server can scrape it with a job whose target is 127.0.0.1:PORT."""


def add_parser(sub) -> None:
    """The ``live`` subcommand (the hook sim/cli.py calls)."""
    p = sub.add_parser("live", help="run a scenario in real time and serve its /metrics for a real Prometheus",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", metavar="SCENARIO", help=f"the scenario ({', '.join(LIVE)})")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second (default 1)")
    p.add_argument("--port", type=int, default=9100, help="port of /metrics on 127.0.0.1 (default 9100; 0: any free port)")
    p.add_argument("--seed", type=int, default=1, help="seed of the model (default 1)")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="a scenario parameter (repeatable), as in `run`")
    p.add_argument("--linger", type=float, default=0.0, help="seconds to keep serving after the end (default 0)")
    p.add_argument("--out", type=Path, default=None, help="write the final samples (JSON) to this file")


def main(args: argparse.Namespace) -> int:
    if args.name not in LIVE:
        raise ParameterError("SCENARIO", f"must be one of {', '.join(LIVE)} for live mode, got {args.name!r}")
    if not 0 < args.speed <= 1000:
        raise ParameterError("--speed", f"must be a number > 0 and <= 1000, got {args.speed}")
    if not 0 <= args.port <= 65535:
        raise ParameterError("--port", f"must be a port number from 0 to 65535, got {args.port}")
    if not 0 <= args.linger <= 3600:
        raise ParameterError("--linger", f"must be seconds from 0 to 3600, got {args.linger}")
    if args.seed < 0:
        raise ParameterError("--seed", f"must be an integer >= 0, got {args.seed}")
    settings: dict[str, str] = {}
    for pair in args.settings:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParameterError("--set", f"takes KEY=VALUE, got {pair!r}")
        settings[key.strip()] = value
    return serve(args.name, settings, seed=args.seed, speed=args.speed, port=args.port, linger=args.linger,
                 out=args.out)


def serve(name: str, settings: dict[str, str], *, seed: int, speed: float, port: int, linger: float = 0.0,
          out: Path | None = None) -> int:
    import prometheus_client

    from sim.core import Context
    from sim.core.environment import RealtimeEnvironment
    from sim.core.registry import get
    from sim.scenarios import q5_monitoring

    scenario = get(name)
    params = scenario.params_type.from_strings(settings)
    ctx = Context(seed)
    # the same model, on a wall clock: one simulated second takes 1/speed s (a slow step is caught
    # up rather than an error)
    env = RealtimeEnvironment(factor=1.0 / speed)
    ctx.env = env
    ctx.metrics.env = env
    q5_monitoring.build(ctx, params)
    server, thread = prometheus_client.start_http_server(port, addr="127.0.0.1", registry=ctx.metrics.registry)
    actual = server.server_address[1]
    print(f"serving http://127.0.0.1:{actual}/metrics: {name}, {params.horizon:g} simulated s at x{speed:g}",
          flush=True)
    status = 0
    try:
        env.run(until=params.horizon)
        print(f"simulated {env.now:g} s", flush=True)
        if out is not None:
            samples = [{"name": n, "labels": lab, "value": v} for n, _k, lab, v in ctx.metrics._rows()]
            out.write_text(json.dumps({"scenario": name, "seed": seed, "simulated_s": env.now, "samples": samples}))
        end = time.monotonic() + linger
        while time.monotonic() < end:
            time.sleep(min(0.2, max(0.0, end - time.monotonic())))
    except KeyboardInterrupt:
        print(f"interrupted at {env.now:.1f} simulated s", file=sys.stderr, flush=True)
        status = 130
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    return status
