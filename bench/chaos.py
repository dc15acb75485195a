"""Many clients doing random things at once: connecting, asking, cancelling, drawing again,
closing, dropping the TCP connection mid-stream. Meanwhile a new person arrives once a second and
asks for a 30-point ending: served (first point within 1 s, all 30 within 1.5 s), refused with
``busy`` (within 300 ms), or neither. Afterwards nothing may be left behind (no connection, no
stream, memory near where it was after a warm-up round), the server's log holds no traceback, and
a seeded request draws the same points as before the load. Starts ``sketchrnn serve``:

    python bench/chaos.py [--clients 200] [--seconds 20] [--workers 2]
"""

import argparse
import asyncio
import multiprocessing
import tempfile
import time

import numpy as np
from common import resident_mb, serving, settle
from websockets.exceptions import ConnectionClosed

from sketchrnn import remote

STROKES = [[[100, 100], [160, 90], [230, 100], [260, 140]], [[150, 120], [152, 160]]]
SEEDED = {"n": 2, "max_points": 60, "seed": 11}


async def client(url: str, until: float, seed: int, counts: dict) -> None:
    rng = np.random.default_rng(seed)
    while time.monotonic() < until:
        try:
            async with remote.connect(url) as server:
                for request in range(int(rng.integers(1, 8))):
                    completion = await server.send_complete(
                        STROKES, id=str(request), n=int(rng.integers(1, 10)), max_points=int(rng.integers(1, 250)),
                        seed=int(rng.integers(0, 1 << 30)))
                    action = str(rng.choice(["read", "cancel", "again", "abort", "close"], p=[0.4, 0.2, 0.2, 0.1, 0.1]))
                    counts[action] = counts.get(action, 0) + 1
                    await asyncio.sleep(float(rng.uniform(0, 0.2)))
                    if action == "cancel":
                        await server.cancel(completion.id)
                    elif action == "abort":
                        server.ws.transport.abort()  # the TCP connection dropped, no close frame
                        break
                    elif action == "close":
                        break
                    elif action == "read":  # to the end of this request (busy, say, ends it too)
                        try:
                            await completion.collect(30)
                        except remote.RemoteError as e:
                            counts[e.code] = counts.get(e.code, 0) + 1
        except (ConnectionClosed, ConnectionError, OSError, TimeoutError) as e:
            counts[type(e).__name__] = counts.get(type(e).__name__, 0) + 1


async def newcomer(url: str) -> str:
    """A person's first request: "served", "busy" (answered so within 300 ms), or what else happened."""
    sent = time.monotonic()
    first = None
    try:
        async with remote.connect(url) as server:
            sent = time.monotonic()
            async for _ in server.complete(STROKES, max_points=30, temperature=0.25):
                first = first or time.monotonic() - sent
        total = time.monotonic() - sent
        return "served" if first is not None and first <= 1.0 and total <= 1.5 else f"slow ({first:.2f}/{total:.2f} s)"
    except remote.RemoteError as e:
        late = time.monotonic() - sent > 0.3
        return f"{e.code}{' late' if late else ''}"
    except (ConnectionClosed, ConnectionError, OSError, TimeoutError) as e:
        return type(e).__name__


async def crowd(url: str, clients: int, seconds: float) -> dict:
    counts: dict = {}
    until = time.monotonic() + seconds
    await asyncio.gather(*(client(url, until, i, counts) for i in range(clients)))
    return counts


def crowd_process(url: str, clients: int, seconds: float, results) -> None:
    results.put(asyncio.run(crowd(url, clients, seconds)))


async def round_of(url: str, clients: int, seconds: float) -> tuple[dict, dict]:
    """The crowd in a process of its own, as people's browsers are: a newcomer sharing the
    crowd's event loop would time that loop's backlog (~100 ms at 200 clients), not the server."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    crowd_running = context.Process(target=crowd_process, args=(url, clients, seconds, results))
    crowd_running.start()
    until = time.monotonic() + seconds
    arrivals = []
    await asyncio.sleep(1)  # the crowd in
    while time.monotonic() < until:
        arrivals.append(asyncio.create_task(newcomer(url)))
        await asyncio.sleep(1)
    counts = await asyncio.to_thread(results.get)
    crowd_running.join()
    outcomes: dict = {}
    for outcome in await asyncio.gather(*arrivals):
        key = outcome.split(" (")[0]
        outcomes[key] = outcomes.get(key, 0) + 1
        if key == "slow":  # first point / all 30, seconds
            outcomes.setdefault("slow timings", []).append(outcome.split(" (")[1].rstrip(" s)"))
    return counts, outcomes


async def seeded(url: str) -> dict:
    async with remote.connect(url) as server:
        return await server.complete(STROKES, **SEEDED).collect(30)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200, help="clients at once (default: 200)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the chaos round (default: 20)")
    parser.add_argument("--workers", type=int, default=2, help="serve --workers (default: 2)")
    parser.add_argument("--port", type=int, default=8793, help="port for the server under test (default: 8793)")
    parser.add_argument("serve_flags", nargs="*", help="more flags for sketchrnn serve (after --)")
    args = parser.parse_args()
    url = f"ws://127.0.0.1:{args.port}/ws"
    with tempfile.TemporaryFile("w+") as log, serving("--rate", "100", "--workers", str(args.workers),
                                                      *args.serve_flags, port=args.port, log=log) as (port, server):
        before = asyncio.run(seeded(url))
        asyncio.run(round_of(url, args.clients, 5))  # warm-up: allocator pools, thread stacks
        warm = settle(port), resident_mb(server.pid)
        counts, outcomes = asyncio.run(round_of(url, args.clients, args.seconds))
        after = settle(port), resident_mb(server.pid)
        same = asyncio.run(seeded(url)) == before
        log.seek(0)
        tracebacks = log.read().count("Traceback")
    arrived = sum(v for k, v in outcomes.items() if k != "slow timings")
    good = outcomes.get("served", 0) + outcomes.get("busy", 0)
    print(f"{args.clients} clients, {args.seconds:g} s, serve --workers {args.workers}: {counts}")
    print(f"newcomers, one a second: {outcomes}: served or busy in time {good}/{arrived} ({good / arrived:.0%}), "
          f"served {outcomes.get('served', 0) / arrived:.0%}")
    print(f"after warm-up: {warm[0]}, RSS {warm[1]:.0f} MB")
    print(f"after chaos:   {after[0]}, RSS {after[1]:.0f} MB ({after[1] / warm[1] - 1:+.1%})")
    print(f"tracebacks in the server's log: {tracebacks}; seeded request the same as before the load: {same}")


if __name__ == "__main__":
    main()
