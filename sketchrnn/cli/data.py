"""``sketchrnn data``: inspect, convert, render and download stroke files."""

import argparse
import sys
from pathlib import Path

import numpy as np

from sketchrnn.catalog import QUICKDRAW_URL, download_drawings
from sketchrnn.cli import flags
from sketchrnn.data import load_sketches, scale_factor
from sketchrnn.render import render_grid
from sketchrnn.strokes import SPLITS, Record, StrokeFormatError, write_ndjson, write_npz


def _load(args):
    data = load_sketches(args.files, skip_bad=args.skip_bad, simplify=not getattr(args, "no_simplify", False),
                         seed=args.seed)
    if data.skipped:
        print(f"skipped {data.skipped} bad drawing(s)", file=sys.stderr)
    return data


def cmd_info(args: argparse.Namespace) -> int:
    data = _load(args)
    print(f"{'split':<6} {'class':<24} {'drawings':>8} {'p50':>5} {'p90':>5} {'p99':>5} {'max':>5}"
          "  (points per drawing)")
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


def cmd_convert(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix not in (".npz", ".ndjson"):
        raise StrokeFormatError(f"{out}: unknown output format {out.suffix!r}; use .npz or .ndjson")
    flags.check_output(out, args.files)
    data = _load(args)
    splits = SPLITS if args.split == "all" else (args.split,)
    if out.suffix == ".npz":
        write_npz(out, {s: data.splits[s].drawings if s in splits else [] for s in SPLITS})
    elif out.suffix == ".ndjson":
        records = [Record(d, k, data.classes[label], s) for s in splits
                   for d, label, k in zip(data.splits[s].drawings, data.splits[s].labels, data.splits[s].key_ids)]
        write_ndjson(out, records)
    total = sum(len(data.splits[s]) for s in splits)
    print(f"wrote {total} drawings to {out}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    flags.check_output(args.out, args.files)
    data = _load(args)
    sketches = data.splits[args.split]
    if len(sketches) == 0:
        raise StrokeFormatError(f"{', '.join(args.files)}: the {args.split} split is empty")
    chosen = np.random.default_rng(args.seed).permutation(len(sketches))[: args.n]
    render_grid([sketches.drawings[i] for i in chosen], args.out,
                titles=[data.classes[sketches.labels[i]] for i in chosen])
    print(f"wrote {len(chosen)} drawings to {args.out}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    directory = Path(args.dir).expanduser() if args.dir else None
    paths = download_drawings(args.classes, args.max, directory, args.base_url, progress=not args.quiet)
    print(f"{len(paths)} class(es), up to {args.max} drawings each, in {paths[0].parent}: "
          f"{', '.join(p.name for p in paths)}")
    return 0


def add_commands(commands) -> None:
    data = commands.add_parser("data", help="inspect, convert and render stroke files",
                               description="Stroke files: Sketch-RNN .npz and Quick, Draw! ndjson "
                                           "(simplified or raw); each file is one class.")
    actions = data.add_subparsers(dest="action", required=True, metavar="ACTION")

    def stroke_files(sub):
        sub.add_argument("files", nargs="+", metavar="FILE", help=".npz or .ndjson files, one class each")
        sub.add_argument("--skip-bad", action="store_true",
                         help="skip and count bad drawings instead of stopping at the first")
        sub.add_argument("--seed", type=flags.seed, default=0,
                         help="seed of the ndjson train/valid/test split (default: 0)")

    info = actions.add_parser("info", help="counts, lengths and scale factor per split and class")
    stroke_files(info)
    info.set_defaults(func=cmd_info)

    convert = actions.add_parser("convert", help="convert between .npz and .ndjson",
                                 description="Convert stroke files; OUT's suffix picks .npz or "
                                             ".ndjson (Quick, Draw! simplified form).")
    stroke_files(convert)
    convert.add_argument("--out", required=True, help="output file, .npz or .ndjson")
    convert.add_argument("--split", choices=["all", *SPLITS], default="all",
                         help="which split(s) to write (default: all; .npz keeps them apart)")
    convert.add_argument("--no-simplify", action="store_true",
                         help="keep raw drawings as they are instead of Google's simplification")
    convert.set_defaults(func=cmd_convert)

    render = actions.add_parser("render", help="a grid of drawings as SVG")
    stroke_files(render)
    render.add_argument("--n", type=flags.count(), default=16, help="how many drawings (default: 16)")
    render.add_argument("--split", choices=SPLITS, default="test", help="which split to draw from (default: test)")
    render.add_argument("--out", default="grid.svg", help="SVG file to write (default: grid.svg)")
    render.set_defaults(func=cmd_render)

    download = actions.add_parser("download", help="the first drawings of Quick, Draw! classes",
                                  description="Stream the first --max drawings of each class from Quick, Draw!'s "
                                              "public simplified ndjson (the rest of the file is never read); "
                                              "an interrupted download resumes.")
    download.add_argument("classes", nargs="+", metavar="CLASS", help="classes, e.g. cat 'palm tree' (or palm_tree)")
    download.add_argument("--max", type=flags.count(), default=1000, help="drawings per class (default: 1000)")
    download.add_argument("--dir", help="where to save CLASS.ndjson (default: the user cache's drawings/)")
    download.add_argument("--base-url", default=QUICKDRAW_URL, help="where the ndjson files live (default: Google's)")
    download.add_argument("--quiet", action="store_true", help="no progress bar")
    download.set_defaults(func=cmd_download)
