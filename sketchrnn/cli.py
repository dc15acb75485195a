"""The ``sketchrnn`` command line: one entry point, one subcommand per job."""

import argparse
import itertools
import json
import sys
from pathlib import Path

from sketchrnn.core import CELLS


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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
