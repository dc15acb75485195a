"""Training throughput on one machine: 1 process x N threads against N processes x 1 thread
(torchrun, gloo all-reduce), on the same batches, in interleaved rounds.

    python bench/bench_parallel_train.py --data ../shared/data/sketches/aaron_sheep.npz [--rounds 3]
    python bench/bench_parallel_train.py --data ... --curves 500 --svg docs/parallel_training.svg

Each run is the real ``sketchrnn train`` command (Magenta's model unless flags say otherwise);
its speed is read from the metrics log between step --warmup and the last step, so start-up,
the first steps' allocations and the final validation are not counted. With --curves, one longer
run each way instead, validated every 50 steps: the two validation curves, side by side.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from sketchrnn.data import Batcher, cap_length, load_sketches, scale_factor
from sketchrnn.plot import Series, line_chart


def points_per_step(data: str, steps: range, batch_size: int, max_len: int = 250) -> list[int]:
    """Real points in each step's batch, from the same pure function of the step the run uses."""
    sketches, _ = cap_length(load_sketches([data]).splits["train"], max_len, "drop")
    batcher = Batcher(sketches, scale_factor(sketches.drawings), batch_size)
    return [int(batcher.batch(s).lengths.sum()) for s in steps]


def logged_run(cmd: list[str], env: dict, out: Path) -> list[dict]:
    """Run ``sketchrnn train`` into ``out``; its metrics log's rows."""
    subprocess.run(cmd + ["--out", str(out)], check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def compare_curves(ways: dict, scratch: Path, svg: Path | None) -> None:
    curves = {}
    for name, (cmd, env) in ways.items():
        rows = logged_run(cmd, env, scratch / name.replace(" ", "_"))
        curves[name] = {r["step"]: r["nll"] for r in rows if r["split"] == "valid"}
    names = list(curves)
    print("| step | " + " | ".join(names) + " | difference |\n|---|---|---|---|")
    for step in sorted(curves[names[0]]):
        a, b = curves[names[0]][step], curves[names[1]].get(step, float("nan"))
        print(f"| {step} | {a:.4f} | {b:.4f} | {b - a:+.4f} |")
    if svg:
        line_chart([Series(n.split(" x ")[0], list(c), list(c.values()), dashed=i == 1)  # "2 processes"
                    for i, (n, c) in enumerate(curves.items())],
                   svg, "Validation NLL: one process against torchrun", "step", "nats per point")
        print(f"wrote {svg}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a stroke file (.npz) to train on")
    parser.add_argument("--processes", type=int, default=2,
                        help="N: processes, and threads of the one process (default: 2)")
    parser.add_argument("--steps", type=int, default=25, help="steps per run (default: 25)")
    parser.add_argument("--warmup", type=int, default=5, help="steps not timed at the start of each run (default: 5)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported (default: 3)")
    parser.add_argument("--batch-size", type=int, default=100,
                        help="drawings per step, all ranks together (default: 100)")
    parser.add_argument("--curves", type=int, default=0,
                        help="instead of timing: one run of this many steps each way, validated every 50 steps")
    parser.add_argument("--svg", type=Path, help="with --curves: draw both validation curves here")
    args, model_flags = parser.parse_known_args()  # the rest go to `sketchrnn train` (--hidden 256, ...)
    n = args.processes
    steps, eval_every = (args.curves, 50) if args.curves else (args.steps, 10 * args.steps)
    train = ["-m", "sketchrnn", "train", "--data", args.data, "--steps", str(steps), "--log-every",
             str(args.warmup), "--eval-every", str(eval_every), "--batch-size", str(args.batch_size),
             "--quiet", *model_flags]
    ways = {
        f"1 process x {n} threads": ([sys.executable, *train], {"OMP_NUM_THREADS": str(n)}),
        f"{n} processes x 1 thread": ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                       "--nproc-per-node", str(n), *train], {"OMP_NUM_THREADS": "1"}),
    }
    ways = {name: (cmd, {**os.environ, **env}) for name, (cmd, env) in ways.items()}
    if args.curves:
        with tempfile.TemporaryDirectory() as scratch:
            compare_curves(ways, Path(scratch), args.svg)
        return
    points = sum(points_per_step(args.data, range(args.warmup, args.steps), args.batch_size))
    rates: dict[str, list[float]] = {name: [] for name in ways}
    with tempfile.TemporaryDirectory() as scratch:
        for r in range(args.rounds):
            for name, (cmd, env) in ways.items():
                rows = logged_run(cmd, env, Path(scratch) / f"{r}-{len(rates[name])}-{n}")
                elapsed = {row["step"]: row["elapsed"] for row in rows if row["split"] == "train"}
                seconds = elapsed[args.steps] - elapsed[args.warmup]
                rates[name].append(points / seconds)
                print(f"round {r + 1}: {name}: {points / seconds:,.0f} points/s", flush=True)
    medians = {name: statistics.median(v) for name, v in rates.items()}
    one, many = medians.values()
    for name, rate in medians.items():
        print(f"{name}: median {rate:,.0f} points/s (rounds: {', '.join(f'{v:,.0f}' for v in rates[name])})")
    print(f"{n} processes / 1 process: {many / one:.2f}x (model flags: {' '.join(model_flags) or 'defaults'}, "
          f"batch {args.batch_size}, steps {args.warmup}-{args.steps}, {points} points timed)")


if __name__ == "__main__":
    main()
