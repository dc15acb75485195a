"""Can one client slow everyone else down? A heavy client sends a 2,000-point drawing ten times a
second (each request replacing its last, inside the default limits) while a light client asks for
100-point completions of a small drawing; the light client's completion time is compared with the
same requests on an idle server. Starts ``sketchrnn serve`` (default model):

    python bench/fairness.py [--seconds 10]
"""

import argparse
import asyncio
import statistics
import time

import numpy as np
from common import serving

from sketchrnn import remote

LIGHT = [[[100, 100], [160, 90], [230, 100], [260, 140], [230, 180], [150, 185], [100, 150], [100, 100]]]


def heavy_drawing() -> list:
    """2,000 mouse points of a wandering scribble: as costly a prefix as the limits allow."""
    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.normal(0, 6, (2000, 2)), 0) + 400
    return [walk[i : i + 100].round(1).tolist() for i in range(0, 2000, 100)]


async def light_client(url: str, seconds: float) -> list[float]:
    times = []
    async with remote.connect(url) as client:
        until, request = time.monotonic() + seconds, 0
        while time.monotonic() < until:
            request += 1
            sent = time.monotonic()
            await client.complete(LIGHT, seed=request, max_points=100, pen_temperature=0.25).collect()
            times.append(time.monotonic() - sent)
    return times


async def heavy_client(url: str, seconds: float, stats: dict) -> None:
    strokes = heavy_drawing()
    async with remote.connect(url) as client:

        async def drain(completion):
            try:
                await completion.collect()
            except remote.RemoteError as e:
                stats[e.code] = stats.get(e.code, 0) + 1

        readers = []
        until = time.monotonic() + seconds
        while time.monotonic() < until:  # each request replaces the last
            readers.append(asyncio.create_task(drain(await client.send_complete(strokes, n=9))))
            stats["sent"] = len(readers)
            await asyncio.sleep(0.1)
        await asyncio.gather(*readers)


async def measure(url: str, seconds: float) -> None:
    idle = await light_client(url, seconds)
    stats: dict = {}
    loaded, _ = await asyncio.gather(light_client(url, seconds), heavy_client(url, seconds, stats))
    ratio = statistics.median(loaded) / statistics.median(idle)
    print(f"light client, median completion: idle {statistics.median(idle) * 1e3:.0f} ms, beside the heavy "
          f"client {statistics.median(loaded) * 1e3:.0f} ms ({ratio:.2f}x); heavy client: {stats}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each phase runs (default: 10)")
    parser.add_argument("--port", type=int, default=8792, help="port for the server under test (default: 8792)")
    args = parser.parse_args()
    with serving(port=args.port):
        asyncio.run(measure(f"ws://127.0.0.1:{args.port}/ws", args.seconds))


if __name__ == "__main__":
    main()
