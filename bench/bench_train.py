"""Training speed on one fixed configuration, as a multiple of the matmul floor measured in the
same run: the VAE's whole training step, and the decoder alone with and without recurrent dropout.

    python bench/bench_train.py [--data ../shared/data/sketches/aaron_sheep.npz] [--rounds 3] [--threads 1]

Configuration (the one the peers are compared on in BENCHMARKS.md): VAE, bidirectional LSTM 256
encoder, LSTM 512 decoder, z 128, 20 mixtures, batch 100, every batch padded to T = 250, the same
fixed batches of real drawings each round. "Floor" = the step's matrix-multiply FLOPs (forward
and both backward products of every recurrent and output layer) at the sgemm rate this machine
reaches on the step's own shape, timed in the same round: the time a perfect implementation
would still need, so each figure is a ratio that survives this machine's drifting speed.
The functions are importable: a side-by-side script times a peer port on `fixed_batches`.
"""

import argparse
import statistics
import time

import numpy as np
import torch

from sketchrnn.core import RecurrentLayer, make_cell
from sketchrnn.data import END, StrokeBatch, cap_length, load_sketches, scale_factor, stroke5_batch, to_model_units
from sketchrnn.model import SketchRNN, SketchRNNConfig
from sketchrnn.train import SketchTrainConfig, sketch_loss

SHEEP = "../shared/data/sketches/aaron_sheep.npz"
BATCH, STEPS, HIDDEN, ENCODER, Z, MIXTURES = 100, 250, 512, 256, 128, 20


def fixed_batches(data: str, count: int, seed: int = 0) -> list[StrokeBatch]:
    """``count`` batches of BATCH random training drawings (at most STEPS points), in model units,
    each padded with end-of-sketch rows to exactly STEPS + 1 steps."""
    sketches, _ = cap_length(load_sketches([data]).splits["train"], STEPS, "drop")
    scale, rng = scale_factor(sketches.drawings), np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        pick = rng.choice(len(sketches), BATCH, replace=False)
        b = stroke5_batch([to_model_units(sketches.drawings[i], scale) for i in pick], sketches.labels[pick])
        pad = torch.tensor(END).expand(STEPS + 1 - len(b.inputs), BATCH, 5)
        batches.append(StrokeBatch(torch.cat([b.inputs, pad]), torch.cat([b.targets, pad]), b.lengths, b.labels))
    return batches


def vae_step(batches: list[StrokeBatch]):
    """A function running one whole training step (loss, backward, Magenta's clip by value, Adam)
    per call, cycling through ``batches``."""
    torch.manual_seed(0)
    cfg = SketchTrainConfig(model=SketchRNNConfig(mode="vae", cell="lstm", hidden=HIDDEN, mixtures=MIXTURES,
                                                  dropout=0.0, encoder_hidden=ENCODER, z_size=Z))
    model = SketchRNN(cfg.model).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.engine.lr)
    calls = iter(range(10**9))

    def run():
        step = next(calls)
        loss, _ = sketch_loss(model, batches[step % len(batches)], step, cfg)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_value_(model.parameters(), cfg.engine.clip)
        optimizer.step()

    return run


def decoder_inputs(batches: list[StrokeBatch]) -> list[torch.Tensor]:
    """What a VAE's decoder reads: each batch's stroke-5 inputs beside a random z, (T, B, 5 + Z)."""
    return [torch.cat([b.inputs, torch.randn(1, BATCH, Z).expand(len(b.inputs), -1, -1)], -1) for b in batches]


def decoder_alone(batches: list[StrokeBatch], dropout: float):
    """Forward and backward of the decoder layer alone on ``decoder_inputs``."""
    torch.manual_seed(0)
    layer = RecurrentLayer(make_cell("lstm", 5 + Z, HIDDEN, dropout)).train()
    inputs = decoder_inputs(batches)
    calls = iter(range(10**9))

    def run():
        out, _ = layer(inputs[next(calls) % len(inputs)])
        out.sum().backward()

    return run


def matmul_flops(vae: bool) -> float:
    """Multiply-add FLOPs x 2 of one training step's matrix products: each layer's forward product
    and the two of its backward (input gradient, weight gradient)."""
    steps, rows = STEPS + 1, BATCH
    decoder = 4 * HIDDEN * ((5 + Z) + HIDDEN)
    total = decoder
    if vae:
        head = (3 + 6 * MIXTURES) * HIDDEN
        encoder = 2 * 4 * ENCODER * (5 + ENCODER)  # two directions
        total += head + encoder
    return 3 * 2 * steps * rows * total


def sgemm_rate() -> float:
    """FLOP/s of torch's matmul on the decoder's per-step shape (B x (5 + Z + H) by that x 4H)."""
    a, w = torch.randn(BATCH, 5 + Z + HIDDEN), torch.randn(4 * HIDDEN, 5 + Z + HIDDEN)
    a @ w.t()
    calls, start = 50, time.perf_counter()
    for _ in range(calls):
        a @ w.t()
    return 2 * BATCH * w.numel() * calls / (time.perf_counter() - start)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=SHEEP, help=f"a stroke file to draw the batches from (default: {SHEEP})")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians reported (default: 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1, as the peers were run)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batches = fixed_batches(args.data, args.rounds + 1)
    runs = {"VAE training step": (vae_step(batches), True),
            "decoder alone, no dropout": (decoder_alone(batches, 0.0), False),
            "decoder alone, recurrent dropout 0.1": (decoder_alone(batches, 0.1), False)}
    for run, _ in runs.values():
        run()  # warm-up: allocations, oneDNN's first-call setup
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    floors: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        rate = sgemm_rate()
        for name, (run, vae) in runs.items():
            seconds[name].append(timed(run))
            floors[name].append(matmul_flops(vae) / rate)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {BATCH}, T {STEPS}, median of {args.rounds}:")
    print("| what | seconds | matmul floor | x floor |\n|---|---:|---:|---:|")
    for name in runs:
        ratios = [s / f for s, f in zip(seconds[name], floors[name])]
        print(f"| {name} | {statistics.median(seconds[name]):.2f} | {statistics.median(floors[name]):.2f} | "
              f"{statistics.median(ratios):.2f} |")


if __name__ == "__main__":
    main()
