"""Token holders under a siege of strangers: ``sketchrnn serve --token T --max-connections 3``
while strangers keep connections open without authenticating (each reconnecting the moment it is
closed). Once a second a person with the token connects, both documented ways in turn (``?token=``
in the URL, then a first ``auth`` message), and asks for a 10-point ending: served when all its
points arrive within 5 s. Starts ``sketchrnn serve``:

    python bench/siege.py [--strangers 3 20] [--seconds 20]
"""

import argparse
import asyncio
import contextlib
import time

from common import serving
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from sketchrnn import remote

TOKEN = "siege-token"
STROKES = [[[100, 100], [160, 90], [230, 100], [260, 140]]]


async def stranger(url: str, until: float, counts: dict) -> None:
    """Hold a connection open and say nothing; when the server closes it, come straight back."""
    while time.monotonic() < until:
        try:
            async with ws_connect(url) as ws:
                counts["held"] += 1
                with contextlib.suppress(ConnectionClosed):
                    await asyncio.wait_for(ws.wait_closed(), until - time.monotonic())
        except (TimeoutError, OSError, InvalidStatus):
            await asyncio.sleep(0)  # refused at the door: try again at once
        except ConnectionClosed:
            pass


async def token_holder(url: str, auth: str) -> str:
    try:
        async with remote.connect(url, TOKEN, auth=auth, open_timeout=5) as server:
            result = await server.complete(STROKES, max_points=10).collect(5)
        return "served" if result[0] else "no points"
    except remote.RemoteError as e:
        return e.code
    except InvalidStatus as e:
        return f"HTTP {e.response.status_code}"
    except (ConnectionClosed, OSError, TimeoutError) as e:
        return type(e).__name__


async def siege(url: str, strangers: int, seconds: float) -> dict[str, dict[str, int]]:
    counts = {"held": 0}
    until = time.monotonic() + seconds
    crowd = asyncio.gather(*(stranger(url, until, counts) for _ in range(strangers)))
    await asyncio.sleep(1)  # the strangers in
    tries = []
    while time.monotonic() < until - 1:
        for auth in ("url", "message"):
            tries.append((auth, asyncio.create_task(token_holder(url, auth))))
        await asyncio.sleep(1)
    await crowd
    outcomes: dict[str, dict[str, int]] = {"url": {}, "message": {}}
    for auth, task in tries:
        outcome = await task
        outcomes[auth][outcome] = outcomes[auth].get(outcome, 0) + 1
    outcomes["strangers' connections"] = counts
    return outcomes


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strangers", type=int, nargs="+", default=[3, 20],
                        help="strangers holding connections, one run each (default: 3 20)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each siege (default: 20)")
    parser.add_argument("--max-connections", type=int, default=3, help="serve --max-connections (default: 3)")
    args = parser.parse_args()
    with serving("--max-connections", str(args.max_connections), "--workers", "1", token=TOKEN) as (port, _):
        url = f"ws://127.0.0.1:{port}/ws"
        print("| strangers | token in the URL: served | auth message: served | outcomes |")
        print("|---:|---:|---:|---|")
        for strangers in args.strangers:
            outcomes = asyncio.run(siege(url, strangers, args.seconds))
            served = {auth: outcomes[auth].get("served", 0) / max(1, sum(outcomes[auth].values()))
                      for auth in ("url", "message")}
            print(f"| {strangers} | {served['url']:.0%} | {served['message']:.0%} | {outcomes} |", flush=True)


if __name__ == "__main__":
    main()
