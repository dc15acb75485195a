"""``sketchrnn train|eval|sample|complete|reconstruct|interpolate|import|export``: Sketch-RNN
models from the command line."""

import argparse
import json

import numpy as np
import torch

from sketchrnn.catalog import load_catalog, model_files
from sketchrnn.checkpoints import DEFAULT_MODEL, export_gen_json, load_model, save_model
from sketchrnn.cli import flags
from sketchrnn.cli.flags import add_config_flags, check_output, config_from_args, json_line
from sketchrnn.core import distributed
from sketchrnn.core.checkpoint import atomic_file
from sketchrnn.data import SketchSet, load_sketches
from sketchrnn.drawing_input import prepare_for
from sketchrnn.latent import encode, slerp
from sketchrnn.recognizer import load_for
from sketchrnn.render import render_grid
from sketchrnn.sampler import Request, Settings, complete, sample
from sketchrnn.scoring import likelihood_guess
from sketchrnn.strokes import SPLITS, StrokeFormatError, read_drawing, stroke3_to_polylines
from sketchrnn.train import SketchTrainConfig, evaluate_nll, train_sketch_model


def _settings(args) -> Settings:
    return Settings(args.temperature, getattr(args, "pen_temperature", None), seed=args.seed,
                    max_points=args.max_points)


def drawing_range(text: str) -> slice:
    """--range START:STOP (either may be left out), as Python slices them but never negative."""
    start, colon, stop = text.partition(":")
    try:
        bounds = [int(b) if b.strip() else None for b in (start, stop)]
    except ValueError:
        bounds = None
    if not colon or bounds is None or any(b is not None and b < 0 for b in bounds):
        raise argparse.ArgumentTypeError(f"must be START:STOP, two whole numbers >= 0 (either may be left out), "
                                         f"got {text!r}")
    return slice(*bounds)


