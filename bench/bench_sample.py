"""The sampling step against the hardware's floor, on one thread, in one run: ``Batch.step`` (the
step `sketchrnn sample/complete` and the server take) at batch 1 and 64 on Google's monkey
decoder (LSTM 512, 20 mixtures), beside the time one matrix-vector product over the same weights
takes (numpy's sgemv: the weights must be read once per step whatever the code does).

    python bench/bench_sample.py [--model PATH] [--rounds 5]
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy and torch load their thread pools

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sketchrnn.checkpoints import load_model  # noqa: E402
from sketchrnn.sampler import Batch, Request, Settings  # noqa: E402

MONKEY = "../shared/data/models/monkey.gen.json"


def per_call(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def weight_read_floor(model) -> float:
    """Seconds for y = W x over every weight a decoder step multiplies: the recurrent cell's
    [W_ih | W_hh] (4H x (5 + H)) and the output head ((3 + 6M) x H)."""
    cell = model.decoder.cell
    lstm = np.ascontiguousarray(torch.cat([cell.weight_ih, cell.weight_hh], 1).detach().numpy())
    head = np.ascontiguousarray(model.output.weight.detach().numpy())
    x, h = np.random.rand(lstm.shape[1]).astype(np.float32), np.random.rand(head.shape[1]).astype(np.float32)
    return per_call(lambda: (lstm @ x, head @ h), 2000)


def step_time(loaded, rows: int, steps: int) -> tuple[float, float]:
    """(seconds per step, points drawn per second) for ``rows`` streams, each its own request."""
    batch = Batch(loaded.model)
    batch.add([Request(np.zeros((0, 3), np.float32), loaded.scale_factor, 1, Settings(seed=i, max_points=10**6))
               for i in range(rows)])
    for _ in range(10):
        batch.step()
    drawn, start = 0, time.perf_counter()
    for _ in range(steps):
        drawn += int(batch.step().drawn.sum())
    seconds = time.perf_counter() - start
    return seconds / steps, drawn / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=MONKEY, help=f"a Sketch-RNN model file (default: {MONKEY})")
    parser.add_argument("--steps", type=int, default=300, help="timed steps per round (default: 300)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians reported (default: 5)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaded = load_model(args.model)
    results: dict[str, list[float]] = {"floor": [], "batch 1": [], "batch 64": [], "batch 64 points/s": []}
    with torch.no_grad():
        for _ in range(args.rounds):
            results["floor"].append(weight_read_floor(loaded.model))
            results["batch 1"].append(step_time(loaded, 1, args.steps)[0])
            seconds, points = step_time(loaded, 64, args.steps // 3)
            results["batch 64"].append(seconds)
            results["batch 64 points/s"].append(points)
    m = {name: statistics.median(v) for name, v in results.items()}
    print(f"{loaded.name} ({loaded.model.config.cell} {loaded.model.config.hidden}), torch {torch.__version__}, "
          f"1 thread, median of {args.rounds} rounds:")
    print(f"weight-read floor (numpy sgemv over the step's weights): {m['floor'] * 1e3:.3f} ms")
    print(f"Batch.step, batch 1:  {m['batch 1'] * 1e3:.3f} ms per point = {m['batch 1'] / m['floor']:.1f}x the floor")
    print(f"Batch.step, batch 64: {m['batch 64'] * 1e3:.3f} ms per step, {m['batch 64 points/s']:,.0f} points/s drawn "
          f"({64 / m['batch 64']:,.0f} row-steps/s)")


if __name__ == "__main__":
    main()
