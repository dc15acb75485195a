"""Training and evaluating a Sketch-RNN model on stroke files, on the core BPTT engine."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from sketchrnn.core.engine import TrainConfig, exponential_anneal, train
from sketchrnn.data import Batcher, SketchSet, cap_length, evaluation_batches, load_sketches, scale_factor
from sketchrnn.model import SketchRNN, SketchRNNConfig, per_drawing_nll, training_loss
from sketchrnn.plot import Series, line_chart
from sketchrnn.render import render_grid
from sketchrnn.sampler import Settings, sample


@dataclass
class SketchTrainConfig:
    """Magenta sketch_rnn's defaults (``get_default_hparams``), each with its reason."""

    batch_size: int = 100  # Magenta's batch; large enough for stable Adam steps on 2 cores
    lr: float = 1e-3  # Adam's usual start
    lr_decay: float = 0.9999  # per step: lr reaches ~1/3 of its start after 10k steps
    min_lr: float = 1e-5  # floor so late training still moves
    grad_clip: float = 1.0  # by value, as Magenta: the MDN's rare huge gradients stay bounded
    random_scale: float = 0.15  # stretch x and y independently by up to +-15%
    drop_prob: float = 0.1  # point dropping: the model sees each shape at several resolutions
    kl_weight: float = 0.5  # final KL weight (vae); 0.5 trades reconstruction for a smooth z
    kl_weight_start: float = 0.01  # KL weight at step 0: learn to reconstruct first
    kl_decay_rate: float = 0.99995  # R in w = w_max - (w_max - w_start) R^step
    kl_tolerance: float = 0.2  # free bits: KL below this per z dimension costs nothing
    max_len: int = 250  # longest drawing trained on (Magenta's max_seq_len for sheep)
    overlong: str = "drop"  # longer drawings: "drop" (Magenta) or "truncate"
    bucket: bool = True  # batches of similar lengths: a fraction of the padding of random ones
    steps: int = 10_000  # optimizer steps (0: only the time budget)
    minutes: float = 0.0  # wall-clock budget for this invocation (0: only the step budget)
    eval_every: int = 500  # validate, sample and checkpoint every this many steps
    seed: int = 0
    device: str = "cpu"


def evaluate_nll(model: SketchRNN, scale: float, sketches: SketchSet, batch_size: int = 100) -> dict:
    """The mean NLL per point over drawings (definition in ``model.per_drawing_nll``); for a VAE
    the reconstruction uses z = mu and the KL is reported beside it."""
    device = next(model.parameters()).device
    nlls, kls, points = [], [], 0
    model.eval()
    with torch.no_grad():
        for batch in evaluation_batches(sketches, scale, batch_size):
            batch = batch.to(device)
            offset, pen, kl = model(batch.inputs, batch.targets, batch.lengths, sample_z=False)
            nlls.append(per_drawing_nll(offset, pen, batch.targets, batch.lengths).cpu())
            points += int(batch.lengths.sum()) - len(batch.lengths)
            if kl is not None:
                kls.append(kl.cpu())
    result = {"nll": float(torch.cat(nlls).mean()), "drawings": len(sketches), "points": points}
    if kls:
        result["kl"] = float(torch.cat(kls).mean())
    return result


def learning_curve(metrics_path: Path, out: Path) -> Path:
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines()]
    train_rows = [r for r in rows if r["split"] == "train"]
    valid_rows = [r for r in rows if r["split"] == "valid"]
    series = [Series("train loss", [r["step"] for r in train_rows], [r["loss"] for r in train_rows]),
              Series("valid NLL per point", [r["step"] for r in valid_rows], [r["nll"] for r in valid_rows])]
    return line_chart(series, out, "Learning curve", "step", "nats")


def train_sketch_model(
    data_paths: list[str],
    out_dir: str | Path,
    model_config: SketchRNNConfig,
    cfg: SketchTrainConfig,
    resume: bool = False,
    progress: bool = True,
) -> dict:
    out_dir = Path(out_dir)
    data = load_sketches(data_paths, seed=cfg.seed)
    train_set, dropped = cap_length(data.splits["train"], cfg.max_len, cfg.overlong)
    valid_set, _ = cap_length(data.splits["valid"], cfg.max_len, cfg.overlong)
    if len(valid_set) == 0:
        raise ValueError(f"{', '.join(map(str, data_paths))}: the valid split is empty; validation needs drawings")
    scale = scale_factor(train_set.drawings)
    if progress:
        print(f"{len(train_set)} training drawings ({dropped} over {cfg.max_len} points {cfg.overlong}ped), "
              f"{len(valid_set)} validation, classes {data.classes}, scale factor {scale:.4f}")
    batcher = Batcher(train_set, scale, cfg.batch_size, cfg.bucket, cfg.random_scale, cfg.drop_prob, seed=cfg.seed)
    torch.manual_seed(cfg.seed)
    model = SketchRNN(model_config)
    device = torch.device(cfg.device)

    def loss_fn(model, batch, carry, step):
        batch = batch.to(device)
        offset, pen, kl = model(batch.inputs, batch.targets, batch.lengths)
        reconstruction = training_loss(offset, pen, batch.targets)
        metrics = {"reconstruction": reconstruction.detach()}
        if kl is None:
            return reconstruction, None, metrics
        weight = exponential_anneal(step, cfg.kl_weight_start, cfg.kl_weight, cfg.kl_decay_rate)
        kl_cost = torch.clamp(kl.mean(), min=cfg.kl_tolerance)
        metrics.update(kl=kl.mean().detach(), kl_weight=weight)
        return reconstruction + weight * kl_cost, None, metrics

    def evaluate(model):
        result = evaluate_nll(model, scale, valid_set, cfg.batch_size)
        return {"loss": result["nll"] + result.get("kl", 0.0), **result}

    def after_eval(model, step, out_dir):
        drawings = sample(model.cpu(), scale, 16, Settings(temperature=0.4, seed=step))
        model.to(device)
        render_grid(drawings, out_dir / f"samples-{step:06d}.svg")

    engine_cfg = TrainConfig(
        steps=cfg.steps, minutes=cfg.minutes, lr=cfg.lr, lr_decay=cfg.lr_decay, min_lr=cfg.min_lr,
        clip=cfg.grad_clip, clip_mode="value", eval_every=cfg.eval_every, log_every=min(50, cfg.eval_every),
        seed=cfg.seed, device=cfg.device,
    )
    summary = train(
        model, engine_cfg, out_dir, batch_fn=batcher.batch, loss_fn=loss_fn, evaluate=evaluate,
        after_eval=after_eval, run_config=asdict(model_config),
        extras={"scale_factor": scale, "classes": data.classes, "sketch_train_config": asdict(cfg)},
        resume=resume, progress=progress,
    )
    learning_curve(out_dir / "metrics.jsonl", out_dir / "learning_curve.svg")
    return summary

