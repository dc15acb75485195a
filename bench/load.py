"""Load on the streaming server: N concurrent clients on loopback, each sending completion
requests back to back as the browser client sends them (no seed, pen temperature 1); total
points/s, time to first point, gap between point messages.

Starts ``sketchrnn serve`` (default model) in its own process, then for each N runs the clients
for a fixed time in this one:

    python bench/load.py [--clients 1 10 50 100 200] [--seconds 10] [--workers 2]

After each N it reports the server's resident memory (all its processes), to show it flat.
"""

import argparse
import asyncio
import time

from common import percentile, resident_mb, serving

from sketchrnn import remote

DRAWING = [[[100, 100], [160, 90], [230, 100], [260, 140], [230, 180], [150, 185], [100, 150], [100, 100]]]


async def client(url: str, until: float, stats: dict, seed: int | None, extra: dict) -> None:
    async with remote.connect(url) as server:
        request = 0
        while time.monotonic() < until:
            request += 1
            sent = time.monotonic()
            seeded = {} if seed is None else {"seed": seed * 100_000 + request}
            first = last = None
            try:
                async for _ in server.complete(DRAWING, temperature=0.25, **seeded, **extra):
                    now = time.monotonic()
                    stats["points"] += 1
                    if first is None:
                        first = now
                        stats["first"].append(now - sent)
                    elif now > last:  # a new message (points of one message arrive together)
                        stats["gaps"].append(now - last)
                    last = now
                stats["requests"] += 1
            except remote.RemoteError:
                stats["errors"] += 1


async def measure(url: str, clients: int, seconds: float, extra: dict, seeded: bool) -> dict:
    stats = {"points": 0, "requests": 0, "errors": 0, "first": [], "gaps": []}
    start = time.monotonic()
    until = start + seconds
    await asyncio.gather(*(client(url, until, stats, i if seeded else None, extra) for i in range(clients)))
    elapsed = time.monotonic() - start
    return {"clients": clients, "points_per_s": stats["points"] / elapsed, "requests": stats["requests"],
            "errors": stats["errors"], "first_p50_ms": percentile(stats["first"], 50) * 1e3,
            "first_p99_ms": percentile(stats["first"], 99) * 1e3, "gap_p99_ms": percentile(stats["gaps"], 99) * 1e3}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 10, 50, 100, 200], help="values of N")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each N runs (default: 10)")
    parser.add_argument("--port", type=int, default=8790, help="port for the server under test (default: 8790)")
    parser.add_argument("--pen-temperature", type=float, default=1.0,
                        help="send this pen_temperature (default: 1, the browser client's; 0: none, the server's "
                             "0.5 + 0.5 x temperature)")
    parser.add_argument("--seeded", action="store_true",
                        help="send a seed with every request (the server then pads its batch for exact "
                             "repeatability; the browser sends none)")
    parser.add_argument("--workers", type=int, help="serve --workers for the server under test (default: serve's)")
    args = parser.parse_args()
    extra = {"pen_temperature": args.pen_temperature} if args.pen_temperature else {}
    flags = ["--rate", "1000"] + ([] if args.workers is None else ["--workers", str(args.workers)])
    with serving(*flags, port=args.port) as (_, server):
        url = f"ws://127.0.0.1:{args.port}/ws"
        print(f"server memory at start: {resident_mb(server.pid):.0f} MB")
        print("| clients | points/s | requests | errors | first point p50 (ms) | first point p99 (ms) | gap p99 (ms) "
              "| server MB after |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        results = []
        for n in args.clients:
            r = asyncio.run(measure(url, n, args.seconds, extra, args.seeded))
            results.append(r)
            print(f"| {n} | {r['points_per_s']:.0f} | {r['requests']} | {r['errors']} | {r['first_p50_ms']:.1f} | "
                  f"{r['first_p99_ms']:.1f} | {r['gap_p99_ms']:.1f} | {resident_mb(server.pid):.0f} |", flush=True)
        single = next((r for r in results if r["clients"] == 1), None)
        if single:
            for r in results:
                ratio = r["points_per_s"] / single["points_per_s"]
                print(f"throughput at N={r['clients']} / one stream at a time: {ratio:.1f}x")


if __name__ == "__main__":
    main()
