"""Serving many models: how long ``sketchrnn serve --model DIR`` takes to answer /healthz (with
the typical extents learned, then kept in the cache), its memory per worker, and how long a
``guess`` takes through the WebSocket (the recognizer beside the models if there is one, else the
models' likelihoods).

    python bench/catalog.py --models ../shared/data/models [--workers 1] [--guesses 200]
"""

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import health, percentile, resident_mb, serving  # noqa: E402

from sketchrnn import remote  # noqa: E402
from sketchrnn.catalog import class_name  # noqa: E402

SIMPLIFIED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sketches" / "quickdraw" / "simplified"


def drawings(names: list[str], per_class: int = 12) -> list[list]:
    """People's drawings of the served classes (the last of each shared file: never trained on)."""
    found = []
    for path in sorted(SIMPLIFIED.glob("*.ndjson")):
        if class_name(path.stem) in names:
            for line in path.read_text().splitlines()[-per_class:]:
                found.append([[list(p) for p in zip(xs, ys)] for xs, ys in json.loads(line)["drawing"]])
    return found


async def time_guesses(port: int, strokes: list, count: int) -> list[float]:
    took = []
    async with remote.connect(f"ws://127.0.0.1:{port}/ws") as client:
        for i in range(count):
            start = time.perf_counter()
            await client.guess(strokes[i % len(strokes)])
            took.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.1)  # a page asks about three times a second: stay under the rate limit
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="../shared/data/models", help="a folder of models (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="serve --workers (default: 1)")
    parser.add_argument("--guesses", type=int, default=200, help="guesses to time (default: 200)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["SKETCHRNN_CACHE"] = cache  # a fresh cache: the first start learns the extents
        for start in ("first start (extents learned)", "second start (extents cached)"):
            began = time.monotonic()
            with serving("--model", args.models, "--workers", str(args.workers)) as (port, server):
                seconds = time.monotonic() - began
                served = health(port)["models"]
                mb = resident_mb(server.pid) / (args.workers + (args.workers > 1))
                print(f"{start}: {len(served)} models answer /healthz after {seconds:.1f} s; "
                      f"{mb:.0f} MB per process")
                if start.startswith("second"):
                    took = asyncio.run(time_guesses(port, drawings(served), args.guesses))
                    print(f"guess through the WebSocket over {len(served)} models: p50 {percentile(took, 50):.1f} ms, "
                          f"p99 {percentile(took, 99):.1f} ms ({len(took)} guesses)")


if __name__ == "__main__":
    main()
