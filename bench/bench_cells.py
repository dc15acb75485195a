"""Speed of each recurrent cell against torch.nn.LSTM, measured in the same run.

Training step = forward + backward over a whole padded-free batch; stepping = one step with no
gradient (what a sampler does per point). Prints a Markdown table for BENCHMARKS.md.

    python bench/bench_cells.py [--repeats 5]
"""

import argparse
import statistics
import time

import torch
from torch import nn

from sketchrnn.core import RecurrentLayer, make_cell

SHAPES = {  # name: (batch, steps, input, hidden)
    "sketch": (100, 200, 5, 512),  # Sketch-RNN decoder: batch 100, up to 200 points, stroke-5 in
    "text": (32, 100, 128, 512),  # char model: batch 32, BPTT 100, a 128-dim embedding in
}
VARIANTS = [  # label, cell name, recurrent dropout
    ("lstm (fused kernel)", "lstm", 0.0),
    ("lstm + dropout 0.1 (loop)", "lstm", 0.1),
    ("rnn (fused kernel)", "rnn", 0.0),
    ("gru (fused kernel)", "gru", 0.0),
    ("layer_norm", "layer_norm", 0.0),
    ("layer_norm + dropout 0.1", "layer_norm", 0.1),
    ("hyper", "hyper", 0.0),
]


def median_seconds(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_step_fn(module, x):
    def run():
        out = module(x)[0]
        out.sum().backward()

    return run


def step_fn(cell, batch, hidden, steps=200):
    x = torch.randn(batch, hidden)
    state = cell.initial_state(batch)

    def run():
        nonlocal state
        with torch.no_grad():
            for _ in range(steps):
                _, state = cell(x, state)

    return run, steps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per measurement (median)")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")

    rows = []
    for shape, (batch, steps, inp, hidden) in SHAPES.items():
        x = torch.randn(steps, batch, inp)
        base = median_seconds(train_step_fn(nn.LSTM(inp, hidden), x), args.repeats)
        rows.append((f"train {shape} B{batch} T{steps} H{hidden}", "torch.nn.LSTM", base * 1e3, 1.0))
        for label, name, dropout in VARIANTS:
            layer = RecurrentLayer(make_cell(name, inp, hidden, dropout)).train()
            t = median_seconds(train_step_fn(layer, x), args.repeats)
            rows.append(("", label, t * 1e3, t / base))

    for batch in (1, 64):
        hidden = 512
        lstm = nn.LSTM(hidden, hidden)
        x1 = torch.randn(1, batch, hidden)
        state = None

        def torch_step():
            nonlocal state
            with torch.no_grad():
                for _ in range(200):
                    _, state = lstm(x1, state)

        base = median_seconds(torch_step, args.repeats) / 200
        rows.append((f"one step B{batch} H{hidden}", "torch.nn.LSTM (T=1 call)", base * 1e3, 1.0))
        for label, name, _ in VARIANTS:
            if "dropout" in label:
                continue  # dropout is off when sampling
            cell = make_cell(name, hidden, hidden).eval()
            fn, n = step_fn(cell, batch, hidden)
            t = median_seconds(fn, args.repeats) / n
            rows.append(("", label.replace(" (fused kernel)", " cell step"), t * 1e3, t / base))

    print("| shape | implementation | ms | × torch.nn.LSTM |")
    print("|---|---|---:|---:|")
    for shape, label, ms, ratio in rows:
        print(f"| {shape} | {label} | {ms:.3f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
