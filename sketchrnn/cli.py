"""The ``sketchrnn`` command line: one entry point, one subcommand per job."""

import argparse
import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np

from sketchrnn.checkpoints import ModelFileError
from sketchrnn.core import CELLS
from sketchrnn.strokes import SPLITS, StrokeFormatError


def cmd_rnn_adding_task(args: argparse.Namespace) -> int:
    from sketchrnn.long_range import AddingConfig, run_adding_task

    cfg = AddingConfig(cell=args.cell, length=args.length, hidden=args.hidden, batch=args.batch, lr=args.lr,
                       steps=args.steps, minutes=args.minutes, eval_every=args.eval_every, seed=args.seed)
    out = Path(args.out or f"runs/adding-{args.cell}-T{args.length}")
    _, summary = run_adding_task(cfg, out, resume=args.resume, progress=not args.quiet)
    verdict = "solved (MSE < 0.01)" if summary["solved"] else "not solved"
    if summary["status"] != "budget":
        verdict += f"; run {summary['status']}, continue it with --resume"
    print(f"adding task T={args.length} cell={args.cell}: test MSE {summary['test_mse']:.4f} after "
          f"{summary['step']} steps, {summary['minutes']} min; always answering 1.0 scores "
          f"{summary['baseline_mse']:.3f} on the same test set (0.167 in expectation); {verdict}")
    if args.json:
        print(json.dumps({k: summary[k] for k in ("test_mse", "baseline_mse", "step", "minutes", "solved")}))
    return 0


def cmd_rnn_gradient_flow(args: argparse.Namespace) -> int:
    from sketchrnn.long_range import decay_per_step, gradient_flow
    from sketchrnn.plot import PALETTE, Series, line_chart

    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    unknown = [c for c in cells if c not in CELLS]
    if unknown:
        raise SystemExit(f"--cells: unknown cell(s) {', '.join(unknown)}; choose from {', '.join(CELLS)}")
    out = Path(args.out)
    results = gradient_flow(cells, args.steps, args.hidden, args.train_steps, out.with_suffix(""),
                            seed=args.seed, progress=not args.quiet)
    lags = list(range(args.steps))
    series = []
    for r, color in zip(results, itertools.cycle(PALETTE)):  # one colour per cell
        series.append(Series(f"{r.cell} at init", lags, r.at_init, color))
        series.append(Series(f"{r.cell} after {r.train_steps} steps", lags, r.trained, color, dashed=True))
    line_chart(series, out, f"|dLoss/dh_t| against lag (adding task, T={args.steps})",
               "lag (steps back from the loss)", "gradient norm (log scale)", log_y=True)
    shown = [lag for lag in (0, 1, 2, 5, 10, 20, 50, 99, 199) if lag < args.steps]
    print("cell        when      " + "".join(f"lag {lag:<6}" for lag in shown) + "per-step factor")
    for r in results:
        for when, norms in (("init", r.at_init), (f"{r.train_steps} st", r.trained)):
            cols = "".join(f"{norms[lag]:<10.2e}" for lag in shown)
            print(f"{r.cell:<12}{when:<10}{cols}{decay_per_step(norms, args.steps - 1):.3f}")
    for r in results:
        print(f"{r.cell}: adding-task test MSE after {r.train_steps} steps: {r.trained_mse:.4f}")
    print(f"wrote {out}")
    return 0


def _load(args):
    from sketchrnn.data import load_sketches

    data = load_sketches(args.files, skip_bad=args.skip_bad, simplify=not getattr(args, "no_simplify", False),
                         seed=args.seed)
    if data.skipped:
        print(f"skipped {data.skipped} bad drawing(s)", file=sys.stderr)
    return data


def cmd_data_info(args: argparse.Namespace) -> int:
    from sketchrnn.data import scale_factor

    data = _load(args)
    print(f"{'split':<6} {'class':<24} {'drawings':>8} {'p50':>5} {'p90':>5} {'p99':>5} {'max':>5}  (points per drawing)")
    for split in SPLITS:
        sketches = data.splits[split]
        lengths = sketches.lengths()
        for label, name in enumerate(data.classes):
            n = lengths[sketches.labels == label]
            if len(n):
                p50, p90, p99 = np.percentile(n, [50, 90, 99])
                print(f"{split:<6} {name:<24} {len(n):>8} {p50:>5.0f} {p90:>5.0f} {p99:>5.0f} {n.max():>5}")
            else:
                print(f"{split:<6} {name:<24} {0:>8}")
    train = data.splits["train"]
    if len(train):
        print(f"scale factor (std of train offsets, dx and dy pooled, clamped to +-1000): "
              f"{scale_factor(train.drawings):.4f}")
    return 0


