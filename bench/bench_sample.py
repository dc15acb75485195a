"""The sampling step against the hardware's floor, in one run: ``Batch.step`` (the step
`sketchrnn sample/complete` and the server take) on Google's monkey decoder (LSTM 512, 20
mixtures) beside the time one matrix-vector product over the same weights takes on one thread
(numpy's sgemv: the weights must be read once per step whatever the code does).

    python bench/bench_sample.py [--model PATH] [--rounds 5] [--threads 2]
    python bench/bench_sample.py --spread ../shared/data/models [--spread-rows 50]

Batch 1, one thread: one stream, as the browser asks (no seed), and a seeded one (exactly
repeatable: its rows always get matrix-vector products of their own). Batch 64, --threads: 64
streams kept running the way the server keeps them, each finished drawing replaced by a new
one, points drawn per second. ``--spread DIR``: instead, one thread (a server process's, with
two workers on two cores) stepping rows spread over every decoder in DIR in one batch, beside
the same rows on the first of them alone: what a step over many models costs.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy and torch load their thread pools

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sketchrnn.catalog import model_files  # noqa: E402
from sketchrnn.checkpoints import load_model  # noqa: E402
from sketchrnn.sampler import Batch, LSTMStep, Request, Settings, set_threads  # noqa: E402

MONKEY = "../shared/data/models/monkey.gen.json"


def per_call(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def products_time(model, rows: int, calls: int) -> float:
    """Seconds for the matrix products a decoder step at ``rows`` rows cannot avoid, with the
    weights laid out as the sampler's LSTMStep lays them ([x, h] @ W, then h @ the head's W), on
    numpy's BLAS threads. One row is a vector: the weights read once (sgemv)."""
    step = LSTMStep([model])
    weight, head = step.weight[0], step.head[0]
    shape = () if rows == 1 else (rows,)
    xh = np.random.rand(*shape, weight.shape[0]).astype(np.float32)
    h = np.random.rand(*shape, head.shape[0]).astype(np.float32)
    return per_call(lambda: (xh @ weight, h @ head), calls)


def step_time(models: list, rows: int, steps: int, seeded: bool = False) -> tuple[float, float]:
    """(seconds per step, points drawn per second) for ``rows`` streams drawing from nothing, each
    its own request, stream i on models[i mod len(models)] (all in one batch), a finished one
    replaced at once by a new one on the same model."""
    started = iter(range(10**9))
    model_of: dict[Request, int] = {}

    def add(batch: Batch, model: int, count: int) -> None:
        requests = [Request(np.zeros((0, 3), np.float32), models[model].scale_factor, 1,
                            Settings(seed=next(started) if seeded else None)) for _ in range(count)]
        model_of.update(dict.fromkeys(requests, model))
        batch.add(requests, model)

    batch = Batch([loaded.model for loaded in models])
    for model in range(len(models)):
        add(batch, model, len(range(model, rows, len(models))))
    drawn, start = 0, None
    # 100 steps warm up: by then drawings are ending and being replaced every few steps, as in a
    # server's steady state (the first drawings all start together and end after ~50-150 points).
    for step in range(steps + 100):
        if step == 100:
            drawn, start = 0, time.perf_counter()
        drawn += int(batch.step().drawn.sum())
        for request in batch.drop_finished():
            add(batch, model_of.pop(request), 1)
    seconds = time.perf_counter() - start
    return seconds / steps, drawn / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=MONKEY, help=f"a Sketch-RNN model file (default: {MONKEY})")
    parser.add_argument("--steps", type=int, default=300, help="timed steps per round (default: 300)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians reported (default: 5)")
    parser.add_argument("--threads", type=int, default=2,
                        help="threads at batch 64, torch's and numpy's BLAS (default: 2, the cores)")
    parser.add_argument("--spread", metavar="DIR", help="time rows spread over every model in DIR instead (see above)")
    parser.add_argument("--spread-rows", type=int, default=50,
                        help="rows with --spread (default: 50, 100 clients over two server processes)")
    args = parser.parse_args()
    if args.spread:
        spread(args)
        return
    loaded = load_model(args.model)
    results: dict[str, list[float]] = {name: [] for name in ("floor", "batch 1", "batch 1 seeded", "batch 64",
                                                              "batch 64 points/s", "batch 64 floor")}
    with torch.no_grad():
        for _ in range(args.rounds):
            set_threads(1)
            results["floor"].append(products_time(loaded.model, 1, 2000))
            results["batch 1"].append(step_time([loaded], 1, args.steps)[0])
            results["batch 1 seeded"].append(step_time([loaded], 1, args.steps, seeded=True)[0])
            set_threads(args.threads)
            results["batch 64 floor"].append(products_time(loaded.model, 64, 200))
            seconds, points = step_time([loaded], 64, args.steps)
            results["batch 64"].append(seconds)
            results["batch 64 points/s"].append(points)
    m = {name: statistics.median(v) for name, v in results.items()}

    def times_floor(name: str, floor: str = "floor") -> float:
        return statistics.median(t / f for t, f in zip(results[name], results[floor]))

    print(f"{loaded.name} ({loaded.model.config.cell} {loaded.model.config.hidden}), torch {torch.__version__}, "
          f"median of {args.rounds} rounds:")
    print(f"weight-read floor (numpy sgemv over the step's weights, 1 thread): {m['floor'] * 1e3:.3f} ms")
    print(f"Batch.step, batch 1, 1 thread:          {m['batch 1'] * 1e3:.3f} ms per point = "
          f"{times_floor('batch 1'):.1f}x the floor")
    print(f"Batch.step, batch 1 seeded, 1 thread:   {m['batch 1 seeded'] * 1e3:.3f} ms per point = "
          f"{times_floor('batch 1 seeded'):.1f}x the floor")
    print(f"Batch.step, batch 64, {args.threads} thread(s):      {m['batch 64'] * 1e3:.3f} ms per step, "
          f"{m['batch 64 points/s']:,.0f} points/s drawn; its matrix products alone {m['batch 64 floor'] * 1e3:.3f} "
          f"ms = {64 / m['batch 64 floor']:,.0f} rows/s (step = {times_floor('batch 64', 'batch 64 floor'):.2f}x them)")


def spread(args) -> None:
    models = [load_model(path) for path in model_files([args.spread]).values()]
    set_threads(1)
    one, many = [], []
    with torch.no_grad():
        for _ in range(args.rounds):
            one.append(step_time(models[:1], args.spread_rows, args.steps)[0])
            many.append(step_time(models, args.spread_rows, args.steps)[0])
    one, many = statistics.median(one), statistics.median(many)
    print(f"Batch.step, {args.spread_rows} rows, 1 thread, median of {args.rounds} rounds: on {models[0].name} alone "
          f"{one * 1e3:.2f} ms; spread over {len(models)} models {many * 1e3:.2f} ms ({one / many:.2f}x the rows/s)")


if __name__ == "__main__":
    main()
