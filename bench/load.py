"""Load on the streaming server: N concurrent clients on loopback, each sending completion
requests back to back as the browser client sends them (no seed, pen temperature 1; told
"busy", it asks again after the retry_after the server gives, as the page does); total
points/s, time to first point, gap between point messages.

Starts ``sketchrnn serve`` (default model, or ``--model``) in its own process, then for each N
runs the clients for a fixed time in this one:

    python bench/load.py [--clients 1 10 50 100 200] [--seconds 10] [--workers 2]
    python bench/load.py --model ../shared/data/models --clients 100 --seconds 20 --workers 2

After each N it reports the server's resident memory (all its processes), to show it flat. Where
the server has several models, each N runs twice in the same server: every client on the first
model, then client i on model i mod M (spread), and the ratio of the two rates is printed.
"""

import argparse
import asyncio
import time

from common import percentile, resident_mb, serving

from sketchrnn import remote

DRAWING = [[[100, 100], [160, 90], [230, 100], [260, 140], [230, 180], [150, 185], [100, 150], [100, 100]]]


async def client(url: str, until: float, stats: dict, seed: int | None, extra: dict) -> None:
    """One person: ``extra`` holds the request's other fields (model, pen_temperature)."""
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
            except remote.RemoteError as e:
                stats["errors"] += 1
                if e.retry_after:  # "busy": wait as the browser client does, not hammer
                    await asyncio.sleep(min(e.retry_after, max(0.0, until - time.monotonic())))


async def measure(url: str, clients: int, seconds: float, extra: dict, seeded: bool, models: list[str]) -> dict:
    """``clients`` clients for ``seconds``, client i asking model i mod len(models)."""
    stats = {"points": 0, "requests": 0, "errors": 0, "first": [], "gaps": []}
    start = time.monotonic()
    until = start + seconds
    await asyncio.gather(*(client(url, until, stats, i if seeded else None,
                                  {**extra, "model": models[i % len(models)]}) for i in range(clients)))
    elapsed = time.monotonic() - start
    return {"clients": clients, "points_per_s": stats["points"] / elapsed, "requests": stats["requests"],
            "errors": stats["errors"], "first_p50_ms": percentile(stats["first"], 50) * 1e3,
            "first_p99_ms": percentile(stats["first"], 99) * 1e3, "gap_p99_ms": percentile(stats["gaps"], 99) * 1e3}


async def served_models(url: str) -> list[dict]:
    async with remote.connect(url) as server:
        return server.hello["models"]


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
    parser.add_argument("--model", help="serve --model: a model file or a folder of them (default: serve's)")
    parser.add_argument("serve_flags", nargs="*", help="more flags for sketchrnn serve (after --)")
    args = parser.parse_args()
    extra = {"pen_temperature": args.pen_temperature} if args.pen_temperature else {}
    flags = ["--rate", "1000"] + ([] if args.workers is None else ["--workers", str(args.workers)])
    flags += ([] if args.model is None else ["--model", args.model]) + args.serve_flags
    with serving(*flags, port=args.port) as (_, server):
        url = f"ws://127.0.0.1:{args.port}/ws"
        models = [m["name"] for m in asyncio.run(served_models(url))]
        print(f"server memory at start: {resident_mb(server.pid):.0f} MB; {len(models)} models")
        print("| clients | models asked | points/s | requests | errors | first point p50 (ms) | first point p99 (ms) "
              "| gap p99 (ms) | server MB after |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        results = []
        for n in args.clients:
            for asked in [models[:1], models] if len(models) > 1 else [models]:
                r = asyncio.run(measure(url, n, args.seconds, extra, args.seeded, asked))
                print(f"| {n} | {min(n, len(asked))} | {r['points_per_s']:.0f} | {r['requests']} | {r['errors']} | "
                      f"{r['first_p50_ms']:.1f} | {r['first_p99_ms']:.1f} | {r['gap_p99_ms']:.1f} | "
                      f"{resident_mb(server.pid):.0f} |", flush=True)
                results.append(r)
            if len(models) > 1:
                print(f"spread over {min(n, len(models))} models / one model, {n} clients: "
                      f"{results[-1]['points_per_s'] / results[-2]['points_per_s']:.2f}x")
        single = next((r for r in results if r["clients"] == 1), None)
        if single:
            for r in results:
                ratio = r["points_per_s"] / single["points_per_s"]
                print(f"throughput at N={r['clients']} / one stream at a time: {ratio:.1f}x")


if __name__ == "__main__":
    main()