def cmd_data_convert(args: argparse.Namespace) -> int:
    from sketchrnn.strokes import Record, write_ndjson, write_npz

    data = _load(args)
    out = Path(args.out)
    splits = SPLITS if args.split == "all" else (args.split,)
    if out.suffix == ".npz":
        write_npz(out, {s: data.splits[s].drawings if s in splits else [] for s in SPLITS})
    elif out.suffix == ".ndjson":
        records = [Record(d, k, data.classes[label]) for s in splits
                   for d, label, k in zip(data.splits[s].drawings, data.splits[s].labels, data.splits[s].key_ids)]
        write_ndjson(out, records)
    else:
        raise StrokeFormatError(f"{out}: unknown output format {out.suffix!r}; use .npz or .ndjson")
    total = sum(len(data.splits[s]) for s in splits)
    print(f"wrote {total} drawings to {out}")
    return 0


def cmd_data_render(args: argparse.Namespace) -> int:
    from sketchrnn.render import render_grid

    data = _load(args)
    sketches = data.splits[args.split]
    if len(sketches) == 0:
        raise StrokeFormatError(f"{', '.join(args.files)}: the {args.split} split is empty")
    chosen = np.random.default_rng(args.seed).permutation(len(sketches))[: args.n]
    render_grid([sketches.drawings[i] for i in chosen], args.out,
                titles=[data.classes[sketches.labels[i]] for i in chosen])
    print(f"wrote {len(chosen)} drawings to {args.out}")
    return 0


def _model(args):
    from sketchrnn.checkpoints import load_model

    return load_model(args.model)


def cmd_train(args: argparse.Namespace) -> int:
    from sketchrnn.model import SketchRNNConfig
    from sketchrnn.train import SketchTrainConfig, train_sketch_model

    device = args.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    model_cfg = SketchRNNConfig(mode=args.mode, cell=args.cell, hidden=args.hidden, mixtures=args.mixtures,
                                dropout=args.dropout, encoder_hidden=args.encoder_hidden, z_size=args.z_size)
    cfg = SketchTrainConfig(batch_size=args.batch_size, lr=args.lr, lr_decay=args.lr_decay, min_lr=args.min_lr,
                            grad_clip=args.grad_clip, random_scale=args.random_scale, drop_prob=args.drop_prob,
                            kl_weight=args.kl_weight, kl_weight_start=args.kl_weight_start,
                            kl_decay_rate=args.kl_decay_rate, kl_tolerance=args.kl_tolerance, max_len=args.max_len,
                            overlong=args.overlong, bucket=not args.no_bucket, steps=args.steps,
                            minutes=args.minutes, eval_every=args.eval_every, seed=args.seed, device=device)
    summary = train_sketch_model(args.data, args.out, model_cfg, cfg, resume=args.resume, progress=not args.quiet)
    if args.quiet:  # the engine printed nothing: the summary as one JSON line
        print(json.dumps(summary))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from sketchrnn.data import SketchSet, load_sketches
    from sketchrnn.train import evaluate_nll

    loaded = _model(args)
    split = args.split or ("all" if args.range else "test")
    sketches = load_sketches(args.data, seed=args.seed).splits[split]
    if args.range:
        start, _, stop = args.range.partition(":")
        chosen = range(len(sketches))[slice(int(start or 0), int(stop) if stop else None)]
        if not chosen:
            raise StrokeFormatError(f"--range {args.range}: selects no drawing of the {len(sketches)} in {split}")
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


def _settings(args) -> "Settings":
    from sketchrnn.sampler import Settings

    return Settings(args.temperature, getattr(args, "pen_temperature", None), seed=args.seed,
                    max_points=args.max_points)


