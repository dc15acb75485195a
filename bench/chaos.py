"""Many clients doing random things at once: connecting, asking, cancelling, drawing again,
closing, dropping the TCP connection mid-stream. Afterwards nothing may be left behind: no
connection, no stream, and the server's memory back near where it was after a warm-up round.
Starts ``sketchrnn serve`` (default model):

    python bench/chaos.py [--clients 200] [--seconds 20]
"""

import argparse
import asyncio
import json
import time
from pathlib import Path

import numpy as np
from serving import health, serving
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

STROKES = [[[100, 100], [160, 90], [230, 100], [260, 140]], [[150, 120], [152, 160]]]


def rss_mb(pid: int) -> float:
    fields = Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()
    return int(fields[0]) / 1024


async def client(url: str, until: float, seed: int, counts: dict) -> None:
    rng = np.random.default_rng(seed)
    while time.monotonic() < until:
        try:
            async with connect(url, max_size=None) as ws:
                json.loads(await ws.recv())
                for request in range(int(rng.integers(1, 8))):
                    await ws.send(json.dumps({"type": "complete", "id": str(request), "strokes": STROKES,
                                              "n": int(rng.integers(1, 10)), "max_points": int(rng.integers(1, 250)),
                                              "seed": int(rng.integers(0, 1 << 30))}))
                    action = str(rng.choice(["read", "cancel", "again", "abort", "close"], p=[0.4, 0.2, 0.2, 0.1, 0.1]))
                    counts[action] = counts.get(action, 0) + 1
                    await asyncio.sleep(float(rng.uniform(0, 0.2)))
                    if action == "cancel":
                        await ws.send(json.dumps({"type": "cancel", "id": str(request)}))
                    elif action == "abort":
                        ws.transport.abort()  # the TCP connection dropped, no close frame
                        break
                    elif action == "close":
                        break
                    elif action == "read":  # to the end of this request (an error, overloaded say, ends it too)
                        while json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] not in ("done", "error"):
                            pass
        except (ConnectionClosed, OSError, TimeoutError) as e:
            counts[type(e).__name__] = counts.get(type(e).__name__, 0) + 1


async def round_of(url: str, clients: int, seconds: float) -> dict:
    counts: dict = {}
    until = time.monotonic() + seconds
    await asyncio.gather(*(client(url, until, i, counts) for i in range(clients)))
    return counts


def settle(port: int) -> dict:
    for _ in range(100):
        state = health(port)
        if state["connections"] == 0 and state["streams"] == 0:
            break
        time.sleep(0.1)
    return state


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200, help="clients at once (default: 200)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the chaos round (default: 20)")
    parser.add_argument("--port", type=int, default=8793, help="port for the server under test (default: 8793)")
    args = parser.parse_args()
    url = f"ws://127.0.0.1:{args.port}/ws"
    with serving("--rate", "100", port=args.port) as (port, server):
        asyncio.run(round_of(url, args.clients, 5))  # warm-up: allocator pools, thread stacks
        warm = settle(port), rss_mb(server.pid)
        counts = asyncio.run(round_of(url, args.clients, args.seconds))
        after = settle(port), rss_mb(server.pid)
    print(f"{args.clients} clients, {args.seconds:g} s: {counts}")
    print(f"after warm-up: {warm[0]}, RSS {warm[1]:.0f} MB")
    print(f"after chaos:   {after[0]}, RSS {after[1]:.0f} MB ({after[1] / warm[1] - 1:+.1%})")


if __name__ == "__main__":
    main()
