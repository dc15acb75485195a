"""``sketchrnn text``: character- and word-level language models on the same core."""

import argparse
import json
import math
import sys

from sketchrnn.cli import flags
from sketchrnn.cli.flags import add_config_flags, config_from_args, json_line
from sketchrnn.core import distributed
from sketchrnn.text import (
    TextTrainConfig,
    Vocabulary,
    generate,
    load_text_model,
    nats_per_symbol,
    read_text,
    tokenize,
    train_text_model,
)


def cmd_train(args: argparse.Namespace) -> int:
    summary = train_text_model(args.data, args.out, config_from_args(TextTrainConfig(), args), args.resume,
                               progress=not args.quiet, overwrite=args.overwrite)
    if args.quiet and distributed.current().main:
        print(json_line(summary))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    generate(load_text_model(args.model), args.prime, args.length, args.temperature, args.top_k, args.seed,
             out=sys.stdout)
    print()
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    model = load_text_model(args.model)
    vocab = Vocabulary(model.cfg.level, model.cfg.vocab)
    ids = vocab.encode(tokenize(read_text(args.data), vocab.level), args.data)
    nats = nats_per_symbol(model, ids)
    result = {"nats": nats, "symbols": int(ids.numel()), "level": vocab.level}
    result["bits_per_char" if vocab.level == "char" else "perplexity"] = (
        nats / math.log(2) if vocab.level == "char" else math.exp(nats))
    if args.json:
        print(json.dumps(result))
    elif vocab.level == "char":
        print(f"{args.model} on {args.data}: {nats:.4f} nats per character ({result['bits_per_char']:.4f} bits) "
              f"over {result['symbols']} characters")
    else:
        print(f"{args.model} on {args.data}: {nats:.4f} nats per word (perplexity {result['perplexity']:.1f}) "
              f"over {result['symbols']} words")
    return 0


def add_commands(commands) -> None:
    text = commands.add_parser("text", help="character- and word-level language models on the same core")
    actions = text.add_subparsers(dest="action", required=True, metavar="ACTION")
    tt = actions.add_parser("train", help="train a language model with truncated BPTT",
                            description="Train on a UTF-8 file; the last 10% is held out for validation. "
                                        "The defaults are the 5-minute recipe (BENCHMARKS.md).")
    tt.add_argument("--data", required=True, help="UTF-8 text file")
    tt.add_argument("--out", required=True, help="run folder: checkpoints and metrics")
    add_config_flags(tt, TextTrainConfig())
    tt.add_argument("--resume", action="store_true", help="continue the run in --out (same file and model, or it "
                                                          "refuses)")
    tt.add_argument("--overwrite", action="store_true", help="start over in an --out that holds a run, "
                                                             "replacing its checkpoints and metrics")
    tt.add_argument("--quiet", action="store_true", help="no progress bar; print the summary as JSON")
    tt.set_defaults(func=cmd_train)

    ts = actions.add_parser("sample", help="stream generated text to stdout")
    ts.add_argument("--model", required=True, help="a text model checkpoint (best.pt)")
    ts.add_argument("--prime", default="", help="text to continue, read in one pass (default: none)")
    ts.add_argument("--length", type=flags.count(None), default=500, help="symbols to generate (default: 500)")
    ts.add_argument("--temperature", type=flags.positive, default=0.8, help="randomness (default: 0.8)")
    ts.add_argument("--top-k", type=flags.ranged(int, minimum=0), default=0,
                    help="sample among the k likeliest only; 0 = all (default: 0)")
    ts.add_argument("--seed", type=flags.seed, help="random seed for repeatable text")
    ts.set_defaults(func=cmd_sample)

    te = actions.add_parser("eval", help="nats per symbol on a file, state carried through")
    te.add_argument("--model", required=True, help="a text model checkpoint")
    te.add_argument("--data", required=True, help="UTF-8 text file")
    te.add_argument("--json", action="store_true", help="print the result as one JSON object (for scripts)")
    te.set_defaults(func=cmd_eval)