def cmd_sample(args: argparse.Namespace) -> int:
    from sketchrnn.render import render_grid
    from sketchrnn.sampler import sample

    loaded = _model(args)
    drawings = sample(loaded.model, loaded.scale_factor, args.n, _settings(args))
    render_grid(drawings, args.out)
    print(f"wrote {len(drawings)} samples of {loaded.name} (temperature {args.temperature}) to {args.out}")
    return 0


def cmd_complete(args: argparse.Namespace) -> int:
    from sketchrnn.render import render_grid
    from sketchrnn.sampler import Request, complete, prepare_strokes
    from sketchrnn.strokes import read_drawing, stroke3_to_polylines

    loaded = _model(args)
    partial = read_drawing(args.input, args.index)
    prefix, scale = prepare_strokes(stroke3_to_polylines(partial), loaded.max_len, args.scale, loaded.scale_factor)
    continuations = complete(loaded.model, Request(prefix, scale, args.n, _settings(args)))
    render_grid([np.concatenate([partial, c]) for c in continuations], args.out,
                generated_from=[len(partial)] * len(continuations))
    if args.json:
        Path(args.json).write_text(json.dumps({"input": partial.tolist(), "scale": scale,
                                               "continuations": [c.tolist() for c in continuations]}))
    lengths = ", ".join(str(len(c)) for c in continuations)
    print(f"wrote {len(continuations)} continuations of {args.input} ({lengths} points) by {loaded.name} to {args.out}")
    return 0


