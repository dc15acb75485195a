"""Two training recipes at equal wall time on this machine, run side by side (one torch thread
each, so each has one of the two cores): Magenta's default (VAE, layer-norm LSTM decoder,
recurrent dropout 0.1) against a plain LSTM decoder (the fused kernel, no dropout, no encoder).
Prints the validation NLL each reached and draws both curves against minutes.

    python bench/recipes.py --data ../shared/data/sketches/aaron_sheep.npz --minutes 30 \
        --out runs/recipes --svg docs/recipes.svg
    python bench/recipes.py --out runs/recipes --svg docs/recipes.svg --plot-only   # redraw

For the VAE the NLL is the reconstruction's with z = the encoder's mean; the KL of q(z | drawing)
is printed beside it, since reconstruction + KL bounds the VAE's NLL (a decoder has no KL).
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from sketchrnn.plot import Series, line_chart

RECIPES = {  # name -> `sketchrnn train` flags
    "Magenta default (VAE, layer_norm, dropout 0.1)": ["--mode", "vae", "--cell", "layer_norm", "--dropout", "0.1"],
    "plain LSTM decoder": ["--mode", "decoder", "--cell", "lstm", "--dropout", "0"],
}


def folder(out: Path, name: str) -> Path:
    return out / name.split(" (")[0].replace(" ", "_").lower()


def valid_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == "valid"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="a stroke file (.npz) to train on")
    parser.add_argument("--minutes", type=float, default=30, help="wall time of each run (default: 30)")
    parser.add_argument("--eval-every", type=int, default=100, help="validate every this many steps (default: 100)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the two runs")
    parser.add_argument("--svg", type=Path, help="draw both validation curves here")
    parser.add_argument("--plot-only", action="store_true", help="do not train: read the runs already in --out")
    args = parser.parse_args()
    if not args.plot_only:
        if not args.data:
            parser.error("--data is required unless --plot-only")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        runs = [subprocess.Popen([sys.executable, "-m", "sketchrnn", "train", "--data", args.data,
                                  "--out", str(folder(args.out, name)), "--minutes", str(args.minutes),
                                  "--steps", "1000000", "--eval-every", str(args.eval_every), "--quiet", *flags],
                                 env=env) for name, flags in RECIPES.items()]
        if any(run.wait() for run in runs):
            raise SystemExit("a training run failed")
    series = []
    print("| recipe | steps | minutes | valid NLL | KL |\n|---|---:|---:|---:|---:|")
    for i, name in enumerate(RECIPES):
        rows = valid_rows(folder(args.out, name))
        last = rows[-1]
        kl = f"{last['kl']:.3f}" if "kl" in last else "-"
        print(f"| {name} | {last['step']} | {last['elapsed'] / 60:.1f} | {last['nll']:.4f} | {kl} |")
        series.append(Series(name.split(" (")[0], [r["elapsed"] / 60 for r in rows], [r["nll"] for r in rows],
                             dashed=i == 1))
    if args.svg:
        line_chart(series, args.svg, "Validation NLL at equal wall time", "minutes", "nats per point")
        print(f"wrote {args.svg}")


if __name__ == "__main__":
    main()
