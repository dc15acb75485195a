"""``sketchrnn models list|download``: the catalog of models, what is available and what is cached."""

import argparse
from pathlib import Path

from sketchrnn.catalog import MAGENTA_MODELS, MAGENTA_MODELS_URL, cache_dir, cached_model_files, download_models


def cmd_list(args: argparse.Namespace) -> int:
    directory = Path(args.dir).expanduser() if args.dir else cache_dir() / "models"
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"--dir {directory}: a file, not a folder of models")
    cached = cached_model_files(directory)
    print(f"{len(cached)} of Magenta's {len(MAGENTA_MODELS)} hosted models cached in {directory}:")
    for name in MAGENTA_MODELS:
        print(f"  {'*' if name in cached else ' '} {name}")
    for name in sorted(set(cached) - set(MAGENTA_MODELS)):
        print(f"  * {name} ({cached[name].name}, not one of Magenta's)")
    print("(* cached; `sketchrnn models download NAME...` fetches more, `sketchrnn serve` serves the cache)")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    if not args.names and not args.all:
        raise ValueError("name the models to download (e.g. cat bird), or pass --all")
    names = MAGENTA_MODELS if args.all else args.names
    directory = Path(args.dir).expanduser() if args.dir else None
    paths = download_models(names, directory, args.base_url, progress=not args.quiet)
    print(f"{len(paths)} model(s) in {paths[0].parent}: {', '.join(p.name.removesuffix('.gen.json') for p in paths)}")
    return 0


def add_commands(commands) -> None:
    models = commands.add_parser("models", help="the catalog: Magenta's pretrained models, downloaded and cached",
                                 description="Models by name. The cache is $SKETCHRNN_CACHE/models, else "
                                             "$XDG_CACHE_HOME/sketchrnn/models, else ~/.cache/sketchrnn/models; "
                                             "`sketchrnn serve` without --model serves it beside the shipped model.")
    actions = models.add_subparsers(dest="action", required=True, metavar="ACTION")

    def folder(sub):
        sub.add_argument("--dir", help="the model folder (default: the user cache's models/)")

    ls = actions.add_parser("list", help="Magenta's hosted models, and which are cached")
    folder(ls)
    ls.set_defaults(func=cmd_list)
    dl = actions.add_parser("download", help="fetch NAME.gen.json from Magenta's storage into the cache",
                            description="Download decoders; an interrupted download resumes, and a file "
                                        "takes its name only once it loads as a model.")
    dl.add_argument("names", nargs="*", metavar="NAME", help="Quick, Draw! classes, e.g. cat palm_tree")
    dl.add_argument("--all", action="store_true", help=f"every model Magenta hosts ({len(MAGENTA_MODELS)})")
    folder(dl)
    dl.add_argument("--base-url", default=MAGENTA_MODELS_URL, help="where the models live (default: Magenta's)")
    dl.add_argument("--quiet", action="store_true", help="no progress bar")
    dl.set_defaults(func=cmd_download)
