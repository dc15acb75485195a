"""Command-line flags generated from config dataclasses, configs read back from them, and the
one-line JSON summaries commands print with --quiet."""

import argparse
import dataclasses
import json
import math
import types
import typing


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
        extra = {"metavar": f.name.upper(), **{k: v for k, v in f.metadata.items() if k != "help"}}
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
        parser.add_argument(flag, dest=dest, type=kind, default=value,
                            help=f"{f.metadata['help']} (default: {shown})", **extra)


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
