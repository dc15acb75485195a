"""Command-line flags generated from config dataclasses, configs read back from them, and the
one-line JSON summaries commands print with --quiet."""

import argparse
import dataclasses
import json
import math
import os
import types
import typing
from pathlib import Path

RANGE_KEYS = ("minimum", "maximum", "above", "below")  # a config field's range, in its metadata


def ranged(kind=int, minimum=None, maximum=None, above=None, below=None):
    """An argparse ``type``: ``kind`` read from the text, and refused unless finite and within the
    range (``minimum <= v <= maximum``, ``above < v < below``); argparse reports the refusal as
    ``argument --hidden: must be >= 1, got 0``."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if ((minimum is not None and value < minimum) or (above is not None and value <= above)
                or (maximum is not None and value > maximum) or (below is not None and value >= below)):
            raise argparse.ArgumentTypeError(f"must be {parse.range}, got {text}")
        return value

    (low, closed_low), (high, closed_high) = ((minimum, True) if minimum is not None else (above, False),
                                              (maximum, True) if maximum is not None else (below, False))
    if low is not None and high is not None:
        parse.range = f"in {'[' if closed_low else '('}{low}, {high}{']' if closed_high else ')'}"
    elif low is not None:
        parse.range = f"{'>=' if closed_low else '>'} {low}"
    else:
        parse.range = "" if high is None else f"{'<=' if closed_high else '<'} {high}"
    parse.__name__ = kind.__name__
    return parse


# The ranges flags share: one definition each.
MAX_COUNT = 10_000  # drawings or alternatives one command makes: beyond it is a typo, not a wish


def count(maximum: int | None = MAX_COUNT):
    """A number of things, at least one."""
    return ranged(int, minimum=1, maximum=maximum)


index = ranged(int, minimum=0)  # a position in a file or split, checked against its length when read
seed = ranged(int, minimum=0, maximum=2**32 - 1)
positive = ranged(float, above=0)
probability = ranged(float, minimum=0, maximum=1)
port = ranged(int, minimum=1, maximum=65535)


def add_config_flags(parser, config, prefix: str = "") -> None:
    """One flag per field of a config dataclass (and of the configs it composes, each in its own
    group) that carries a help: ``--field-name``, its default and help taken from the field, so a
    default is written once. A bool that defaults to True becomes ``--no-field-name``."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value, dest = getattr(config, f.name), prefix + f.name
        if dataclasses.is_dataclass(value):
            doc = (type(value).__doc__ or "").strip().split("\n\n")[0]
            add_config_flags(parser.add_argument_group(f"{f.name} ({type(value).__name__})", " ".join(doc.split())),
                             value, dest + ".")
            continue
        if "help" not in f.metadata:
            continue
        flag = "--" + f.name.replace("_", "-")
        extra = {"metavar": f.name.upper(), **{k: v for k, v in f.metadata.items()
                                                if k != "help" and k not in RANGE_KEYS}}
        if "choices" in extra:
            extra["metavar"] = "{" + ",".join(map(str, extra["choices"])) + "}"
        if isinstance(value, bool):
            flag = flag.replace("--", "--no-") if value else flag
            shown = " (on by default; this flag turns it off)" if value else ""
            parser.add_argument(flag, dest=dest, action="store_false" if value else "store_true",
                                help=f.metadata["help"] + shown)
            continue
        kind = hints[f.name]
        if isinstance(kind, types.UnionType):  # int | None: the flag takes an int
            kind = next(k for k in typing.get_args(kind) if k is not type(None))
        shown = "none" if value is None else value
        limits = {k: f.metadata[k] for k in RANGE_KEYS if k in f.metadata}
        if limits or kind is float:  # a float flag is at least finite
            kind = ranged(kind, **limits)
            shown = f"{shown}; {kind.range}" if kind.range else shown
        parser.add_argument(flag, dest=dest, type=kind, default=value,
                            help=f"{f.metadata['help']} (default: {shown})", **extra)


def check_output(out, inputs, flag: str = "--out") -> None:
    """Refuse to write ``out`` where it would replace one of the command's own ``inputs`` (files;
    None is skipped), a folder, or a training run's checkpoint (a live run resumes from it)."""
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"{flag} {out}: a folder; name the file to write")
    for given in filter(None, inputs):
        given = Path(given)
        if out.resolve() == given.resolve() or (out.exists() and given.exists() and os.path.samefile(out, given)):
            raise ValueError(f"{flag} {out}: that is also this command's input; write to another file")
    if out.name in ("last.pt", "best.pt") and any((out.parent / f).exists() for f in ("metrics.jsonl", "last.pt")):
        raise ValueError(f"{flag} {out}: a training run's checkpoint (--resume continues from it); "
                         "write the model outside the run folder")


def config_from_args(config, args: argparse.Namespace, prefix: str = ""):
    """The config with every field that has a flag set from the parsed arguments."""
    changes = {}
    for f in dataclasses.fields(config):
        value, dest = getattr(config, f.name), prefix + f.name
        if dataclasses.is_dataclass(value):
            changes[f.name] = config_from_args(value, args, dest + ".")
        elif hasattr(args, dest):
            changes[f.name] = getattr(args, dest)
    return dataclasses.replace(config, **changes)


def json_line(summary: dict) -> str:
    """A summary as one line of strict JSON: NaN (no validation ran yet) becomes null."""
    return json.dumps({k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in summary.items()},
                      allow_nan=False)
