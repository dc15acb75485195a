"""Stroke data speed: loading a dataset with its scale factor, assembling augmented batches, and
the padding that random and length-bucketed batches carry over one epoch.

    python bench/bench_data.py [--data ../shared/data/sketches/aaron_sheep.npz]
"""

import argparse
import statistics
import time
from pathlib import Path

from sketchrnn.data import Batcher, load_sketches, padding_ratio, scale_factor

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "sketches" / "aaron_sheep.npz"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", default=[str(DEFAULT)], help="stroke files to load")
    parser.add_argument("--batch", type=int, default=100, help="drawings per batch (default: 100)")
    args = parser.parse_args()

    loads = []
    for _ in range(5):
        start = time.perf_counter()
        data = load_sketches(args.data)
        scale = scale_factor(data.splits["train"].drawings)
        loads.append(time.perf_counter() - start)
    train = data.splits["train"]
    print(f"load {', '.join(Path(p).name for p in args.data)} ({len(train)} train drawings) and compute "
          f"the scale factor ({scale:.3f}): median {statistics.median(loads) * 1e3:.0f} ms of 5")

    batcher = Batcher(train, scale, args.batch, seed=0)
    steps = range(200)
    start = time.perf_counter()
    for step in steps:
        batcher.batch(step)
    per_batch = (time.perf_counter() - start) / len(steps)
    print(f"one augmented, bucketed batch of {args.batch} (scale +-15%, point dropping 0.1, stroke-5): "
          f"{per_batch * 1e3:.2f} ms (mean of {len(steps)})")

    for bucket in (False, True):
        b = Batcher(train, scale, args.batch, bucket=bucket, augment=False, seed=0)
        ratio = padding_ratio(b.batch(s) for s in range(b.batches_per_epoch))
        print(f"{'bucketed' if bucket else 'random  '} batches: {ratio:.3f} padded steps per real step over one epoch")


if __name__ == "__main__":
    main()