def cmd_train(args: argparse.Namespace) -> int:
    summary = train_sketch_model(args.data, args.out, config_from_args(SketchTrainConfig(), args),
                                 resume=args.resume, progress=not args.quiet, overwrite=args.overwrite)
    if args.quiet and distributed.current().main:  # the engine printed nothing: the summary as one JSON line
        print(json_line(summary))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    loaded = load_model(args.model)
    split = args.split or ("all" if args.range else "test")
    sketches = load_sketches(args.data, seed=args.seed).splits[split]
    if args.range:
        chosen = range(len(sketches))[args.range]
        if not chosen:
            raise StrokeFormatError(f"--range {args.range.start or ''}:{args.range.stop or ''}: selects no drawing "
                                    f"of the {len(sketches)} in {split}")
        sketches = SketchSet([sketches.drawings[i] for i in chosen], sketches.labels[list(chosen)],
                             [sketches.key_ids[i] for i in chosen])
    result = evaluate_nll(loaded.model, loaded.scale_factor, sketches)
    if args.json:
        print(json.dumps(result))
    else:
        kl = f", KL {result['kl']:.4f}" if "kl" in result else ""
        print(f"{loaded.name} on {split} of {', '.join(args.data)}: NLL {result['nll']:.4f} per point "
              f"over {result['drawings']} drawings ({result['points']} points){kl}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    check_output(args.out, [args.model])
    loaded = load_model(args.model)
    drawings = sample(loaded.model, loaded.scale_factor, args.n, _settings(args))
    render_grid(drawings, args.out)
    print(f"wrote {len(drawings)} samples of {loaded.name} (temperature {args.temperature}) to {args.out}")
    return 0


def cmd_complete(args: argparse.Namespace) -> int:
    inputs = [args.input, args.model, *(args.candidates or [])]
    check_output(args.out, inputs)
    if args.json:
        check_output(args.json, [*inputs, args.out], "--json")
    partial = read_drawing(args.input, args.index)
    if args.model == "auto":
        files = model_files(args.candidates or [DEFAULT_MODEL])
        candidates, recognizer = load_catalog(files), load_for(files)
        polylines = stroke3_to_polylines(partial)
        ranked = recognizer.guess(polylines) if recognizer is not None else likelihood_guess(candidates, polylines)
        how = "recognizer" if recognizer is not None else "the models' likelihoods"
        print(f"looks like: {ranked[0][0]} ({how}: {', '.join(f'{n} {p:.0%}' for n, p in ranked[:4])})")
        loaded = candidates[ranked[0][0]]
    else:
        loaded = load_model(args.model)
    prefix, scale = prepare_for(loaded, stroke3_to_polylines(partial), args.scale)
    continuations = complete(loaded.model, Request(prefix, scale, args.n, _settings(args)))
    render_grid([np.concatenate([partial, c]) for c in continuations], args.out,
                generated_from=[len(partial)] * len(continuations))
    if args.json:
        with atomic_file(args.json, "w") as f:  # {"input": ...} reads back as --input (read_drawing)
            json.dump({"input": partial.tolist(), "scale": scale,
                       "continuations": [c.tolist() for c in continuations]}, f)
    lengths = ", ".join(str(len(c)) for c in continuations)
    print(f"wrote {len(continuations)} continuations of {args.input} ({lengths} points) by {loaded.name} to {args.out}")
    return 0


def _drawings_from(args) -> SketchSet:
    sketches = load_sketches(args.data, seed=args.seed or 0).splits[args.split]
    if len(sketches) == 0:
        raise StrokeFormatError(f"{', '.join(args.data)}: the {args.split} split is empty")
    return sketches


def cmd_reconstruct(args: argparse.Namespace) -> int:
    check_output(args.out, [args.model, *args.data])
    loaded = load_model(args.model)
    sketches = _drawings_from(args)
    chosen = np.random.default_rng(args.seed).permutation(len(sketches))[: args.n]
    originals = [sketches.drawings[i] for i in chosen]
    z = encode(loaded.model, loaded.scale_factor, originals)
    rebuilt = sample(loaded.model, loaded.scale_factor, len(originals), _settings(args), z=z)
    pairs = [d for pair in zip(originals, rebuilt) for d in pair]
    render_grid(pairs, args.out, columns=2, titles=["original", "reconstruction"] * len(originals))
    print(f"wrote {len(originals)} drawings and their reconstructions to {args.out}")
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    check_output(args.out, [args.model, *args.data])
    loaded = load_model(args.model)
    sketches = _drawings_from(args)
    for flag, i in (("--first", args.first), ("--second", args.second)):
        if i >= len(sketches):
            raise StrokeFormatError(f"{flag} {i}: the {args.split} split of {', '.join(args.data)} holds "
                                    f"{len(sketches)} drawings (0 to {len(sketches) - 1})")
    ends = [sketches.drawings[i] for i in (args.first, args.second)]
    za, zb = encode(loaded.model, loaded.scale_factor, ends)
    ts = np.linspace(0.0, 1.0, args.steps)
    z = torch.stack([slerp(za, zb, float(t)) for t in ts])
    drawings = sample(loaded.model, loaded.scale_factor, len(ts), _settings(args), z=z)
    render_grid(drawings, args.out, columns=len(ts), titles=[f"t={t:.2f}" for t in ts])
    print(f"wrote {len(ts)} drawings from drawing {args.first} to {args.second} to {args.out}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    check_output(args.out, [args.file])
    loaded = load_model(args.file)
    save_model(loaded, args.out)
    print(f"imported {loaded.name} (LSTM {loaded.model.config.hidden}, scale factor "
          f"{loaded.scale_factor:.4f}) to {args.out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    check_output(args.out, [args.model])
    loaded = load_model(args.model)
    cost = export_gen_json(loaded, args.out)
    print(f"exported {loaded.name} (LSTM {loaded.model.config.hidden}, scale factor {loaded.scale_factor:.4f}) to "
          f"{args.out}: {cost['weights']:,} weights as int16, largest change {cost['max_error']:.2g}, "
          f"{cost['clipped']} clipped at +-10")
    return 0


def add_commands(commands) -> None:
    tr = commands.add_parser("train", help="train a Sketch-RNN model on stroke files",
                             description="Train a Sketch-RNN model; defaults are Magenta's.")
    tr.add_argument("--data", nargs="+", required=True, help=".npz or .ndjson files, one class each")
    tr.add_argument("--out", required=True, help="run folder: checkpoints, metrics, sample grids")
    add_config_flags(tr, SketchTrainConfig())
    tr.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt (same data "
                                                          "and model, or it refuses)")
    tr.add_argument("--overwrite", action="store_true", help="start over in an --out that holds a run, "
                                                             "replacing its checkpoints and metrics")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.set_defaults(func=cmd_train)

    def model_flag(sub):
        sub.add_argument("--model", help="checkpoint (.pt) or sketch-rnn-js .gen.json (default: the shipped "
                                         "sheep model)")
        sub.add_argument("--seed", type=flags.seed, default=None, help="random seed for repeatable output")

    def sampling_flags(sub, temperature: float, why: str):
        sub.add_argument("--temperature", type=flags.positive, default=temperature, help=f"randomness; {why} "
                                                                                 f"(default: {temperature})")
        sub.add_argument("--pen-temperature", type=flags.positive,
                         help="randomness of the pen and mixture choice alone "
                              "(default: 0.5 + 0.5 x --temperature, as sketch-rnn-js)")
        sub.add_argument("--max-points", type=flags.count(), default=250, help="longest drawing (default: 250)")

    ev = commands.add_parser("eval", help="mean NLL per point of a model on stroke files")
    model_flag(ev)
    ev.add_argument("--data", nargs="+", required=True, help=".npz or .ndjson files")
    ev.add_argument("--split", choices=[*SPLITS, "all"], help="split to score (default: test; all with --range)")
    ev.add_argument("--range", type=drawing_range,
                    help="START:STOP drawings of the split (file order with --split all)")
    ev.add_argument("--json", action="store_true", help='print {"nll", "drawings", "points"} as JSON')
    ev.set_defaults(func=cmd_eval)

    sa = commands.add_parser("sample", help="unconditional drawings from a model, as an SVG grid")
    model_flag(sa)
    sa.add_argument("--n", type=flags.count(), default=16, help="how many drawings (default: 16)")
    sampling_flags(sa, 0.4, "lower is tidier")
    sa.add_argument("--out", default="samples.svg", help="SVG file (default: samples.svg)")
    sa.set_defaults(func=cmd_sample)

    co = commands.add_parser("complete", help="continue a partial drawing, n ways, as SVG")
    co.add_argument("--model", help="checkpoint (.pt) or sketch-rnn-js .gen.json, or auto: the likeliest of "
                                    "--candidates for this drawing (default: the shipped sheep model)")
    co.add_argument("--candidates", nargs="+", help="with --model auto: model files or folders of them "
                                                    "(default: the shipped sheep model)")
    co.add_argument("--seed", type=flags.seed, default=None, help="random seed for repeatable output")
    co.add_argument("--input", required=True, help="ndjson file, JSON polylines [[[x, y], ...], ...] or JSON stroke-3")
    co.add_argument("--index", type=flags.index, default=0, help="which drawing of an ndjson input (default: 0)")
    co.add_argument("--n", type=flags.count(), default=4, help="alternative continuations (default: 4)")
    sampling_flags(co, 0.25, "sketch-rnn-js's demos draw at 0.25")
    co.add_argument("--scale", type=flags.positive,
                    help="input units per model unit (default: the std of the simplified input's offsets)")
    co.add_argument("--out", default="completions.svg", help="SVG file (default: completions.svg)")
    co.add_argument("--json", help="also write the input and continuations (stroke-3) to this JSON file")
    co.set_defaults(func=cmd_complete)

    def vae_input(sub):
        model_flag(sub)
        sub.add_argument("--data", nargs="+", required=True, help=".npz or .ndjson files to take drawings from")
        sub.add_argument("--split", choices=[*SPLITS, "all"], default="test",
                         help="split to take them from (default: test)")
        sampling_flags(sub, 0.2, "decoding close to the encoded drawing")

    rc = commands.add_parser("reconstruct", help="VAE: drawings beside their reconstructions, as SVG")
    vae_input(rc)
    rc.add_argument("--n", type=flags.count(), default=8, help="how many drawings (default: 8)")
    rc.add_argument("--out", default="reconstructions.svg", help="SVG file (default: reconstructions.svg)")
    rc.set_defaults(func=cmd_reconstruct)

    ip = commands.add_parser("interpolate", help="VAE: slerp between two encoded drawings, as SVG")
    vae_input(ip)
    ip.add_argument("--first", type=flags.index, default=0, help="index of the first drawing in the split (default: 0)")
    ip.add_argument("--second", type=flags.index, default=1, help="index of the second drawing (default: 1)")
    ip.add_argument("--steps", type=flags.ranged(int, minimum=2, maximum=flags.MAX_COUNT), default=8,
                    help="drawings along the path, ends included (default: 8)")
    ip.add_argument("--out", default="interpolation.svg", help="SVG file (default: interpolation.svg)")
    ip.set_defaults(func=cmd_interpolate)

    im = commands.add_parser("import", help="a .gen.json or training checkpoint as a standalone model file",
                             description="Convert a sketch-rnn-js .gen.json, or slim a training checkpoint "
                                         "(dropping optimizer and RNG state), into a standalone model file.")
    im.add_argument("file", help="a .gen.json file or a training checkpoint (best.pt / last.pt)")
    im.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    im.set_defaults(func=cmd_import)

    ex = commands.add_parser("export", help="a model as sketch-rnn-js .gen.json, for @magenta/sketch in web pages",
                             description="Write a decoder-only LSTM model (20 mixtures) in sketch-rnn-js's format, "
                                         "weights quantised to int16 as the format does; `sketchrnn eval --model "
                                         "NAME.gen.json` measures what that costs.")
    ex.add_argument("model", nargs="?", help="checkpoint (.pt) to export (default: the shipped sheep model)")
    ex.add_argument("--out", required=True, help="file to write (NAME.gen.json)")
    ex.set_defaults(func=cmd_export)
