"""The recurrent core on a CUDA GPU: same results as on the CPU, training through the engine with
checkpoints that load and resume on the CPU, train-step speed against torch.nn.LSTM (cuDNN), and
`sketchrnn serve --device cuda` under 100 and 300 clients (bench/load.py's clients).

    python bench/gpu_check.py --out DIR
"""

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import torch
from common import serving
from load import measure
from torch import nn

from sketchrnn.core import CELLS, RecurrentLayer, RecurrentStack, compile_steps, make_cell
from sketchrnn.core.engine import TrainConfig, load_checkpoint, train
from sketchrnn.experiments.long_range import SequenceRegressor, adding_batch
from sketchrnn.text import TextConfig, TextTrainConfig, generate, load_text_model, train_text_model


def parity() -> None:
    torch.backends.cudnn.allow_tf32 = False  # compare exact float32 arithmetic
    torch.backends.cuda.matmul.allow_tf32 = False
    lengths = torch.tensor([50, 17, 1, 33])
    x = torch.randn(50, 4, 6)
    for name in CELLS:
        for fused in (True, False):
            torch.manual_seed(0)
            stack = RecurrentStack(name, 6, 64, num_layers=2, bidirectional=True, fused=fused).eval()
            out_cpu, _ = stack(x, lengths)
            out_gpu, states = stack.cuda()(x.cuda(), lengths)
            err = (out_gpu.cpu() - out_cpu).abs().max().item()
            print(f"parity {name:<10} fused={fused!s:<5} max |gpu - cpu| = {err:.2e}")
            assert err < 1e-4 and states[1][1][0].is_cuda


def train_on_gpu_resume_on_cpu(out: Path) -> None:
    def batch_fn(step):
        return adding_batch(50, 50, torch.Generator().manual_seed(step))

    def loss_fn(model, batch, carry, step):
        x, y = batch  # the engine moved it to the model's device
        return nn.functional.mse_loss(model(x), y), None, {}

    valid = adding_batch(500, 50, torch.Generator().manual_seed(-1))

    def evaluate(model):
        device = next(model.parameters()).device
        return {"loss": float(nn.functional.mse_loss(model(valid[0].to(device)), valid[1].to(device)))}

    torch.manual_seed(0)
    model = SequenceRegressor("layer_norm", 64)
    start = time.perf_counter()
    summary = train(model, TrainConfig(steps=200, eval_every=100, device="cuda"), out, kind="adding", config={},
                    batch_fn=batch_fn, loss_fn=loss_fn, evaluate=evaluate, progress=False)
    seconds = time.perf_counter() - start
    print(f"trained on cuda: {summary['step']} steps in {seconds:.1f}s, valid {summary['valid_loss']:.4f}")
    ckpt = load_checkpoint(out / "last.pt", "adding")
    assert all(t.device.type == "cpu" for t in ckpt["model"].values())
    cpu_model = SequenceRegressor("layer_norm", 64)
    summary = train(cpu_model, TrainConfig(steps=220, eval_every=100, device="cpu"), out, kind="adding", config={},
                    batch_fn=batch_fn, loss_fn=loss_fn, evaluate=evaluate, resume=True, progress=False)
    print(f"resumed on cpu from the cuda checkpoint: step {summary['step']}, valid {summary['valid_loss']:.4f}")


def text_on_gpu(out: Path) -> None:
    """A text model trains on --device cuda: the engine moves every batch and the carried state."""
    names = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "text" / "names.txt"
    run = TextTrainConfig(TextConfig(hidden=128, layers=2), TrainConfig(steps=100, eval_every=100, device="cuda"))
    summary = train_text_model(str(names), out, run, progress=False)
    model = load_text_model(out / "best.pt")
    print(f"text on cuda: {summary['step']} steps, valid {summary['valid_loss']:.3f} nats/char; "
          f"sample on the CPU: {generate(model, 'an', 20, seed=0)!r}")


def speed() -> None:
    torch.backends.cudnn.allow_tf32 = True  # the defaults a user trains with
    batch, steps, inp, hidden = 100, 200, 5, 512
    x = torch.randn(steps, batch, inp, device="cuda")
    fns = {"torch.nn.LSTM (cuDNN)": nn.LSTM(inp, hidden).cuda()}
    for name in CELLS:
        fns[name] = RecurrentLayer(make_cell(name, inp, hidden)).cuda()
    fns["lstm + dropout 0.1 (loop)"] = RecurrentLayer(make_cell("lstm", inp, hidden, 0.1)).cuda()
    # --compile: where an unrolled cell's dozen kernels a step are launch-bound (issue #14).
    for label, name, dropout in (("lstm + dropout 0.1", "lstm", 0.1), ("layer_norm", "layer_norm", 0.0),
                                 ("layer_norm + dropout 0.1", "layer_norm", 0.1), ("hyper", "hyper", 0.0)):
        layer = RecurrentLayer(make_cell(name, inp, hidden, dropout)).cuda()
        compile_steps(layer)
        fns[f"{label} (compiled step)"] = layer
    times = {}
    for label, module in fns.items():
        def run(module=module):
            module(x)[0].sum().backward()
            torch.cuda.synchronize()

        run()
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            run()
            samples.append(time.perf_counter() - start)
        times[label] = statistics.median(samples)
    base = times["torch.nn.LSTM (cuDNN)"]
    device = torch.cuda.get_device_name()
    print(f"\ntrain step B{batch} T{steps} I{inp} H{hidden} on {device}, torch {torch.__version__}")
    for label, t in times.items():
        print(f"| {label} | {t * 1e3:.1f} ms | {t / base:.2f}x |")


def serve_on_gpu() -> None:
    with serving("--device", "cuda", "--workers", "1", "--rate", "1000") as (port, _):
        for clients in (100, 300):
            # What the browser sends (load.py's default): no seed, pen temperature 1.
            r = asyncio.run(measure(f"ws://127.0.0.1:{port}/ws", clients, 30.0, {"pen_temperature": 1.0}, False))
            print(f"serve --device cuda, {clients} clients, 30 s: {r['points_per_s']:.0f} points/s, "
                  f"first point p99 {r['first_p99_ms']:.1f} ms, {r['errors']} errors")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/gpu-check", help="folder for the check's training run")
    args = parser.parse_args()
    assert torch.cuda.is_available(), "no CUDA device"
    parity()
    train_on_gpu_resume_on_cpu(Path(args.out))
    text_on_gpu(Path(args.out) / "text")
    speed()
    serve_on_gpu()


if __name__ == "__main__":
    main()
