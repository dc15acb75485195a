"""The ``sketchrnn`` command line: one entry point, one subcommand per job."""

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version

from sketchrnn.checkpoints import ModelFileError
from sketchrnn.cli import data, models, recognizer, rnn, serve, sketch, text
from sketchrnn.strokes import StrokeFormatError


def installed_version() -> str:
    """The version pip installed (the package's metadata), so that it is the one in pyproject.toml."""
    try:
        return version("sketchrnn")
    except PackageNotFoundError:  # imported from a checkout that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sketchrnn", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    rnn.add_commands(commands)
    data.add_commands(commands)
    sketch.add_commands(commands)
    serve.add_commands(commands)
    text.add_commands(commands)
    models.add_commands(commands)
    recognizer.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (StrokeFormatError, ModelFileError, ValueError) as e:  # TextError, CheckpointError: ValueErrors
        print(f"sketchrnn: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file the command could not read or write: its name and the reason
        print(f"sketchrnn: error: {e.filename or ''}{': ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
        return 2
    except MemoryError:
        print("sketchrnn: error: out of memory; ask for less (fewer or shorter drawings, a smaller model)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a second Ctrl-C during training: stop at once, no traceback
        print("sketchrnn: interrupted", file=sys.stderr)
        return 130
