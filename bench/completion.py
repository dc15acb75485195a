"""Completion quality on real drawings, through the public WebSocket API, as a person drawing in
the browser would see it. Each drawing is cut after half its strokes; the first half is sent as
the client sends it (every mouse point, canvas pixels) and the model's n endings are compared
with the real rest. Starts ``sketchrnn serve`` with the models under test:

    python bench/completion.py [--models sheep monkey bird rabbit sheep-gen] [--n 8] [--svg DIR]

Drawings: Quick, Draw! raw files as drawn (monkey); simplified Quick, Draw! drawings and the
aaron_sheep test split drawn at 2x and densified to a point every 2 px (a mouse's spacing).
"""

import argparse
import asyncio
import contextlib
import json
import math
from pathlib import Path

import numpy as np
import svgwrite
from common import health, serving

from sketchrnn import remote
from sketchrnn.checkpoints import DEFAULT_MODEL, load_model
from sketchrnn.data import load_sketches
from sketchrnn.drawing_input import drawing_frame, prepare_for, prepare_strokes, simplify_strokes, typical_extent
from sketchrnn.scoring import score
from sketchrnn.strokes import polylines_to_stroke3, resample, stroke3_to_polylines

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
QUICKDRAW = SHARED / "sketches" / "quickdraw"
MODELS = {  # name -> (model file, drawing sources of its class)
    "sheep": (DEFAULT_MODEL, [("npz", SHARED / "sketches" / "aaron_sheep.npz")]),
    "monkey": (SHARED / "models" / "monkey.gen.json", [("raw", QUICKDRAW / "raw" / "monkey.ndjson"),
                                                       ("simplified", QUICKDRAW / "simplified" / "monkey.ndjson")]),
    "bird": (SHARED / "models" / "bird.gen.json", [("simplified", QUICKDRAW / "simplified" / "bird.ndjson")]),
    "rabbit": (SHARED / "models" / "rabbit.gen.json", [("simplified", QUICKDRAW / "simplified" / "rabbit.ndjson")]),
    "sheep-gen": (SHARED / "models" / "sheep.gen.json", [("simplified", QUICKDRAW / "simplified" / "sheep.ndjson")]),
}
CANVAS_OFFSET = np.array([40.0, 40.0])  # where a drawing sits on the canvas

# Scales tried by fit_scale, as factors of the std estimate: a quarter to twice it, in quarter octaves.
SCALE_FACTORS = 2.0 ** np.arange(-2.0, 1.01, 0.25)


def fit_scale(model, prefix: np.ndarray, scale: float) -> float:
    """The scale, among ``scale`` x SCALE_FACTORS, at which the model finds the prefix likeliest
    (drawing units, so the scales compete fairly): the model itself says how big a unit of its
    own is in this drawing. A prefix of fewer than 3 points says too little: ``scale`` stays."""
    if len(prefix) < 3:
        return scale
    candidates = scale * SCALE_FACTORS
    return float(candidates[int(np.argmin(score(model, prefix, candidates)))])


def as_drawn(kind: str, path: Path, limit: int) -> list[list[np.ndarray]]:
    """Drawings as absolute canvas polylines with a mouse's point density."""
    if kind == "raw":  # every point as drawn, in the drawing's own screen coordinates
        lines = [json.loads(ln)["drawing"] for ln in path.read_text().splitlines() if ln.strip()][:limit]
        return [[np.array(stroke[:2], dtype=float).T for stroke in drawing] for drawing in lines]
    split = "test" if kind == "npz" else "all"
    drawings = load_sketches([path]).splits[split].drawings[:limit]
    return [[resample(p * 2.0, 2.0) + CANVAS_OFFSET for p in stroke3_to_polylines(d)] for d in drawings]


def densify(points: np.ndarray, spacing: float) -> np.ndarray:
    return resample(points, spacing) if len(points) > 1 else points


def ink(polylines: list[np.ndarray], spacing: float) -> np.ndarray:
    """Points evenly along the strokes: shapes compared by ink, not by how many points they have."""
    return np.concatenate([densify(p, spacing) for p in polylines]) if polylines else np.zeros((0, 2))


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    d = np.linalg.norm(a[:, None] - b[None], axis=-1)
    return 0.5 * (d.min(1).mean() + d.min(0).mean())


def size(points: np.ndarray) -> float:
    return float(np.hypot(*np.ptp(points, 0))) if len(points) > 1 else 0.0


def inside(points: np.ndarray, box: tuple[np.ndarray, np.ndarray]) -> float:
    return float(((points >= box[0]) & (points <= box[1])).all(1).mean()) if len(points) else float("nan")


