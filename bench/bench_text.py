"""Sampling speed of a trained text model at batch 1: symbols per second of ``generate`` (one
step per symbol with the state kept, as ``sketchrnn text sample`` streams them).

    python bench/bench_text.py --model runs/shakespeare/best.pt [--length 2000] [--repeats 3]
"""

import argparse
import io
import time

import torch

from sketchrnn.text import generate, load_text_model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a text model checkpoint (best.pt)")
    parser.add_argument("--prime", default="ROMEO:", help="text read before sampling (default: ROMEO:)")
    parser.add_argument("--length", type=int, default=2000, help="symbols generated per run (default: 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best is reported (default: 3)")
    args = parser.parse_args()
    model = load_text_model(args.model)
    params = sum(p.numel() for p in model.parameters())
    generate(model, args.prime, 50, seed=0)  # warm-up: first calls pay one-time setup
    best = float("inf")
    for seed in range(args.repeats):
        start = time.perf_counter()
        generate(model, args.prime, args.length, temperature=0.8, seed=seed, out=io.StringIO())
        best = min(best, time.perf_counter() - start)
    cfg = model.cfg
    print(f"{cfg.cell} {cfg.layers}x{cfg.hidden} ({params / 1e6:.2f}M parameters), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads: {args.length / best:,.0f} symbols/s "
          f"({best * 1000 / args.length:.3f} ms per symbol, best of {args.repeats})")


if __name__ == "__main__":
    main()
