"""How often the recognizer names what people drew: ``sketchrnn recognizer build`` (the README's
command) on a folder of models with the first 13 of each class's 25 shared Quick, Draw! drawings,
judged on the other 12 (never trained on), whole and cut to their first half; beside it the
models' likelihoods, the guess without a recognizer.

    python bench/recognizer.py [--models ../shared/data/models] [--likelihood] [-- BUILD FLAGS...]
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sketchrnn.catalog import class_name, load_catalog, model_files
from sketchrnn.recognizer import Recognizer
from sketchrnn.scoring import likelihood_guess
from sketchrnn.strokes import read_ndjson, stroke3_to_polylines

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TRAIN = 13  # of each class's 25 shared drawings: the first 13 train, the last 12 judge


def split(models: list[str], simplified: Path, into: Path) -> dict[str, list[np.ndarray]]:
    """Write each served class's first TRAIN drawings to ``into``; return the rest by class."""
    held_out = {}
    for path in sorted(simplified.glob("*.ndjson")):
        name = class_name(path.stem)
        if name in models:
            lines = path.read_text().splitlines()
            (into / f"{name}.ndjson").write_text("".join(line + "\n" for line in lines[:TRAIN]))
            held_out[name] = [r.strokes for r in read_ndjson(path)[0][TRAIN:]]
    return held_out


def half(s3: np.ndarray) -> np.ndarray:
    return s3[: max(2, len(s3) // 2)]


def score(guess, held_out: dict[str, list[np.ndarray]], cut) -> dict:
    """Top-1 and top-3 over every held-out drawing, per class top-1, and guess times."""
    top1, top3, per_class, took = [], [], {}, []
    for name, drawings in held_out.items():
        for s3 in drawings:
            start = time.perf_counter()
            ranked = [n for n, _ in guess(stroke3_to_polylines(cut(s3)))]
            took.append((time.perf_counter() - start) * 1000)
            top1.append(ranked[0] == name)
            top3.append(name in ranked[:3])
            per_class.setdefault(name, []).append(ranked[0] == name)
    return {"top1": np.mean(top1), "top3": np.mean(top3), "count": len(top1), "ms_p50": np.median(took),
            "per_class": {n: np.mean(v) for n, v in per_class.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=str(SHARED / "models"), help="a folder of models (default: %(default)s)")
    parser.add_argument("--drawings", default=str(SHARED / "sketches" / "quickdraw" / "simplified"),
                        help="Quick, Draw! ndjson per class, 25 or more each (default: %(default)s)")
    parser.add_argument("--likelihood", action="store_true", help="also judge the models' likelihoods (slow)")
    parser.add_argument("build_flags", nargs="*", help="more flags for `sketchrnn recognizer build` (after --)")
    args = parser.parse_args()
    files = model_files([args.models])
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        (scratch / "drawings").mkdir()
        held_out = split(list(files), Path(args.drawings), scratch / "drawings")
        models = scratch / "models"
        shutil.copytree(args.models, models, ignore=shutil.ignore_patterns("recognizer.pt"))
        command = [sys.executable, "-m", "sketchrnn", "recognizer", "build", "--models", str(models),
                   "--drawings", str(scratch / "drawings"), *args.build_flags]
        print("$", " ".join(command[1:]), flush=True)
        began = time.monotonic()
        subprocess.run(command, check=True)
        minutes = (time.monotonic() - began) / 60
        recognizer = Recognizer.load(models / "recognizer.pt", model_files([models]))
        rows = [("recognizer", recognizer.guess)]
        if args.likelihood:
            catalog = load_catalog(files)
            rows.append(("likelihood", lambda strokes: likelihood_guess(catalog, strokes)))
        print(f"build: {minutes:.1f} min; {len(files)} models, judged on {sum(map(len, held_out.values()))} "
              f"held-out drawings of {len(held_out)} classes")
        print("| guess by | whole top-1 | whole top-3 | half top-1 | half top-3 | ms p50 |")
        print("|---|---:|---:|---:|---:|---:|")
        for label, guess in rows:
            whole, halves = score(guess, held_out, lambda s3: s3), score(guess, held_out, half)
            print(f"| {label} | {whole['top1']:.1%} | {whole['top3']:.1%} | {halves['top1']:.1%} | "
                  f"{halves['top3']:.1%} | {whole['ms_p50']:.1f} |")
            worst = sorted(whole["per_class"].items(), key=lambda item: item[1])[:5]
            print(f"|   weakest whole top-1: {', '.join(f'{n} {v:.0%}' for n, v in worst)} | | | | | |")


if __name__ == "__main__":
    main()
