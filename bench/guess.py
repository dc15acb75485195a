"""How often ``"model": "auto"`` picks a drawing's own class: Google's four decoders score each
Quick, Draw! drawing of their classes (drawn at 2x, a point every 2 px, as a mouse sends it),
whole and cut after half its strokes, through ``scoring.guess_model`` (the ranking the server
uses where no recognizer was built).

    python bench/guess.py

Beside it, the plain comparison: each model's NLL of Google's own simplified drawing (0-255
frame) at its file's scale factor.
"""

import argparse
from pathlib import Path

import numpy as np

from sketchrnn.checkpoints import load_model
from sketchrnn.data import load_sketches
from sketchrnn.scoring import guess_model, score
from sketchrnn.strokes import resample, stroke3_to_polylines

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CLASSES = ["monkey", "sheep", "bird", "rabbit"]


def plain_guess(models, drawing: np.ndarray) -> str:
    """The baseline: the simplified drawing read at each file's own scale factor."""
    scores = {name: score(m.model, drawing, [m.scale_factor])[0] for name, m in models.items()}
    return min(scores, key=scores.get)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=25, help="drawings per class (default: 25)")
    args = parser.parse_args()
    models = {name: load_model(SHARED / "models" / f"{name}.gen.json") for name in CLASSES}
    simplified = SHARED / "sketches" / "quickdraw" / "simplified"
    print("| class | drawings | whole: auto | whole: plain | half: auto | half: plain |")
    print("|---|---:|---:|---:|---:|---:|")
    totals = np.zeros(4)
    for label in CLASSES:
        drawings = load_sketches([simplified / f"{label}.ndjson"]).splits["all"].drawings[: args.limit]
        right = np.zeros(4)
        halves = 0
        for d in drawings:
            mouse = [resample(p * 2.0, 2.0) for p in stroke3_to_polylines(d)]
            right[0] += guess_model(models, mouse)[0] == label
            right[1] += plain_guess(models, d) == label
            if len(mouse) >= 2:
                halves += 1
                half = mouse[: len(mouse) // 2]
                right[2] += guess_model(models, half)[0] == label
                cut = int(np.flatnonzero(d[:, 2])[len(mouse) // 2 - 1]) + 1  # after the same strokes
                right[3] += plain_guess(models, d[:cut]) == label
        shares = right / np.array([len(drawings), len(drawings), halves, halves])
        totals += shares / len(CLASSES)
        print(f"| {label} | {len(drawings)} | {shares[0]:.0%} | {shares[1]:.0%} | {shares[2]:.0%} | {shares[3]:.0%} |",
              flush=True)
    print(f"| mean of classes | | {totals[0]:.0%} | {totals[1]:.0%} | {totals[2]:.0%} | {totals[3]:.0%} |")


if __name__ == "__main__":
    main()
