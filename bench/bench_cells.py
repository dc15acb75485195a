"""Speed of each recurrent cell against torch.nn.LSTM, measured in the same run.

Training step = forward + backward over a whole padded-free batch; stepping = one step with no
gradient (what a sampler does per point). Prints a Markdown table for BENCHMARKS.md.

    python bench/bench_cells.py [--repeats 7] [--compile] [--parts sketch text steps]

Each part can run in a process of its own (``--parts text``): what ran before in the process
moves the ratios. The layer-norm cell's training step at the text shape (session 8): 1.25-1.29x
``nn.LSTM`` among every variant (``--parts text``), 1.49x after the sketch shape too (the
default), where ``nn.LSTM`` itself runs 127 ms against 146-149 in a fresh process.
"""

import argparse
import statistics
import time

import torch
from torch import nn

from sketchrnn.core import RecurrentLayer, compile_steps, make_cell

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
COMPILED = [("lstm + dropout 0.1", "lstm", 0.1), ("layer_norm", "layer_norm", 0.0),  # with --compile
            ("layer_norm + dropout 0.1", "layer_norm", 0.1), ("hyper", "hyper", 0.0)]


def interleaved(fns: dict, repeats: int) -> dict:
    """Time each fn once per round, all fns in every round, after one warm-up round; return
    {name: (median seconds, median of per-round ratios to the first fn)}. Interleaving makes
    the ratios robust to this machine's speed drifting between rounds."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    base = times[next(iter(fns))]
    return {name: (statistics.median(t), statistics.median(a / b for a, b in zip(t, base)))
            for name, t in times.items()}


def train_step_fn(module, x):
    def run():
        out = module(x)[0]
        out.sum().backward()

    return run


def stepping_fn(module, batch, inp, steps):
    """``steps`` single steps, no gradient, state carried: what a sampler does per point."""
    x = torch.randn(1, batch, inp)
    if isinstance(module, nn.LSTM):
        def one(state):
            return module(x, state)[1]
    else:
        def one(state):
            return module(x[0], state)[1]

    def run():
        state = None
        with torch.no_grad():
            for _ in range(steps):
                state = one(state)

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7,
                        help="timed rounds; each round runs every implementation once")
    parser.add_argument("--compile", action="store_true",
                        help="also train the unrolled cells with their step compiled (compile_steps; "
                             "the compilation, in the warm-up round, is not timed)")
    parser.add_argument("--parts", nargs="+", choices=[*SHAPES, "steps"], default=[*SHAPES, "steps"],
                        help="what to time: a training step at the sketch or text shape, one sampling step "
                             "(default: all three, in this order, in this one process)")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")

    rows = []
    for shape, (batch, steps, inp, hidden) in SHAPES.items():
        if shape not in args.parts:
            continue
        x = torch.randn(steps, batch, inp)
        fns = {"torch.nn.LSTM": train_step_fn(nn.LSTM(inp, hidden), x)}
        for label, name, dropout in VARIANTS:
            fns[label] = train_step_fn(RecurrentLayer(make_cell(name, inp, hidden, dropout)).train(), x)
        for label, name, dropout in COMPILED if args.compile else []:
            layer = RecurrentLayer(make_cell(name, inp, hidden, dropout)).train()
            compile_steps(layer)
            fns[f"{label} (compiled step)"] = train_step_fn(layer, x)
        for i, (label, (seconds, ratio)) in enumerate(interleaved(fns, args.repeats).items()):
            rows.append((f"train {shape} B{batch} T{steps} H{hidden}" if i == 0 else "", label, seconds * 1e3, ratio))

    hidden, steps = 512, 200
    # Input 5 is the sketch decoder's stroke-5 point (what the sampler steps); input 512 the
    # widest text case, where reading W_ih too makes a batch-1 step memory-bound.
    for inp, batch in ((5, 1), (512, 1), (5, 64), (512, 64)) if "steps" in args.parts else ():
        fns = {"torch.nn.LSTM (a T=1 call per step)": stepping_fn(nn.LSTM(inp, hidden), batch, inp, steps)}
        for label, name, dropout in VARIANTS:
            if dropout == 0:  # dropout is off when sampling
                cell = make_cell(name, inp, hidden).eval()
                fns[label.replace(" (fused kernel)", "") + " cell step"] = stepping_fn(cell, batch, inp, steps)
        for i, (label, (seconds, ratio)) in enumerate(interleaved(fns, args.repeats).items()):
            rows.append((f"one step B{batch} I{inp} H{hidden}" if i == 0 else "", label, seconds / steps * 1e3, ratio))

    print("| shape | implementation | ms | × torch.nn.LSTM |")
    print("|---|---|---:|---:|")
    for shape, label, ms, ratio in rows:
        print(f"| {shape} | {label} | {ms:.3f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
