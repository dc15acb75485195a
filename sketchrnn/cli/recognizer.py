"""``sketchrnn recognizer build`` and ``sketchrnn guess``: what a drawing is, among the models served."""

import argparse
from pathlib import Path

from sketchrnn.catalog import RECOGNIZER_FILE, class_name, load_catalog, model_files
from sketchrnn.cli import flags
from sketchrnn.cli.flags import add_config_flags, config_from_args
from sketchrnn.recognizer import RecognizerConfig, build, load_for
from sketchrnn.scoring import likelihood_guess
from sketchrnn.strokes import read_drawing, read_ndjson, stroke3_to_polylines


def people_drawings(folder: Path, names: list[str]) -> dict[str, list]:
    """Quick, Draw! ndjson files in ``folder`` (``palm tree.ndjson`` or ``palm_tree.ndjson``) for the
    classes in ``names``, as stroke-3 drawings by class; other classes' files are left alone."""
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder of .ndjson drawings")
    files = {class_name(p.stem): p for p in sorted(folder.glob("*.ndjson"))}
    if not files:
        raise ValueError(f"{folder}: no .ndjson drawings in this folder (sketchrnn data download fetches them)")
    return {name: [r.strokes for r in read_ndjson(files[name])[0]] for name in names if name in files}


def cmd_build(args: argparse.Namespace) -> int:
    files = model_files(args.models)
    cfg = config_from_args(RecognizerConfig(), args)
    drawings = people_drawings(Path(args.drawings), list(files)) if args.drawings else None
    if drawings is not None:
        print(f"people's drawings for {len(drawings)} of {len(files)} models: "
              f"{sum(map(len, drawings.values()))} in all")
    recognizer = build(files, drawings, cfg, progress=not args.quiet)
    out = Path(args.out) if args.out else Path(files[next(iter(files))]).parent / RECOGNIZER_FILE
    flags.check_output(out, list(files.values()))
    recognizer.save(out)
    print(f"recognizer for {len(files)} models ({', '.join(files)}) written to {out}")
    return 0


def cmd_guess(args: argparse.Namespace) -> int:
    files = model_files(args.models)
    strokes = stroke3_to_polylines(read_drawing(args.drawing, args.index))
    recognizer = load_for(files, args.recognizer)
    if recognizer is not None:
        ranked, how = recognizer.guess(strokes), f"recognizer {recognizer.path}"
    else:
        ranked, how = likelihood_guess(load_catalog(files), strokes), "the models' likelihoods (no recognizer)"
    for name, p in ranked[: args.top]:
        print(f"{name:20s} {p:6.1%}")
    print(f"({how})")
    return 0


def add_commands(commands) -> None:
    rec = commands.add_parser("recognizer", help="build the model that guesses what a drawing is")
    actions = rec.add_subparsers(dest="action", required=True, metavar="ACTION")
    b = actions.add_parser("build", help="train a recognizer for a folder of models",
                           description="Train a stroke classifier on drawings sampled from each model, "
                                       "simplified as Google simplified people's drawings, and on people's "
                                       "own drawings (--drawings); recognizer.pt in the models' folder is "
                                       "what `sketchrnn serve --model DIR` picks up.")
    b.add_argument("--models", nargs="+", required=True, help="model files or folders of them (as serve --model)")
    b.add_argument("--drawings", help="a folder of Quick, Draw! ndjson files, one per class "
                                      "(`sketchrnn data download CLASS... --dir DIR`); without it the "
                                      "recognizer learns from the models' own drawings only, and is right less often")
    b.add_argument("--out", help="where to write it (default: recognizer.pt in the first --models folder)")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_flags(b, RecognizerConfig())
    b.set_defaults(func=cmd_build)

    g = commands.add_parser("guess", help="what a drawing looks like: the top models, with probabilities")
    g.add_argument("drawing", help="a drawing: .json (as `complete --input`), .ndjson (with --index) or .npz")
    g.add_argument("--models", nargs="+", required=True, help="model files or folders of them")
    g.add_argument("--recognizer", help="a recognizer built for these models (default: recognizer.pt in a "
                                        "--models folder; else the models' likelihoods)")
    g.add_argument("--index", type=flags.ranged(minimum=0), default=0,
                   help="which drawing of an .ndjson or .npz (default: 0)")
    g.add_argument("--top", type=flags.count(1000), default=3, help="how many guesses to print (default: 3)")
    g.set_defaults(func=cmd_guess)

