"""One sampling step for one stream (batch 1, one torch thread), as `sketchrnn sample` takes it:
``Batch.step`` on Google's monkey decoder (LSTM 512, 20 mixtures).

    python bench/bench_step.py [--model PATH]
"""

import argparse
import time

import numpy as np
import torch

from sketchrnn.checkpoints import load_model
from sketchrnn.sampler import Batch, Request, Settings

MONKEY = "../shared/data/models/monkey.gen.json"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=MONKEY, help=f"model file (default: {MONKEY})")
    parser.add_argument("--steps", type=int, default=300, help="timed steps (default: 300)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaded = load_model(args.model)
    batch = Batch(loaded.model)
    batch.add([Request(np.zeros((0, 3), np.float32), loaded.scale_factor, 1, Settings(seed=0, max_points=10**6))])
    for _ in range(20):
        batch.step()
    start = time.perf_counter()
    for _ in range(args.steps):
        batch.step()
    print(f"{(time.perf_counter() - start) / args.steps * 1e3:.3f} ms per step, batch 1")


if __name__ == "__main__":
    main()
