"""Serving many models: how long ``sketchrnn serve --model DIR`` takes to answer /healthz (with
the typical extents learned, then kept in the cache), its memory per worker, and how long a
``guess`` takes through the WebSocket (the recognizer beside the models if there is one, else the
models' likelihoods).

    python bench/catalog.py --models DIR [--workers 1 2] [--guesses 100] [--cold]

DIR should hold a recognizer.pt built for its models (`sketchrnn recognizer build`; its accuracy
does not matter here, its size does), else the guesses are the models' likelihoods. ``--cold``
first starts with an empty cache, to time learning the models' extents.
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


def start(models: str, workers: int, guesses: int) -> str:
    began = time.monotonic()
    with serving("--model", models, "--workers", str(workers)) as (port, server):
        seconds = time.monotonic() - began
        served = health(port)["models"]
        mb = resident_mb(server.pid) / (workers + (workers > 1))  # the supervisor loads them too
        line = f"--workers {workers}: {len(served)} models answer /healthz after {seconds:.1f} s, {mb:.0f} MB a process"
        if guesses:
            took = asyncio.run(time_guesses(port, drawings(served), guesses))
            line += f"; guess p50 {percentile(took, 50):.1f} ms, p99 {percentile(took, 99):.1f} ms ({len(took)})"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="../shared/data/models", help="a folder of models (default: %(default)s)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="serve --workers (default: 1 2)")
    parser.add_argument("--guesses", type=int, default=100, help="guesses to time (default: 100)")
    parser.add_argument("--cold", action="store_true", help="first a start with an empty cache (extents learned)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["SKETCHRNN_CACHE"] = cache
        if args.cold:
            print("cold cache,", start(args.models, 1, 0))
        for workers in args.workers:
            if not (Path(cache) / "extents.json").exists():
                start(args.models, 1, 0)  # learn and keep the extents: what every later start reads
            print(start(args.models, workers, args.guesses))


if __name__ == "__main__":
    main()
