"""Scale of the connection primitives: 100,000 clients through the network to a few servers.

Clients open their connections over ``--spread`` seconds; servers admit ``--admission-rate``
handshakes per second each, so many are refused and retry after a random delay. With
``--heartbeat`` every client pings its server. Prints wall time, simulated events per second
and peak memory (ru_maxrss) per client.

    python benchmarks/bench_connections.py [--clients 100000] [--servers 4] [--heartbeat 25]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

from sim.components.client import Client
from sim.components.server import Server, ServerSpec
from sim.core import Context, LinkSpec, Network, TruncatedNormal, Uniform


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--spread", type=float, default=10.0, help="seconds over which clients start")
    parser.add_argument("--admission-rate", type=float, default=1_000.0, help="handshakes/s per server")
    parser.add_argument("--heartbeat", type=float, default=None, help="heartbeat interval, s (default: none)")
    parser.add_argument("--horizon", type=float, default=60.0, help="simulated seconds")
    args = parser.parse_args(argv)

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    ctx = Context(1)
    env = ctx.env
    net = Network(ctx, LinkSpec(latency=TruncatedNormal(0.02, 0.005)))
    spec = ServerSpec(admission_rate=args.admission_rate, admission_burst=100, memory_per_connection_bytes=50_000)
    servers = [Server(ctx, f"server-{i}", spec, net) for i in range(args.servers)]
    start = Uniform(0, args.spread).bind(ctx.rng("start"))
    retry = Uniform(0.5, 2.0).bind(ctx.rng("retry"))
    connected = 0

    def dial(client: Client) -> None:
        client.connect().callbacks.append(lambda ev: settled(client, ev.value))

    def settled(client: Client, outcome: str) -> None:
        nonlocal connected
        if outcome == "accepted":
            connected += 1
        else:
            env.timeout(retry.sample()).callbacks.append(lambda _: dial(client))

    for i in range(args.clients):
        client = Client(ctx, f"c{i}", net, servers[i % args.servers].name, heartbeat_interval=args.heartbeat)
        env.timeout(start.sample()).callbacks.append(lambda _, c=client: dial(c))
    setup = time.perf_counter() - started
    env.run(until=args.horizon)
    wall = time.perf_counter() - started
    events = net.sent + net.duplicated + 2 * args.clients  # deliveries + start and connect timers, at least
    rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) * 1024
    refused = sum(v.value for k, v in ctx.metrics["server_handshakes_total"].children().items() if k[1] != "accepted")

    print(f"{args.clients:,} clients, {args.servers} servers, {args.horizon:g} s simulated"
          f"{', heartbeat every %g s' % args.heartbeat if args.heartbeat else ''}")
    print(f"  connected          {connected:,} ({refused:,.0f} handshakes refused and retried)")
    print(f"  messages           {net.sent:,} sent, {net.delivered:,} delivered")
    print(f"  wall time          {wall:.2f} s (set-up {setup:.2f} s), >= {events / wall:,.0f} events/s")
    print(f"  peak memory growth {rss / 2**20:.0f} MiB, {rss / args.clients:,.0f} B per client")
    ok = connected == args.clients
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
