"""``sketchrnn rnn``: experiments on the recurrent core itself."""

import argparse
import itertools
import json
from pathlib import Path

from sketchrnn.cli import flags
from sketchrnn.cli.flags import add_config_flags, config_from_args
from sketchrnn.core import CELLS
from sketchrnn.experiments.long_range import AddingConfig, decay_per_step, gradient_flow, run_adding_task
from sketchrnn.plot import PALETTE, Series, line_chart


def cmd_adding_task(args: argparse.Namespace) -> int:
    cfg = config_from_args(AddingConfig(), args)
    out = Path(args.out or f"runs/adding-{cfg.cell}-T{cfg.length}")
    _, summary = run_adding_task(cfg, out, resume=args.resume, progress=not args.quiet, overwrite=args.overwrite)
    verdict = "solved (MSE < 0.01)" if summary["solved"] else "not solved"
    if summary["status"] != "budget":
        verdict += f"; run {summary['status']}, continue it with --resume"
    print(f"adding task T={cfg.length} cell={cfg.cell}: test MSE {summary['test_mse']:.4f} after "
          f"{summary['step']} steps, {summary['minutes']} min; always answering 1.0 scores "
          f"{summary['baseline_mse']:.3f} on the same test set (0.167 in expectation); {verdict}")
    if args.json:
        print(json.dumps({k: summary[k] for k in ("test_mse", "baseline_mse", "step", "minutes", "solved")}))
    return 0


def cmd_gradient_flow(args: argparse.Namespace) -> int:
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    unknown = [c for c in cells if c not in CELLS]
    if unknown:
        raise SystemExit(f"--cells: unknown cell(s) {', '.join(unknown)}; choose from {', '.join(CELLS)}")
    out = Path(args.out)
    flags.check_output(out, [])
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


def add_commands(commands) -> None:
    rnn = commands.add_parser("rnn", help="experiments on the recurrent core itself",
                              description="Experiments that show what each recurrent cell can learn.")
    experiments = rnn.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")

    adding = experiments.add_parser("adding-task", help="Hochreiter & Schmidhuber's adding problem",
                                    description="Train a cell on the adding problem; report test MSE "
                                                "against always answering 1.0 (0.167 in expectation).")
    add_config_flags(adding, AddingConfig())
    adding.add_argument("--out", help="run folder for checkpoints and metrics (default: runs/adding-CELL-TLENGTH)")
    adding.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    adding.add_argument("--overwrite", action="store_true", help="start over in an --out that holds a run")
    adding.add_argument("--json", action="store_true", help="also print the result as one JSON line")
    adding.add_argument("--quiet", action="store_true", help="no progress bar")
    adding.set_defaults(func=cmd_adding_task)

    flow = experiments.add_parser("gradient-flow", help="gradient norm against lag, per cell, as SVG",
                                  description="Plot |dLoss/dh_t| against the lag, at initialisation and "
                                              "after a little adding-task training, one line per cell.")
    flow.add_argument("--cells", default="rnn,gru,lstm", help="comma-separated cells (default: rnn,gru,lstm)")
    flow.add_argument("--steps", type=flags.ranged(int, minimum=2, maximum=10_000),
                      default=100, help="sequence length, i.e. the largest lag (default: 100)")
    flow.add_argument("--hidden", type=flags.count(8192), default=128, help="hidden units (default: 128)")
    flow.add_argument("--train-steps", type=flags.count(None), default=300,
                      help="adding-task steps before the second measurement (default: 300)")
    flow.add_argument("--seed", type=flags.seed, default=0, help="random seed (default: 0)")
    flow.add_argument("--out", default="flow.svg", help="SVG file to write (default: flow.svg); "
                                                        "training runs go in a folder beside it")
    flow.add_argument("--quiet", action="store_true", help="no progress bars")
    flow.set_defaults(func=cmd_gradient_flow)