def ending_polylines(points: list[list[float]]) -> list[np.ndarray]:
    """The model's points (absolute, pen-lift flags) as polylines. The person lifted the pen
    before asking, so the first point is reached with the pen up: it starts a stroke."""
    lines, current = [], []
    for x, y, lift in points:
        current.append([x, y])
        if lift:
            lines.append(np.array(current))
            current = []
    if current:
        lines.append(np.array(current))
    return lines


async def complete(url: str, model: str, strokes: list[np.ndarray], args, scale: float | None):
    request = {"model": model, "n": args.n, "seed": args.seed, "temperature": args.temperature}
    if args.pen_temperature:
        request["pen_temperature"] = args.pen_temperature
    if scale is not None:
        request["scale"] = scale
    async with remote.connect(url) as client:
        completion = client.complete([p.round(2) for p in strokes], **request)
        points = await completion.collect(120)
        return ([points[k] for k in range(args.n)], [completion.done[k].reason for k in range(args.n)],
                completion.guess)


def evaluate(url: str, name: str, drawings: list[list[np.ndarray]], loaded, args) -> tuple[dict, list]:
    cases = [(d[: len(d) // 2], d[len(d) // 2 :]) for d in drawings if len(d) >= 2]
    scales = [None] * len(cases)  # the server's own choice
    if args.scale_method != "server":
        scales = [prepare_strokes(prefix, loaded.max_len)[1] * args.scale_times for prefix, _ in cases]
    if args.scale_method == "frame":  # the model's own std, in the prefix's 0-255 frame
        scales = [loaded.scale_factor * drawing_frame(prefix)[1] for prefix, _ in cases]
    if args.scale_method == "extent":  # the prefix's longer side over what the model's drawings span
        scales = [float(np.ptp(np.concatenate(prefix), 0).max()) / typical_extent(loaded.model) for prefix, _ in cases]
    if args.scale_method == "likelihood":
        scales = [fit_scale(loaded.model, prepare_strokes(prefix, loaded.max_len)[0], s)
                  for (prefix, _), s in zip(cases, scales)]

    async def all_cases():  # concurrently: the server batches them, and seeds make it repeatable
        return await asyncio.gather(*(complete(url, name, prefix, args, scale)
                                      for (prefix, _), scale in zip(cases, scales)))

    answers = asyncio.run(all_cases())
    rows = {k: [] for k in ("ended", "empty", "size", "ink", "ink_real", "lifts", "lifts_real", "chamfer", "nll")}
    pictures = []
    for (prefix, rest), (points, reasons, _), scale in zip(cases, answers, scales):
        whole = np.concatenate(prefix + rest)
        diagonal = size(whole)
        spacing = diagonal / 100
        box = (np.concatenate(prefix).min(0), np.concatenate(prefix).max(0))
        real = ink(rest, spacing)
        endings = [ending_polylines(p) for p in points]
        rows["ended"] += [r == "end" for r in reasons]
        rows["empty"] += [len(p) == 0 for p in points]
        drawn = [ink(e, spacing) for e, p in zip(endings, points) if p]
        real_size = max(size(np.concatenate(rest)), 1e-9)
        rows["size"] += [size(np.concatenate(e)) / real_size for e, p in zip(endings, points) if p]
        rows["ink"] += [inside(d, box) for d in drawn]
        rows["ink_real"].append(inside(real, box))
        rows["lifts"] += [sum(pt[2] for pt in p) / len(p) for p in points if p]
        # People's lifts per point, counted as the model sees a drawing: simplified.
        low, unit = drawing_frame(prefix + rest)
        rest_simple = simplify_strokes(rest, low, unit)
        rows["lifts_real"].append(len(rest_simple) / sum(len(p) for p in rest_simple))
        rows["chamfer"].append(min((chamfer(d, real) for d in drawn), default=1.0) / diagonal)
        scale = scale or prepare_for(loaded, prefix)[1]
        simplified = polylines_to_stroke3(simplify_strokes(prefix + rest, low, unit))
        cut = len(polylines_to_stroke3(simplify_strokes(prefix, low, unit)))
        rows["nll"].append(float(score(loaded.model, simplified, [scale], start=cut, ended=True)[0]))
        pictures.append((prefix, rest, endings))
    summary = {
        "drawings": len(cases),
        "ended": float(np.mean(rows["ended"])),
        "empty": float(np.mean(rows["empty"])),
        "size_median": float(np.median(rows["size"])) if rows["size"] else float("nan"),
        "ink_inside": float(np.nanmean(rows["ink"])) if rows["ink"] else float("nan"),
        "ink_inside_real": float(np.nanmean(rows["ink_real"])),
        "lifts_per_point": float(np.mean(rows["lifts"])) if rows["lifts"] else float("nan"),
        "lifts_per_point_real": float(np.mean(rows["lifts_real"])),
        "chamfer": float(np.mean(rows["chamfer"])),
        "nll_rest": float(np.mean(rows["nll"])),
    }
    return summary, pictures


COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def render(pictures, path: Path, shown: int, columns: int = 6, cell: int = 170) -> None:
    """Prefix black, the real rest grey, the first ``shown`` endings each in its own colour."""
    pictures = [(prefix, rest, endings[:shown]) for prefix, rest, endings in pictures]
    rows = math.ceil(len(pictures) / columns)
    dwg = svgwrite.Drawing(str(path), size=(columns * cell, rows * cell), profile="full")
    dwg.add(dwg.rect((0, 0), (columns * cell, rows * cell), fill="white"))
    for i, (prefix, rest, endings) in enumerate(pictures):
        everything = np.concatenate(prefix + rest + [p for e in endings for p in e])
        low, extent = everything.min(0), float(np.ptp(everything, 0).max()) or 1.0
        r, c = divmod(i, columns)
        origin, fit = np.array([c * cell + 6, r * cell + 6]), (cell - 12) / extent

        def path_of(points, low=low, fit=fit, origin=origin):
            xy = (points - low) * fit + origin
            return "M " + " L ".join(f"{x:.0f} {y:.0f}" for x, y in xy)  # cells of 170 px: whole pixels do

        for stroke in rest:
            dwg.add(dwg.path(d=path_of(stroke), stroke="#bbbbbb", fill="none", stroke_width=2))
        for k, ending in enumerate(endings):
            for stroke in ending:
                dwg.add(dwg.path(d=path_of(stroke), stroke=COLORS[k % len(COLORS)], fill="none",
                                 stroke_width=1.2, opacity=0.8))
        for stroke in prefix:
            dwg.add(dwg.path(d=path_of(stroke), stroke="#111111", fill="none", stroke_width=2))
    dwg.save()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS), help="models to judge")
    parser.add_argument("--n", type=int, default=8, help="endings per drawing (default: 8)")
    parser.add_argument("--seed", type=int, default=7, help="seed of every request (default: 7)")
    parser.add_argument("--temperature", type=float, default=0.25, help="sampling temperature (default: 0.25)")
    parser.add_argument("--pen-temperature", type=float, default=1.0,
                        help="send this pen_temperature, as the browser client does (default: 1.0, the client's); "
                             "0: send none, the server's 0.5 + 0.5 x temperature (sketch-rnn-js)")
    parser.add_argument("--limit", type=int, default=30, help="drawings per source file (default: 30)")
    parser.add_argument("--scale-method", choices=["server", "std", "extent", "frame", "likelihood"],
                        default="server",
                        help="server: let the server pick the scale (both readings below, std and extent); else "
                             "send as the request's scale: std, the std of the simplified offsets; extent, the "
                             "prefix's longer side over what the model's drawings span; frame, the model's scale "
                             "factor in the prefix's 0-255 frame; likelihood, the scale around std under which the "
                             "model finds the prefix likeliest (default: server)")
    parser.add_argument("--scale-times", type=float, default=1.0,
                        help="with --scale-method std: send this multiple of it (calibration experiments)")
    parser.add_argument("--svg", type=Path, help="folder for one picture per model (prefix black, real rest grey)")
    parser.add_argument("--shown", type=int, default=3, help="endings drawn per drawing in --svg (default: 3)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--port", type=int, help="judge the server already listening here, serving --models' files "
                                                 "in that order (an older version, say); default: start one")
    args = parser.parse_args()
    files = [str(MODELS[m][0]) for m in args.models]
    with contextlib.ExitStack() as stack:
        port = args.port or stack.enter_context(serving("--rate", "1000", "--model", *files))[0]
        served = health(port)
        names = dict(zip(args.models, served["models"]))  # file order is served order
        print("| model | drawings | ended by itself | empty | size / real rest (median) | ink inside prefix box "
              "(real rest) | pen lifts per point (people) | best-of-n Chamfer / diagonal | NLL of real rest |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        results = {}
        for model in args.models:
            drawings = [d for kind, path in MODELS[model][1] for d in as_drawn(kind, path, args.limit)]
            summary, pictures = evaluate(f"ws://127.0.0.1:{port}/ws", names[model], drawings,
                                         load_model(MODELS[model][0]), args)
            results[model] = summary
            s = summary
            print(f"| {model} | {s['drawings']} | {s['ended']:.0%} | {s['empty']:.0%} | {s['size_median']:.2f}x | "
                  f"{s['ink_inside']:.2f} ({s['ink_inside_real']:.2f}) | {s['lifts_per_point']:.3f} "
                  f"({s['lifts_per_point_real']:.3f}) | {s['chamfer']:.3f} | {s['nll_rest']:.2f} |", flush=True)
            if args.svg:
                args.svg.mkdir(parents=True, exist_ok=True)
                render(pictures[:6], args.svg / f"completion-{model}.svg", args.shown)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