def _drawings_from(args):
    from sketchrnn.data import load_sketches

    sketches = load_sketches(args.data, seed=args.seed or 0).splits[args.split]
    if len(sketches) == 0:
        raise StrokeFormatError(f"{', '.join(args.data)}: the {args.split} split is empty")
    return sketches


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from sketchrnn.render import render_grid
    from sketchrnn.sampler import encode, sample

    loaded = _model(args)
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
    import torch

    from sketchrnn.render import render_grid
    from sketchrnn.sampler import encode, sample, slerp

    loaded = _model(args)
    sketches = _drawings_from(args)
    ends = [sketches.drawings[i] for i in (args.first, args.second)]
    za, zb = encode(loaded.model, loaded.scale_factor, ends)
    ts = np.linspace(0.0, 1.0, args.steps)
    z = torch.stack([slerp(za, zb, float(t)) for t in ts])
    drawings = sample(loaded.model, loaded.scale_factor, len(ts), _settings(args), z=z)
    render_grid(drawings, args.out, columns=len(ts), titles=[f"t={t:.2f}" for t in ts])
    print(f"wrote {len(ts)} drawings from drawing {args.first} to {args.second} to {args.out}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from sketchrnn.checkpoints import load_model
    from sketchrnn.server.app import Limits, run

    paths = []
    for given in args.model or [None]:
        if given is not None and Path(given).is_dir():
            found = sorted(p for p in Path(given).iterdir() if p.suffix == ".pt" or p.name.endswith(".gen.json"))
            if not found:
                raise ModelFileError(f"{given}: no .pt or .gen.json models in this folder")
            paths += found
        else:
            paths.append(given)
    models = {}
    for path in paths:
        loaded = load_model(path)
        name, i = loaded.name, 2
        while name in models:  # two files with one name: keep both, told apart
            name, i = f"{loaded.name}-{i}", i + 1
        models[name] = loaded
    limits = Limits(max_message_bytes=args.max_message_bytes, max_input_points=args.max_input_points,
                    max_points=args.max_points, max_n=args.max_n, requests_per_second=args.rate,
                    max_connections=args.max_connections, max_batch=args.max_batch)
    origins = None if args.origins is None else [None if o == "none" else o for o in args.origins]
    print(f"serving {', '.join(models)} on http://{args.host}:{args.port}/ (WebSocket at /ws); Ctrl-C stops")
    asyncio.run(run(models, args.host, args.port, limits, origins, args.token))
    print("stopped")
    return 0


def cmd_text_train(args: argparse.Namespace) -> int:
    from sketchrnn.core.engine import TrainConfig
    from sketchrnn.text import TextConfig, train_text_model

    cfg = TextConfig(level=args.level, cell=args.cell, hidden=args.hidden, layers=args.layers,
                     embedding=args.embedding, dropout=args.dropout, tied=args.tied)
    engine = TrainConfig(steps=args.steps, minutes=args.minutes, lr=args.lr, lr_decay=args.lr_decay,
                         min_lr=args.min_lr, warmdown=args.warmdown, precision=args.precision, clip=args.clip,
                         eval_every=args.eval_every, log_every=min(50, args.eval_every), seed=args.seed)
    summary = train_text_model(args.data, args.out, cfg, engine, args.bptt, args.batch_size, args.max_vocab,
                               args.state_reset, args.resume, progress=not args.quiet)
    if args.quiet:
        print(json.dumps(summary))
    return 0


def cmd_text_sample(args: argparse.Namespace) -> int:
    from sketchrnn.text import generate, load_text_model

    generate(load_text_model(args.model), args.prime, args.length, args.temperature, args.top_k, args.seed,
             out=sys.stdout)
    print()
    return 0


def cmd_text_eval(args: argparse.Namespace) -> int:
    from sketchrnn.text import Vocabulary, load_text_model, nats_per_symbol, read_text, tokenize

    model = load_text_model(args.model)
    vocab = Vocabulary(model.cfg.level, model.cfg.vocab)
    ids = vocab.encode(tokenize(read_text(args.data), vocab.level), args.data)
    nats = nats_per_symbol(model, ids)
    result = {"nats": nats, "symbols": int(ids.numel()), "level": vocab.level}
    result["bits_per_char" if vocab.level == "char" else "perplexity"] = (
        nats / math.log(2) if vocab.level == "char" else math.exp(nats))
    print(json.dumps(result))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from sketchrnn.checkpoints import load_model, save_model

    loaded = load_model(args.file)
    save_model(loaded, args.out)
    print(f"imported {loaded.name} (LSTM {loaded.model.config.hidden}, scale factor "
          f"{loaded.scale_factor:.4f}) to {args.out}")
    return 0


def cmd_models_download(args: argparse.Namespace) -> int:
    from sketchrnn.checkpoints import download_model

    print(f"saved {download_model(args.name, args.dir, args.base_url)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sketchrnn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rnn = commands.add_parser("rnn", help="experiments on the recurrent core itself",
                              description="Experiments that show what each recurrent cell can learn.")
    rnn_commands = rnn.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")

    adding = rnn_commands.add_parser("adding-task", help="Hochreiter & Schmidhuber's adding problem",
                                     description="Train a cell on the adding problem; report test MSE "
                                                 "against always answering 1.0 (0.167 in expectation).")
    adding.add_argument("--cell", choices=list(CELLS), default="lstm", help="recurrent cell (default: lstm)")
    adding.add_argument("--length", type=int, default=100, help="sequence length T (default: 100)")
    adding.add_argument("--hidden", type=int, default=128, help="hidden units (default: 128)")
    adding.add_argument("--batch", type=int, default=50, help="sequences per training step (default: 50)")
    adding.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    adding.add_argument("--steps", type=int, default=3000, help="training steps; 0 = no step limit (default: 3000)")
    adding.add_argument("--minutes", type=float, default=0.0, help="wall-clock budget in minutes; 0 = none (default: 0)")
    adding.add_argument("--eval-every", type=int, default=250, help="steps between test-set evaluations (default: 250)")
    adding.add_argument("--seed", type=int, default=0, help="random seed for data and initialisation (default: 0)")
    adding.add_argument("--out", help="run folder for checkpoints and metrics (default: runs/adding-CELL-TLENGTH)")
    adding.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    adding.add_argument("--json", action="store_true", help="also print the result as one JSON line")
    adding.add_argument("--quiet", action="store_true", help="no progress bar")
    adding.set_defaults(func=cmd_rnn_adding_task)

    flow = rnn_commands.add_parser("gradient-flow", help="gradient norm against lag, per cell, as SVG",
                                   description="Plot |dLoss/dh_t| against the lag, at initialisation and "
                                               "after a little adding-task training, one line per cell.")
    flow.add_argument("--cells", default="rnn,gru,lstm", help="comma-separated cells (default: rnn,gru,lstm)")
    flow.add_argument("--steps", type=int, default=100, help="sequence length, i.e. the largest lag (default: 100)")
    flow.add_argument("--hidden", type=int, default=128, help="hidden units (default: 128)")
    flow.add_argument("--train-steps", type=int, default=300,
                      help="adding-task steps before the second measurement (default: 300)")
    flow.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    flow.add_argument("--out", default="flow.svg", help="SVG file to write (default: flow.svg); "
                                                        "training runs go in a folder beside it")
    flow.add_argument("--quiet", action="store_true", help="no progress bars")
    flow.set_defaults(func=cmd_rnn_gradient_flow)

    data = commands.add_parser("data", help="inspect, convert and render stroke files",
                               description="Stroke files: Sketch-RNN .npz and Quick, Draw! ndjson "
                                           "(simplified or raw); each file is one class.")
    data_commands = data.add_subparsers(dest="action", required=True, metavar="ACTION")

    def stroke_files(sub):
        sub.add_argument("files", nargs="+", metavar="FILE", help=".npz or .ndjson files, one class each")
        sub.add_argument("--skip-bad", action="store_true",
                         help="skip and count bad drawings instead of stopping at the first")
        sub.add_argument("--seed", type=int, default=0, help="seed of the ndjson train/valid/test split (default: 0)")

    info = data_commands.add_parser("info", help="counts, lengths and scale factor per split and class")
    stroke_files(info)
    info.set_defaults(func=cmd_data_info)

    convert = data_commands.add_parser("convert", help="convert between .npz and .ndjson",
                                       description="Convert stroke files; OUT's suffix picks .npz or "
                                                   ".ndjson (Quick, Draw! simplified form).")
    stroke_files(convert)
    convert.add_argument("--out", required=True, help="output file, .npz or .ndjson")
    convert.add_argument("--split", choices=["all", *SPLITS], default="all",
                         help="which split(s) to write (default: all; .npz keeps them apart)")
    convert.add_argument("--no-simplify", action="store_true",
                         help="keep raw drawings as they are instead of Google's simplification")
    convert.set_defaults(func=cmd_data_convert)

    render = data_commands.add_parser("render", help="a grid of drawings as SVG")
    stroke_files(render)
    render.add_argument("--n", type=int, default=16, help="how many drawings (default: 16)")
    render.add_argument("--split", choices=SPLITS, default="test", help="which split to draw from (default: test)")
    render.add_argument("--out", default="grid.svg", help="SVG file to write (default: grid.svg)")
    render.set_defaults(func=cmd_data_render)

    from sketchrnn.checkpoints import MAGENTA_MODELS_URL
    from sketchrnn.model import SketchRNNConfig
    from sketchrnn.train import SketchTrainConfig

    m, t = SketchRNNConfig(), SketchTrainConfig()
    tr = commands.add_parser("train", help="train a Sketch-RNN model on stroke files",
                             description="Train a Sketch-RNN model; defaults are Magenta's.")
    tr.add_argument("--data", nargs="+", required=True, help=".npz or .ndjson files, one class each")
    tr.add_argument("--out", required=True, help="run folder: checkpoints, metrics, sample grids")
    tr.add_argument("--mode", choices=["decoder", "vae"], default=m.mode, help=f"unconditional or VAE (default: {m.mode})")
    tr.add_argument("--cell", choices=["lstm", "layer_norm", "hyper", "gru"], default=m.cell, help=f"decoder cell (default: {m.cell})")
    tr.add_argument("--hidden", type=int, default=m.hidden, help=f"decoder units (default: {m.hidden})")
    tr.add_argument("--mixtures", type=int, default=m.mixtures, help=f"mixture components (default: {m.mixtures})")
    tr.add_argument("--dropout", type=float, default=m.dropout, help=f"recurrent dropout (default: {m.dropout}, Magenta's keep 0.9)")
    tr.add_argument("--encoder-hidden", type=int, default=m.encoder_hidden, help=f"encoder units per direction (default: {m.encoder_hidden})")
    tr.add_argument("--z-size", type=int, default=m.z_size, help=f"latent size (default: {m.z_size})")
    tr.add_argument("--batch-size", type=int, default=t.batch_size, help=f"drawings per step (default: {t.batch_size})")
    tr.add_argument("--lr", type=float, default=t.lr, help=f"Adam learning rate (default: {t.lr})")
    tr.add_argument("--lr-decay", type=float, default=t.lr_decay, help=f"per-step decay toward --min-lr (default: {t.lr_decay})")
    tr.add_argument("--min-lr", type=float, default=t.min_lr, help=f"learning-rate floor (default: {t.min_lr})")
    tr.add_argument("--grad-clip", type=float, default=t.grad_clip, help=f"clip gradients by value (default: {t.grad_clip})")
    tr.add_argument("--random-scale", type=float, default=t.random_scale, help=f"per-axis scaling augmentation (default: {t.random_scale})")
    tr.add_argument("--drop-prob", type=float, default=t.drop_prob, help=f"point-dropping probability (default: {t.drop_prob})")
    tr.add_argument("--kl-weight", type=float, default=t.kl_weight, help=f"final KL weight (default: {t.kl_weight})")
    tr.add_argument("--kl-weight-start", type=float, default=t.kl_weight_start, help=f"KL weight at step 0 (default: {t.kl_weight_start})")
    tr.add_argument("--kl-decay-rate", type=float, default=t.kl_decay_rate, help=f"KL annealing rate R (default: {t.kl_decay_rate})")
    tr.add_argument("--kl-tolerance", type=float, default=t.kl_tolerance, help=f"free bits of KL (default: {t.kl_tolerance})")
    tr.add_argument("--max-len", type=int, default=t.max_len, help=f"longest drawing in points (default: {t.max_len})")
    tr.add_argument("--overlong", choices=["drop", "truncate"], default=t.overlong, help="what to do with longer drawings (default: drop)")
    tr.add_argument("--no-bucket", action="store_true", help="random batches instead of length buckets")
    tr.add_argument("--steps", type=int, default=t.steps, help=f"training steps, 0 = no limit (default: {t.steps})")
    tr.add_argument("--minutes", type=float, default=t.minutes, help="wall-clock budget in minutes, 0 = none (default: 0)")
    tr.add_argument("--eval-every", type=int, default=t.eval_every, help=f"steps between validations (default: {t.eval_every})")
    tr.add_argument("--seed", type=int, default=t.seed, help="seed for data order, augmentation and init (default: 0)")
    tr.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where to train (default: auto)")
    tr.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.set_defaults(func=cmd_train)

    def model_flag(sub):
        sub.add_argument("--model", help="checkpoint (.pt) or sketch-rnn-js .gen.json (default: the shipped sheep model)")
        sub.add_argument("--seed", type=int, default=None, help="random seed for repeatable output")

    ev = commands.add_parser("eval", help="mean NLL per point of a model on stroke files")
    model_flag(ev)
    ev.add_argument("--data", nargs="+", required=True, help=".npz or .ndjson files")
    ev.add_argument("--split", choices=[*SPLITS, "all"], help="split to score (default: test; all with --range)")
    ev.add_argument("--range", help="START:STOP drawings of the split (file order with --split all)")
    ev.add_argument("--json", action="store_true", help='print {"nll", "drawings", "points"} as JSON')
    ev.set_defaults(func=cmd_eval)

    sa = commands.add_parser("sample", help="unconditional drawings from a model, as an SVG grid")
    model_flag(sa)
    sa.add_argument("--n", type=int, default=16, help="how many drawings (default: 16)")
    sa.add_argument("--temperature", type=float, default=0.4, help="randomness; lower is tidier (default: 0.4)")
    sa.add_argument("--pen-temperature", type=float, help="randomness of the pen and mixture choice alone "
                                                          "(default: 0.5 + 0.5 x --temperature, as sketch-rnn-js)")
    sa.add_argument("--max-points", type=int, default=250, help="longest drawing (default: 250)")
    sa.add_argument("--out", default="samples.svg", help="SVG file (default: samples.svg)")
    sa.set_defaults(func=cmd_sample)

    co = commands.add_parser("complete", help="continue a partial drawing, n ways, as SVG")
    model_flag(co)
    co.add_argument("--input", required=True, help="ndjson file, JSON polylines [[[x, y], ...], ...] or JSON stroke-3")
    co.add_argument("--index", type=int, default=0, help="which drawing of an ndjson input (default: 0)")
    co.add_argument("--n", type=int, default=4, help="alternative continuations (default: 4)")
    co.add_argument("--temperature", type=float, default=0.25, help="randomness (default: 0.25, sketch-rnn-js's demos)")
    co.add_argument("--pen-temperature", type=float, help="randomness of the pen and mixture choice alone "
                                                          "(default: 0.5 + 0.5 x --temperature, as sketch-rnn-js)")
    co.add_argument("--scale", type=float, help="input units per model unit (default: the std of the "
                                                "simplified input's offsets)")
    co.add_argument("--max-points", type=int, default=250, help="longest continuation (default: 250)")
    co.add_argument("--out", default="completions.svg", help="SVG file (default: completions.svg)")
    co.add_argument("--json", help="also write the input and continuations (stroke-3) to this JSON file")
    co.set_defaults(func=cmd_complete)

    def vae_input(sub):
        model_flag(sub)
        sub.add_argument("--data", nargs="+", required=True, help=".npz or .ndjson files to take drawings from")
        sub.add_argument("--split", choices=[*SPLITS, "all"], default="test", help="split to take them from (default: test)")
        sub.add_argument("--temperature", type=float, default=0.2, help="decoding randomness (default: 0.2)")
        sub.add_argument("--max-points", type=int, default=250, help="longest drawing (default: 250)")

    rc = commands.add_parser("reconstruct", help="VAE: drawings beside their reconstructions, as SVG")
    vae_input(rc)
    rc.add_argument("--n", type=int, default=8, help="how many drawings (default: 8)")
    rc.add_argument("--out", default="reconstructions.svg", help="SVG file (default: reconstructions.svg)")
    rc.set_defaults(func=cmd_reconstruct)

    ip = commands.add_parser("interpolate", help="VAE: slerp between two encoded drawings, as SVG")
    vae_input(ip)
    ip.add_argument("--first", type=int, default=0, help="index of the first drawing in the split (default: 0)")
    ip.add_argument("--second", type=int, default=1, help="index of the second drawing (default: 1)")
    ip.add_argument("--steps", type=int, default=8, help="drawings along the path, ends included (default: 8)")
    ip.add_argument("--out", default="interpolation.svg", help="SVG file (default: interpolation.svg)")
    ip.set_defaults(func=cmd_interpolate)

    im = commands.add_parser("import", help="a .gen.json or training checkpoint as a standalone model file",
                             description="Convert a sketch-rnn-js .gen.json, or slim a training checkpoint "
                                         "(dropping optimizer and RNG state), into a standalone model file.")
    im.add_argument("file", help="a .gen.json file or a training checkpoint (best.pt / last.pt)")
    im.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    im.set_defaults(func=cmd_import)

    from sketchrnn.server.app import Limits

    lim = Limits()
    sv = commands.add_parser("serve", help="stream completions over a WebSocket, and serve the client",
                             description="Serve the drawing client at / and completions at /ws (protocol v1, "
                                         "docs/protocol.md); /healthz lists the models.")
    sv.add_argument("--model", nargs="+", help="checkpoints, .gen.json files or folders of them (default: the shipped sheep model)")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    sv.add_argument("--port", type=int, default=8765, help="port (default: 8765)")
    sv.add_argument("--origins", nargs="+", help="allowed Origin headers; 'none' admits clients without one "
                                                 "(default: this server and localhost, and none)")
    sv.add_argument("--token", help="require this token: ?token= in the URL or a first {\"type\": \"auth\"} message")
    sv.add_argument("--max-message-bytes", type=int, default=lim.max_message_bytes, help=f"largest message (default: {lim.max_message_bytes})")
    sv.add_argument("--max-input-points", type=int, default=lim.max_input_points, help=f"points in a request's strokes (default: {lim.max_input_points})")
    sv.add_argument("--max-points", type=int, default=lim.max_points, help=f"points per alternative (default: {lim.max_points})")
    sv.add_argument("--max-n", type=int, default=lim.max_n, help=f"alternatives per request (default: {lim.max_n})")
    sv.add_argument("--rate", type=float, default=lim.requests_per_second, help=f"requests per second per connection (default: {lim.requests_per_second:g})")
    sv.add_argument("--max-connections", type=int, default=lim.max_connections, help=f"concurrent connections (default: {lim.max_connections})")
    sv.add_argument("--max-batch", type=int, default=lim.max_batch, help=f"alternatives stepped at once per model (default: {lim.max_batch})")
    sv.set_defaults(func=cmd_serve)

    text = commands.add_parser("text", help="character- and word-level language models on the same core")
    text_commands = text.add_subparsers(dest="action", required=True, metavar="ACTION")
    tt = text_commands.add_parser("train", help="train a language model with truncated BPTT",
                                  description="Train on a UTF-8 file; the last 10% is held out for validation.")
    tt.add_argument("--data", required=True, help="UTF-8 text file")
    tt.add_argument("--out", required=True, help="run folder: checkpoints and metrics")
    tt.add_argument("--level", choices=["char", "word"], default="char", help="symbols (default: char)")
    tt.add_argument("--cell", choices=list(CELLS), default="lstm", help="recurrent cell (default: lstm)")
    tt.add_argument("--hidden", type=int, default=256, help="units per layer (default: 256)")
    tt.add_argument("--layers", type=int, default=2, help="stacked layers (default: 2)")
    tt.add_argument("--embedding", type=int, default=0, help="embedding size; 0 = --hidden (default: 0)")
    tt.add_argument("--dropout", type=float, default=0.2, help="dropout on embeddings, between layers, before output (default: 0.2)")
    tt.add_argument("--tied", action="store_true", help="tie input and output embeddings")
    tt.add_argument("--max-vocab", type=int, help="word level: keep this many words, the rest <unk>")
    tt.add_argument("--bptt", type=int, default=100, help="truncated BPTT length in symbols (default: 100)")
    tt.add_argument("--state-reset", type=float, default=0.02,
                    help="chance a stream starts a chunk from zero state, as sampling does (default: 0.02)")
    tt.add_argument("--batch-size", type=int, default=64, help="parallel streams; 64 fills 2 CPU cores better than 32 (default: 64)")
    tt.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate; 2e-3 for 512 units (default: 3e-3)")
    tt.add_argument("--lr-decay", type=float, default=1.0, help="per-step decay toward --min-lr (default: 1.0, none)")
    tt.add_argument("--min-lr", type=float, default=0.0, help="learning-rate floor (default: 0)")
    tt.add_argument("--warmdown", type=float, default=0.3, help="last fraction of the budget over which lr falls linearly to --min-lr (default: 0.3)")
    tt.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                    help="bf16: bfloat16 autocast, 2x on CPUs with AMX; auto: bf16 where that is fast (default: auto)")
    tt.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping (default: 1.0)")
    tt.add_argument("--steps", type=int, default=0, help="training steps, 0 = no limit (default: 0)")
    tt.add_argument("--minutes", type=float, default=5.0, help="wall-clock budget in minutes (default: 5)")
    tt.add_argument("--eval-every", type=int, default=500, help="steps between validations (default: 500)")
    tt.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    tt.add_argument("--resume", action="store_true", help="continue the run in --out")
    tt.add_argument("--quiet", action="store_true", help="no progress bar; print the summary as JSON")
    tt.set_defaults(func=cmd_text_train)
    ts = text_commands.add_parser("sample", help="stream generated text to stdout")
    ts.add_argument("--model", required=True, help="a text model checkpoint (best.pt)")
    ts.add_argument("--prime", default="", help="text to continue, read in one pass (default: none)")
    ts.add_argument("--length", type=int, default=500, help="symbols to generate (default: 500)")
    ts.add_argument("--temperature", type=float, default=0.8, help="randomness (default: 0.8)")
    ts.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest only; 0 = all (default: 0)")
    ts.add_argument("--seed", type=int, help="random seed for repeatable text")
    ts.set_defaults(func=cmd_text_sample)
    te = text_commands.add_parser("eval", help="nats per symbol on a file, state carried through")
    te.add_argument("--model", required=True, help="a text model checkpoint")
    te.add_argument("--data", required=True, help="UTF-8 text file")
    te.set_defaults(func=cmd_text_eval)

    models = commands.add_parser("models", help="Magenta's pretrained models")
    models_commands = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    dl = models_commands.add_parser("download", help="fetch CLASS.gen.json from Magenta's public storage")
    dl.add_argument("name", help="Quick, Draw! class, e.g. cat")
    dl.add_argument("--dir", default="~/.cache/sketchrnn", help="where to save it (default: ~/.cache/sketchrnn)")
    dl.add_argument("--base-url", default=MAGENTA_MODELS_URL, help="where the models live (default: Magenta's storage)")
    dl.set_defaults(func=cmd_models_download)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (StrokeFormatError, ModelFileError, ValueError) as e:  # TextError is a ValueError
        print(f"sketchrnn: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
